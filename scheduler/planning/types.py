"""The nouns of one plan: a site a job may use (:class:`Option`), a placement
(:class:`Choice`), a job being planned (:class:`Task`), and how placements compare
(:func:`better`). Times are epoch-second integers until the plan entries are written."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from intensity.series import MILLI, Series
from scheduler.domain.model import TERMINAL_STATES, Job, JobState

# grams = power_w * (milli-g/kWh * s) / (1000 milli * 3600 s/h * 1000 W/kW)
G_PER_UNIT_W = 1.0 / (MILLI * 3600.0 * 1000.0)
TERMINAL = TERMINAL_STATES
RUNNING_STATES = frozenset({JobState.RUNNING, JobState.SUSPENDED})
INF = 1 << 62  # a cost no window reaches: "cannot run here"


def epoch(t: datetime) -> int:
    return math.ceil(t.timestamp())


def to_datetime(t: int) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def expected_grams(cost: int, power_w: float, pue: float = 1.0) -> float:
    """Grams of a run of ``power_w`` whose integral is ``cost`` (milli-g/kWh x s)."""
    return cost * power_w * pue * G_PER_UNIT_W


@dataclass(slots=True)
class Option:
    """One site a job may run on, with its bounds and fixed costs there."""

    site: str
    zone: str
    pue: float
    profile: Series | None
    earliest: int
    latest: int
    transfer_g: float
    home: bool
    rank: int
    #: the earliest least contiguous window ``(start, cost)`` ignoring capacity, when
    #: :func:`scheduler.planning.single.prepare` computed it for a group of windows at once
    best: tuple[int, int] | None = None
    #: the cost of starting at ``earliest``, when computed with ``best``
    now_cost: int | None = None


@dataclass(slots=True)
class Choice:
    """A placement: site option, intervals, integer cost and grams."""

    option: Option
    intervals: Sequence[tuple[int, int]]
    cost: int
    grams: float
    reason: str


@dataclass(slots=True)
class Task:
    """A job being planned: its options (home first), bounds and placement so far."""

    job: Job
    duration_s: int
    options: list[Option]
    home: Option
    overdue: bool
    threshold_milli: int | None
    choice: Choice | None = None
    unconstrained: Choice | None = None
    #: per option: the grams of its single-job optimum, the option, and the optimum
    per_option: list[tuple[float, Option, Choice]] = field(default_factory=list)
    #: sites the transfer delay puts past the latest start (tried only when overdue)
    late: Sequence[Option] = ()
    #: whether the job may be split into runs (interruptible, not run-now, no threshold)
    splits: bool = False


def better(a: Choice, b: Choice) -> bool:
    """``a`` emits less than ``b``; ties go to the earlier start, then the home site."""
    ga, gb = a.grams, b.grams
    if not math.isfinite(gb):
        return math.isfinite(ga)
    if not math.isfinite(ga):
        return False
    if ga != gb:
        if a.option is b.option:
            return a.cost < b.cost if a.cost != b.cost else a.intervals[0][0] < b.intervals[0][0]
        return ga < gb
    if a.intervals[0][0] != b.intervals[0][0]:
        return a.intervals[0][0] < b.intervals[0][0]
    return a.option.rank < b.option.rank
