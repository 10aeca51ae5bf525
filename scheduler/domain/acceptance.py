"""The ONE rule of acceptance under capacity: refuse with the earliest finish that fits.

A job that cannot finish by its deadline on the capacity left is refused, and the refusal
names the earliest finish that would fit: where the planner places it when allowed past its
deadline (``PlanOptions.allow_overdue``, as early as capacity frees up). The live queue
(:mod:`scheduler.queue.submit`) raises the refusal; the simulator (:mod:`scheduler.simulate`)
plays the user who reads it and submits again with that finish as the deadline. Both decide
"late" with :func:`finishes_late` and word the advice with :func:`give_deadline`, so the
figure a user is told and the one a simulation replays are the same (pinned by
``tests/simulate/test_acceptance.py``).

Pure: no I/O, no clock; ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from scheduler.domain.model import Job
from scheduler.errors import InfeasibleJob
from scheduler.text.times import format_duration, iso

#: a finish this close past the deadline is on time: planned starts are whole seconds,
#: rounded up, so one second of rounding is not lateness
FINISH_TOLERANCE_S = 1.0


class DeadlineRefusal(InfeasibleJob):
    """The job cannot finish by its deadline on the capacity left; ``earliest_finish`` is
    the earliest finish that fits (the message names it, with the deadline to give)."""

    def __init__(self, message: str, earliest_finish: datetime) -> None:
        super().__init__(message)
        self.earliest_finish = earliest_finish


def finish_of(intervals: Sequence[tuple[datetime, datetime]]) -> datetime:
    """When a placement in ``intervals`` (in time order) ends."""
    return intervals[-1][1]


def finishes_late(finish: datetime, deadline: datetime | None) -> bool:
    """Whether ``finish`` misses ``deadline`` (never, without one), beyond the rounding."""
    return deadline is not None and finish > deadline + timedelta(seconds=FINISH_TOLERANCE_S)


def refused_with(job: Job, finish: datetime) -> datetime | None:
    """The earliest finish a refusal of ``job`` names when its placement ends at ``finish``
    (allowed past its deadline), or ``None`` when that placement meets the deadline."""
    return finish if finishes_late(finish, job.deadline_at) else None


def give_deadline(fits: datetime, since: datetime) -> str:
    """The advice a refusal ends with: the shortest ``--deadline`` that ``fits``."""
    return f"give --deadline {format_duration((fits - since).total_seconds(), ceil=True)} or later"


def deadline_refusal(what: str, job: Job, fits: datetime, now: datetime) -> DeadlineRefusal:
    """The refusal of a job (or a sweep, through one of its trials) that cannot finish by
    its deadline on the capacity left, naming the earliest finish that fits."""
    return DeadlineRefusal(
        f"{what} cannot finish by its deadline "
        f"{iso(job.deadline_at) if job.deadline_at else '(none)'}: the GPUs/CPUs of "
        f"{', '.join(dict.fromkeys([job.site, *job.allowed_sites]))} are committed until "
        f"then; the earliest finish that fits is {iso(fits)}: {give_deadline(fits, now)}",
        fits,
    )


def resubmitted(job: Job, fits: datetime) -> Job:
    """``job`` as the refused user submits it again: due at the earliest finish that fits."""
    return replace(job, deadline_at=fits, latest_start=fits - timedelta(seconds=job.duration_s))


__all__ = [
    "FINISH_TOLERANCE_S", "DeadlineRefusal", "deadline_refusal", "finish_of", "finishes_late",
    "give_deadline", "refused_with", "resubmitted",
]
