"""Capacity already held, read from the store: what submits and re-plans fit around.

Every figure comes from :func:`scheduler.holds.holds` (and :func:`~scheduler.holds.
sweep_holds`), the one rule of what a job holds: this module only picks the jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.domain.holds import Hold, SweepHold, holds, sweep_holds
from scheduler.domain.model import Job, JobState, Site

if TYPE_CHECKING:
    from scheduler.storage.ports import SubmitReads

_HOLDING = [JobState.PLANNED, JobState.RUNNING, JobState.SUSPENDED]


class HeldCapacity:
    """What planned, running and suspended jobs hold, from the store handed in."""

    def __init__(self, store: Callable[[], SubmitReads]) -> None:
        self._store = store

    def stored_spans(self, jobs: Iterable[Job]) -> dict[int, list[tuple[datetime, datetime]]]:
        """The planned intervals of the interruptible jobs among ``jobs`` (one query)."""
        ids = [j.id for j in jobs if j.interruptible and j.id is not None]
        return self._store().planned_intervals(ids) if ids else {}

    def _holds_of(self, jobs: list[Job], now: datetime) -> list[Hold]:
        spans = self.stored_spans(jobs)
        return [h for j in jobs for h in holds(j, spans.get(j.id), now)]  # type: ignore[arg-type]

    def on(self, names: Iterable[str], now: datetime, skip: int | None = None) -> tuple[Hold, ...]:
        """``(site, start, end, gpus, cpus)`` of every planned or running job on ``names``."""
        jobs = [j for j in self._store().list_jobs(_HOLDING, sites=list(names)) if j.id != skip]
        return tuple(self._holds_of(jobs, now))

    def committed(self, job: Job, sites: Mapping[str, Site], now: datetime) -> tuple[Hold, ...] | None:
        """Capacity already held on the sites ``job`` may use that manage the resources it
        needs. ``None`` when no such site manages capacity (the job is then planned on its
        own, as before)."""
        names = [
            n for n in dict.fromkeys([job.site, *job.allowed_sites])
            if n in sites and ((sites[n].gpus > 0 and job.gpus > 0) or (sites[n].cpus > 0 and job.cpus > 0))
        ]
        if not names:
            return None
        return self.on(names, now, skip=job.id)

    def _started(self, now: datetime, skip: Collection[int] = ()) -> list[Job]:
        """Running and suspended jobs, and planned jobs already due (not in ``skip``)."""
        return [
            j for j in self._store().list_jobs(_HOLDING)
            if j.id not in skip and (j.state is not JobState.PLANNED
                                     or (j.planned_start is not None and j.planned_start <= now))
        ]

    def started(self, now: datetime, *, skip: Collection[int] = ()) -> list[Hold]:
        """Capacity held by running and suspended jobs (their planned intervals ahead) and
        by planned jobs already due, but for the jobs in ``skip``."""
        return self._holds_of(self._started(now, skip), now)

    def started_sweeps(self, now: datetime, *, skip: Collection[int] = ()) -> tuple[SweepHold, ...]:
        """What started trials of capped sweeps (running, suspended, or planned and due)
        count against their sweeps' caps from ``now`` on."""
        started = [j for j in self._started(now, skip) if j.sweep_limit is not None]
        spans = self.stored_spans(started)
        return tuple(h for j in started for h in sweep_holds(j, spans.get(j.id), now))  # type: ignore[arg-type]


__all__ = ["HeldCapacity"]
