"""The daemon, now by concern in :mod:`scheduler.agent` (see :mod:`scheduler.agent.loop`
for how it works); this module keeps the old import path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scheduler.agent.launcher import CLAIM_BATCH
from scheduler.agent.loop import Daemon
from scheduler.agent.outcome import MAX_LOST_RUNS
from scheduler.agent.runs import ActiveRun, Phase, run_log_path
from scheduler.domain.model import TERMINAL_STATES

if TYPE_CHECKING:
    from scheduler.app import App


def log_path(app: App, job_id: int, run_id: int) -> Path:
    """Where a run's stdout goes (:func:`scheduler.agent.runs.run_log_path`)."""
    return run_log_path(app.settings.log_dir, job_id, run_id)


__all__ = ["CLAIM_BATCH", "MAX_LOST_RUNS", "TERMINAL_STATES", "ActiveRun", "Daemon", "Phase", "log_path"]
