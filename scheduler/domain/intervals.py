"""Following an interruptible job's planned run intervals: pure decisions, no I/O.

The planner may split an interruptible job into run intervals (``PlanEntry.intervals``,
stored in ``job_intervals``). The daemon follows them with these rules:

- a running job is paused at the end of the interval it runs in, when a later interval
  exists; a running job found between intervals (a late launch, a daemon restart) is
  paused at once;
- a job in its last interval is never paused: it runs until it exits, however long that
  takes (the estimate may be short);
- a paused job resumes at the start of the next interval that has not ended (at once if
  one is under way), and at once when no interval is left ahead: a paused job is never
  left waiting for a plan that does not come.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from datetime import datetime

Span = tuple[datetime, datetime]

PAUSE = "pause"
RESUME = "resume"


def next_boundary(spans: Sequence[Span], *, paused: bool, now: datetime) -> tuple[str, datetime] | None:
    """What the daemon does next to a job following ``spans``, and when: ``("pause",
    at)``, ``("resume", at)`` (``at`` may be past: due now), or ``None`` (nothing: the job
    runs to its end)."""
    spans = sorted(spans)
    if paused:
        for a, b in spans:
            if b > now:
                return RESUME, a
        return RESUME, now
    if not any(a > now for a, _ in spans):
        return None  # in (or past) its last interval: runs until it exits
    for a, b in spans:
        if a <= now < b:
            return PAUSE, b
    return PAUSE, now  # between intervals


def position(spans: Sequence[Span], at: datetime) -> tuple[int, int]:
    """``(k, n)``: ``at`` falls in (or just after) interval ``k`` (1-based) of ``n``."""
    spans = sorted(spans)
    k = sum(1 for a, _ in spans if a <= at)
    return max(1, k), len(spans)


def checkpoint_exit_ok(exit_code: int | None, signum: int) -> bool:
    """Whether a job that was asked to checkpoint (with ``signum``) and exited with
    ``exit_code`` did so as asked: it exited cleanly (0) or died of that signal (the
    shell's ``128 + N``). Any other code is a failure of the job."""
    return exit_code in (0, 128 + signum, -signum)


def holds_gpus_when_paused(interruptible: bool, gpus: int, pause_mode: str | None) -> bool:
    """Whether a job keeps its GPUs through its pauses: a ``stop``-mode job is frozen with
    its GPU memory allocated, so no other job can use those GPUs until it ends; a
    ``checkpoint``-mode job exits at each pause and gives them back."""
    return interruptible and gpus > 0 and (pause_mode or "stop") == "stop"


def signal_number(name: str | None, default: str = "SIGUSR1") -> int:
    """``"SIGUSR1"`` -> 10 (names are checked at submission; a bad one falls back)."""
    try:
        return int(signal.Signals[name or default])
    except KeyError:
        return int(signal.Signals[default])


__all__ = [
    "PAUSE", "RESUME", "checkpoint_exit_ok", "holds_gpus_when_paused", "next_boundary", "position",
    "signal_number",
]
