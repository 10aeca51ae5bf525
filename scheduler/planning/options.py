"""The planner's knobs that are not part of a job (:class:`PlanOptions`), and the forecast
horizon a queue needs (:func:`horizon_needed_s`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.domain.model import Job


@dataclass(frozen=True)
class PlanOptions:
    """Knobs of the planner that are not part of a job."""

    #: when true, a job whose bounds are already past (or that no capacity can take by its
    #: deadline) is planned as early as it fits (overdue); when false it is left unplanned
    allow_overdue: bool = True
    #: width of a capacity slot, seconds (the ledger's resolution)
    slot_s: int = 300
    #: respect site GPU/CPU capacity (0 on a site = not managed)
    enforce_capacity: bool = True
    #: interruptible jobs: shortest run, and most pauses (``None``: unlimited)
    min_chunk_s: int = 3600
    max_pauses: int | None = 3
    #: a job with a ``current`` placement moves only if that saves more than this percent
    hysteresis_pct: float = 0.0
    #: the plan in force: job id -> (site, start); used with ``hysteresis_pct``
    current: Mapping[int, tuple[str, datetime]] = field(default_factory=dict)
    #: placements in force given as run intervals (a paused job's remaining work):
    #: job id -> (site, intervals); kept unless a plan saves more (more than
    #: ``hysteresis_pct`` when it is set), priced over exactly those intervals
    current_runs: Mapping[int, tuple[str, Sequence[tuple[datetime, datetime]]]] = field(default_factory=dict)
    #: jobs already accepted: placed before any other (a new submit cannot push them out)
    committed: frozenset[int] = frozenset()
    #: keep every accepted job (committed, or with a placement in ``current``) at its
    #: placement in force, and plan the rest around them; :func:`plan` does this by itself
    #: when re-planning greedily would push an accepted job past its deadline
    pin_accepted: bool = False
    #: joint branch-and-bound when at most this many jobs are displaced by capacity
    exact_max_jobs: int = 6
    exact_max_nodes: int = 100_000
    #: how far past its window an overdue job may be pushed looking for capacity, seconds
    overdue_search_s: int = 14 * 86400
    #: capacity already held outside ``jobs`` (started runs whose intervals are known):
    #: ``(site, start, end, gpus, cpus)``
    reserved: Sequence[tuple[str, datetime, datetime, int, int]] = ()
    #: trials of capped sweeps already running outside ``jobs`` (:func:`scheduler.holds.
    #: sweep_holds`): ``(sweep_id, start, end)``, each counting against its sweep's cap
    sweep_reserved: Sequence[tuple[int, datetime, datetime]] = ()


#: The longest forecast worth planning on. Providers forecast a day or two; past that the
#: chain extends with the local forecaster, whose per-lead weights stop changing after 48 h
#: and whose profile repeats weekly, so a window starting later than this is no cheaper
#: than one a week earlier. Past a forecast's end the planner takes its mean (see
#: :class:`intensity.series.Series`) and prefers the earliest of equal starts, so a far
#: deadline is planned on this horizon: planning costs O(horizon), never O(distance to the
#: deadline).
MAX_FORECAST_HORIZON_S = 9 * 86400


def horizon_needed_s(jobs: Sequence[Job], now: datetime) -> int:
    """Forecast horizon that covers every job's latest finish (at least one hour, at most
    :data:`MAX_FORECAST_HORIZON_S`)."""
    latest = now + timedelta(hours=1)
    for j in jobs:
        latest = max(latest, j.latest_start + timedelta(seconds=j.duration_s))
    return min(int((latest - now).total_seconds()), MAX_FORECAST_HORIZON_S)
