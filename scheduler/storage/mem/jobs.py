"""Jobs: add, read, list, the queue view, plans and planned intervals, state
transitions and claims.

Part of :class:`~scheduler.storage.mem.store.MemoryStore` (see :mod:`scheduler.storage.mem.state`).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from scheduler.domain.model import Event, Job, JobState, Plan
from scheduler.errors import NotFound, StorageError, no_job
from scheduler.storage.base import Span
from scheduler.storage.mem.state import MemoryState, _at, _flag, _job_copy, _not_null, _spans, _utc

_WAITING = frozenset({JobState.PENDING, JobState.PLANNED})
_JOB_TIMES = ("submitted_at", "earliest_start", "latest_start", "deadline_at", "planned_start",
              "updated_at")


class MemoryJobs(MemoryState):
    """Jobs and their planned intervals; transitions and claims won by exactly one caller."""

    def _job_in(self, job: Job, now: datetime, what: str) -> Job:
        """The copy of ``job`` to store: times in UTC, its state a :class:`JobState`,
        ``updated_at = now``; refused when a NOT NULL column is empty."""
        stored = _job_copy(job)
        for name in _JOB_TIMES:
            setattr(stored, name, _utc(getattr(job, name)))
        stored.state = JobState(job.state)
        stored.updated_at = now
        stored.shell, stored.run_now = _flag(job.shell), _flag(job.run_now)
        stored.interruptible = _flag(job.interruptible)
        _not_null("jobs", stored, what)
        return stored

    def _check_ids(self, rows: Sequence[Job]) -> None:
        """Refuse ids given twice or taken, before anything is written."""
        given = [row.id for row in rows if row.id is not None]
        if len(set(given)) != len(given) or any(i in self._jobs for i in given):
            raise StorageError(f"could not add jobs in the in-memory store: an id of {given} "
                               "is given twice or taken")

    def _insert_jobs(self, rows: Sequence[Job], spans: Sequence[Sequence[Span]]) -> list[Job]:
        """Give ``rows`` their ids and store them with their planned intervals (under the
        lock, everything already checked, :meth:`_check_ids` included)."""
        for row in rows:  # ids given first: the others never take one of them
            if row.id is not None:
                self._ids.take("jobs", row.id, self._jobs.__contains__)
        for row in rows:
            if row.id is None:
                row.id = self._ids.take("jobs", None, self._jobs.__contains__)
        for row, job_spans in zip(rows, spans, strict=True):
            assert row.id is not None
            self._jobs[row.id] = row
            if job_spans:
                self._job_intervals[row.id] = list(job_spans)
        return [_job_copy(row) for row in rows]

    def add_job(
        self, job: Job, *, event: tuple[datetime, str, str] | None = None,
        intervals: Sequence[Span] = (),
    ) -> Job:
        what = f"add job {job.name!r}"
        with self._lock:
            row = self._job_in(job, self._now(), what)
            spans = _spans(intervals, what)
            ev = None
            if event is not None:
                ev = Event(job_id=0, at=_utc(event[0]), kind=event[1], message=event[2])
                _not_null("events", ev, what)
            self._check_ids([row])
            (added,) = self._insert_jobs([row], [spans])
            if ev is not None:
                assert added.id is not None
                self._insert_event(dataclasses.replace(ev, job_id=added.id))
            return added

    def add_jobs(
        self, jobs: Sequence[Job], *, intervals: Sequence[Sequence[Span]] | None = None
    ) -> list[int]:
        if not jobs:
            return []
        what = f"add {len(jobs)} jobs"
        with self._lock:
            now = self._now()
            rows = [self._job_in(j, now, what) for j in jobs]
            spans = ([_spans(s, what) for s in intervals] if intervals is not None
                     else [[] for _ in rows])
            if len(spans) != len(rows):
                raise ValueError(f"{len(spans)} interval lists for {len(rows)} jobs")
            self._check_ids(rows)
            return [j.id or 0 for j in self._insert_jobs(rows, spans)]

    def get_job(self, job_id: int) -> Job:
        with self._lock:
            return _job_copy(self._job(job_id))

    def _job(self, job_id: int) -> Job:
        found = self._jobs.get(job_id)
        if found is None:
            raise no_job(job_id)
        return found

    def list_jobs(
        self,
        states: Iterable[JobState] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        sites: Iterable[str] | None = None,
        limit: int | None = None,
        newest: bool = False,
        sweep_id: int | None = None,
    ) -> list[Job]:
        wanted = None if states is None else {str(s) for s in states}
        since, until = _utc(since), _utc(until)
        where = None if sites is None else set(sites)
        with self._lock:
            found = [
                job for _, job in sorted(self._jobs.items())
                if (sweep_id is None or job.sweep_id == sweep_id)
                and (wanted is None or job.state.value in wanted)
                and (since is None or job.submitted_at >= since)
                and (until is None or job.submitted_at < until)
                and (where is None or _site_of(job) in where)
            ]
            if limit is not None:
                found = found[max(len(found) - limit, 0):] if newest else found[:max(limit, 0)]
            return [_job_copy(j) for j in found]

    def queue_view(
        self, states: Sequence[JobState], *, limit: int | None = None
    ) -> tuple[list[Job], dict[str, int]]:
        names = [JobState(s).value for s in states]
        out: list[Job] = []
        with self._lock:
            by_state: dict[str, list[Job]] = defaultdict(list)
            for _, job in sorted(self._jobs.items()):
                if job.state.value in names:
                    by_state[job.state.value].append(job)
            counts = {name: len(jobs) for name, jobs in by_state.items()}
            for name in names:
                jobs = by_state.get(name, [])
                timed = sorted((j for j in jobs if j.planned_start is not None),
                               key=lambda j: (j.planned_start, j.id))
                for part in (timed, [j for j in jobs if j.planned_start is None]):
                    left = None if limit is None else limit - len(out)
                    if (left is not None and left <= 0) or not jobs:
                        break
                    out.extend(_job_copy(j) for j in (part if left is None else part[:left]))
        return out, counts

    def planned_starts(
        self, *, after: datetime, sites: Iterable[str] | None = None
    ) -> dict[int, datetime]:
        after = _at(after)
        where = None if sites is None else set(sites)
        with self._lock:
            return {
                i: job.planned_start for i, job in sorted(self._jobs.items())
                if job.state is JobState.PLANNED and job.planned_start is not None
                and job.planned_start > after and (where is None or _site_of(job) in where)
            }

    def apply_plan(self, plan: Plan, now: datetime) -> int:
        if not plan.entries:
            return 0
        what = f"apply a plan of {len(plan.entries)} jobs"
        now = _at(now)
        starts = {i: _utc(e.start) for i, e in plan.entries.items()}
        with self._lock:
            written = [i for i in plan.entries
                       if i in self._jobs and self._jobs[i].state in _WAITING]
            spans = {i: _spans(plan.entries[i].intervals, what) for i in written
                     if len(plan.entries[i].intervals) > 1}
            for i in written:
                entry, job = plan.entries[i], self._jobs[i]
                job.state, job.planned_site, job.planned_start = (
                    JobState.PLANNED, entry.site, starts[i])
                job.expected_g, job.run_now_g, job.updated_at = (
                    entry.expected_g, entry.run_now_g, now)
                self._job_intervals.pop(i, None)
                if i in spans:
                    self._job_intervals[i] = spans[i]
            return len(written)

    def planned_intervals(self, job_ids: Iterable[int]) -> dict[int, list[Span]]:
        with self._lock:
            return {i: list(self._job_intervals[i]) for i in sorted(set(job_ids))
                    if self._job_intervals.get(i)}

    def replan_suspended(
        self, job_id: int, intervals: Sequence[Span], now: datetime, *, note: str | None = None
    ) -> bool:
        if not intervals:
            raise ValueError("a suspended job needs at least one interval to resume in")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state is not JobState.SUSPENDED:
                return False
            spans = _spans(intervals, f"re-plan suspended job {job_id}")
            job.updated_at = self._now()  # the wall clock, not ``now``: as the SQL store
            if note is not None:
                job.note = note
            self._job_intervals[job_id] = spans
            return True

    def update_job(self, job: Job, *, expected: Iterable[JobState] | None = None) -> bool:
        if job.id is None:
            raise NotFound("cannot update a job that was never added (it has no id)")
        state, start = JobState(job.state), _utc(job.planned_start)
        allowed = None if expected is None else {JobState(s) for s in expected}
        _not_null("jobs", {"state": state, "note": job.note, "attempts": job.attempts,
                           "priority": job.priority}, f"update job {job.id}")
        with self._lock:
            stored = self._job(job.id)
            if allowed is not None and stored.state not in allowed:
                return False
            stored.state, stored.planned_start, stored.planned_site = state, start, job.planned_site
            stored.expected_g, stored.run_now_g = job.expected_g, job.run_now_g
            stored.plan_source, stored.note = job.plan_source, job.note
            stored.attempts, stored.priority = job.attempts, job.priority
            stored.updated_at = self._now()
            return True

    def transition(
        self, job_id: int, to: JobState, *, expected: Iterable[JobState], note: str | None = None
    ) -> bool:
        """Atomically move a job to ``to`` if its state is one of ``expected``.

        Entering ``running`` counts an attempt (``attempts + 1``). :class:`NotFound` if the
        job does not exist; ``False`` if it is in another state.
        """
        to, allowed = JobState(to), {JobState(s) for s in expected}
        with self._lock:
            job = self._job(job_id)
            if job.state not in allowed:
                return False
            job.state, job.updated_at = to, self._now()
            if note is not None:
                job.note = note
            if to is JobState.RUNNING:
                job.attempts += 1
            return True

    def claim_due(
        self, now: datetime, *, sites: Iterable[str] | None = None, limit: int = 10
    ) -> list[Job]:
        """Move up to ``limit`` due planned jobs to ``running`` (``attempts + 1``) and return
        them, earliest planned start first (then higher priority, then id)."""
        now = _at(now)
        where = None if sites is None else set(sites)
        with self._lock:
            due = sorted(
                (j for j in self._jobs.values()
                 if j.state is JobState.PLANNED and j.planned_start is not None
                 and j.planned_start <= now and (where is None or _site_of(j) in where)),
                key=lambda j: (j.planned_start, -j.priority, j.id),
            )[:max(limit, 0)]
            stamp = self._now()
            for job in due:
                job.state, job.updated_at, job.attempts = JobState.RUNNING, stamp, job.attempts + 1
            return [_job_copy(j) for j in due]


def _site_of(job: Job) -> str | None:
    """Where a job runs for the site filters: its planned site, else its home site."""
    return job.planned_site if job.planned_site is not None else job.site


__all__ = ["MemoryJobs"]
