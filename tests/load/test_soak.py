"""The soak (tests/load/soak.py) in CI: simulated days of jobs under random faults.

CI runs two simulated days and 1,500 jobs (about half a minute); set
``CARBONSHIFT_SOAK_FULL=1`` for the full week of 5,000 jobs (about 1-2 minutes), or run
``python -m tests.load.soak``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.load.soak import run_soak

pytestmark = pytest.mark.slow


def test_soak_loses_nothing_starts_nothing_twice_and_misses_no_deadline(tmp_path: Path) -> None:
    full = bool(os.environ.get("CARBONSHIFT_SOAK_FULL"))
    days, jobs = (7.0, 5000) if full else (2.0, 800)
    logging.disable(logging.WARNING)
    try:
        figs = run_soak(tmp_path, days=days, jobs=jobs, fault_rate=0.08, seed=3)
    finally:
        logging.disable(logging.NOTSET)
    print(f"\nsoak: {figs}")
    assert figs.jobs == jobs and figs.simulated_days >= days
    assert sum(figs.faults.values()) >= 10, figs.faults
    assert figs.lost == 0
    assert figs.not_finished == 0
    assert figs.double_starts == 0
    assert figs.deadline_misses_scheduler == 0
    assert figs.succeeded + figs.lost_after_kill_no_time_left == jobs
