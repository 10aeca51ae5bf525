"""A :class:`JobStore` in plain Python: dicts behind one lock, nothing on disk.

:class:`MemoryStore` keeps the semantics of :class:`~scheduler.storage.store.SqlStore`
(``tests/storage/test_contract.py`` runs the same suite on both): ids from 1 that never
repeat, conditional transitions and claims won by exactly one caller, run and named leases
with expiry and fencing terms, plans that never touch a started job, points deduplicated
on (zone, start, kind, provider, signal, issued_at), the NOT NULL columns of
:mod:`scheduler.storage.tables` refused as empty, naive datetimes refused and every instant
handed back as aware UTC.

Each public method takes the one :class:`threading.RLock` for its whole body, checks and
converts everything it was given before it changes anything (so a refused call leaves no
trace: the transaction of the SQL store), and stores and hands back copies: a caller that
mutates a job it passed in or got back never changes what is stored.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

from intensity.model import IntensityPoint, Kind, Signal, Source
from probes.model import Method, Sample
from scheduler.errors import NotFound, StorageError, no_job
from scheduler.model import (
    Event,
    Job,
    JobState,
    Plan,
    Policy,
    Run,
    RunAccounting,
    RunInterval,
    Site,
    Sweep,
    sweep_ref,
)
from scheduler.storage import tables as t
from scheduler.storage.base import JobStore, Lease, SiteTotals, Span, Totals

#: what a ``kind`` column of the fetch bookkeeping holds for a provider's last failure
FAILURE_KIND = "failure"
_WAITING = frozenset({JobState.PENDING, JobState.PLANNED})
#: the columns of each table that may not be empty (NOT NULL, ids given by the store aside)
_NOT_NULL: dict[str, frozenset[str]] = {
    table.name: frozenset(c.name for c in table.c
                          if not c.nullable and not (c.primary_key and c.autoincrement is True))
    for table in t.metadata.sorted_tables
}
_T = TypeVar("_T")
_JOB_TIMES = ("submitted_at", "earliest_start", "latest_start", "deadline_at", "planned_start",
              "updated_at")

def _wall_clock() -> datetime:
    return datetime.now(UTC)


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: datetime | None) -> datetime | None: ...
def _utc(value: datetime | None) -> datetime | None:
    """``value`` in UTC; :class:`NaiveDatetimeError` for a naive one (``None`` stays)."""
    return t.aware_utc(value)


def _at(value: datetime) -> datetime:
    """A datetime that must be given (a query bound): in UTC, never naive."""
    utc = _utc(value)
    if utc is None:
        raise StorageError("a time is missing where the store needs one")
    return utc


def _not_null(table: str, values: Any, what: str) -> None:
    """Refuse ``values`` (an object or a mapping of a ``table`` row) with an empty column
    that may not be empty, as the SQL store's NOT NULL constraints do."""
    row = values if isinstance(values, dict) else {n: getattr(values, n, "") for n in _NOT_NULL[table]}
    for name in sorted(_NOT_NULL[table]):
        if row.get(name, "") is None:
            raise StorageError(f"could not {what} in the in-memory store: {table}.{name} "
                               "may not be empty")


def _job_copy(job: Job) -> Job:
    return dataclasses.replace(job, argv=list(job.argv), env=dict(job.env),
                               allowed_sites=list(job.allowed_sites))


def _spans(spans: Iterable[Span], what: str) -> list[Span]:
    out = [(_utc(a), _utc(b)) for a, b in spans]
    for a, b in out:
        _not_null("job_intervals", {"start": a, "end": b}, what)
    return out


class _Ids:
    """Ids as an SQLite ``INTEGER PRIMARY KEY`` gives them: one more than the largest."""

    def __init__(self) -> None:
        self._last: dict[str, int] = defaultdict(int)

    def take(self, table: str, given: int | None, taken: Callable[[int], bool]) -> int:
        if given is None:
            self._last[table] += 1
            return self._last[table]
        if taken(given):
            raise StorageError(f"could not add to {table} in the in-memory store: id {given} "
                               "is taken")
        self._last[table] = max(self._last[table], given)
        return given


class _Named(Generic[_T]):
    """Rows of one kind keyed by their names (policies, sites); immutable values."""

    def __init__(self, kind: str, lock: threading.RLock) -> None:
        self._kind, self._lock, self._rows = kind, lock, dict[str, _T]()

    def _missing(self, name: str) -> NotFound:
        return NotFound(f"no {self._kind} named {name!r}: see `carbonshift {self._kind} list`")

    def put(self, name: str, value: _T) -> None:
        with self._lock:
            self._rows[name] = value

    def get(self, name: str) -> _T:
        with self._lock:
            if name not in self._rows:
                raise self._missing(name)
            return self._rows[name]

    def all(self) -> list[_T]:
        with self._lock:
            return [self._rows[n] for n in sorted(self._rows)]

    def delete(self, name: str) -> None:
        with self._lock:
            if self._rows.pop(name, None) is None:
                raise self._missing(name)


class MemoryStore(JobStore):
    """Every port of :class:`JobStore` over dicts in this process (see the module's doc).

    Safe to share between threads (one lock); private to one process. ``clock`` gives the
    wall time the store stamps ``updated_at`` and fetch times with (the SQL store reads
    the system clock).
    """

    description = "the in-memory store"

    def __init__(self, *, clock: Callable[[], datetime] = _wall_clock) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._ids = _Ids()
        self._policies: _Named[Policy] = _Named("policy", self._lock)
        self._sites: _Named[Site] = _Named("site", self._lock)
        self._jobs: dict[int, Job] = {}
        self._job_intervals: dict[int, list[Span]] = {}
        self._sweeps: dict[int, Sweep] = {}
        self._runs: dict[int, Run] = {}
        self._run_intervals: dict[int, list[RunInterval]] = defaultdict(list)
        self._samples: dict[int, list[tuple[int, Sample]]] = defaultdict(list)
        #: per zone: unique key -> (id, issued key, point)
        self._points: dict[str, dict[tuple[Any, ...], tuple[int, datetime, IntensityPoint]]] = (
            defaultdict(dict))
        self._fetches: dict[tuple[str, str, str], datetime] = {}
        self._events: dict[int, Event] = {}
        self._events_of_job: dict[int, list[int]] = defaultdict(list)
        self._leases: dict[str, Lease] = {}

    def _now(self) -> datetime:
        return _at(self._clock())

    # -- admin ----------------------------------------------------------------------------
    def close(self) -> None:
        """Nothing to release: the data stays until the object goes."""

    def totals(self) -> Totals:
        with self._lock:
            sites: dict[str, list[float]] = {}
            for run in self._runs.values():
                acc = run.accounting
                if acc is None or acc.energy_j is None:
                    continue
                sums = sites.setdefault(run.site, [0, 0.0, 0.0, 0.0, 0.0])
                for k, value in enumerate((1, acc.energy_j, acc.facility_energy_j,
                                           acc.emissions_g, acc.counterfactual_g), start=0):
                    sums[k] += value or 0.0
            planned = [j for j in self._jobs.values()
                       if j.planned_start is not None and j.plan_source is not None]
            last = max(planned, default=None,
                       key=lambda j: (j.updated_at or datetime.min.replace(tzinfo=UTC), j.id or 0))
            return Totals(
                jobs_by_state=self._counts(self._jobs),
                sites={name: SiteTotals(int(n), float(e), float(f), float(g), float(c))
                       for name, (n, e, f, g, c) in sites.items()},
                last_planned_at=None if last is None else last.updated_at,
                last_plan_source=None if last is None else last.plan_source,
            )

    @staticmethod
    def _counts(jobs: dict[int, Job]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in jobs.values():
            counts[job.state.value] = counts.get(job.state.value, 0) + 1
        return counts

    def revision(self) -> str | None:
        """The schema revision whose semantics this store keeps: always the newest."""
        from scheduler.storage.store import HEAD_REVISION

        return HEAD_REVISION

    def count_jobs_by_state(self) -> dict[str, int]:
        with self._lock:
            return self._counts(self._jobs)

    def integrity_problems(self) -> list[str]:
        """None: every reference is checked as it is written."""
        return []

    def upgrade(self, progress: Callable[[int, int, str], None] | None = None) -> str:
        """Nothing to apply (see :meth:`revision`)."""
        return self.revision() or "none"

    # -- config ---------------------------------------------------------------------------
    def put_policy(self, policy: Policy) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        stored = dataclasses.replace(
            policy, deadline_at=_utc(policy.deadline_at),
            latest_start_at=_utc(policy.latest_start_at), run_now=_flag(policy.run_now),
            interruptible=_flag(policy.interruptible))
        _not_null("policies", stored, f"save policy {policy.name!r}")
        self._policies.put(policy.name, stored)

    def get_policy(self, name: str) -> Policy:
        return self._policies.get(name)

    def list_policies(self) -> list[Policy]:
        return self._policies.all()

    def delete_policy(self, name: str) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        self._policies.delete(name)

    def put_site(self, site: Site) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        _not_null("sites", site, f"save site {site.name!r}")
        self._sites.put(site.name, site)

    def get_site(self, name: str) -> Site:
        return self._sites.get(name)

    def list_sites(self) -> list[Site]:
        return self._sites.all()

    def delete_site(self, name: str) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        self._sites.delete(name)

    # -- jobs -----------------------------------------------------------------------------
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

    # -- sweeps ---------------------------------------------------------------------------
    def add_sweep_with_jobs(
        self, sweep: Sweep, jobs: Sequence[Job], *,
        events: Sequence[tuple[datetime, str, str]] | None = None,
        intervals: Sequence[Sequence[Span]] | None = None,
    ) -> tuple[Sweep, list[Job]]:
        for given, name in ((events, "events"), (intervals, "interval lists")):
            if given is not None and len(given) != len(jobs):
                raise ValueError(f"{len(given)} {name} for {len(jobs)} trials")
        what = f"add sweep {sweep.name!r} of {len(jobs)} trials"
        stored = dataclasses.replace(sweep, submitted_at=_utc(sweep.submitted_at),
                                     deadline_at=_utc(sweep.deadline_at),
                                     stopped_at=_utc(sweep.stopped_at))
        _not_null("sweeps", stored, what)
        with self._lock:
            now = self._now()
            rows = [self._job_in(j, now, what) for j in jobs]
            spans = ([_spans(s, what) for s in intervals] if intervals is not None
                     else [[] for _ in rows])
            evs = [Event(job_id=0, at=_utc(at), kind=kind, message=message)
                   for at, kind, message in (events or ())]
            for ev in evs:
                _not_null("events", ev, what)
            self._check_ids(rows)
            if sweep.id is not None and sweep.id in self._sweeps:
                raise StorageError(f"could not {what} in the in-memory store: sweep id "
                                   f"{sweep.id} is taken")
            stored.id = self._ids.take("sweeps", sweep.id, self._sweeps.__contains__)
            self._sweeps[stored.id] = stored
            for row in rows:
                row.sweep_id = stored.id
            trials = self._insert_jobs(rows, spans)
            for trial, ev in zip(trials, evs, strict=False):
                self._insert_event(dataclasses.replace(ev, job_id=trial.id or 0))
            return dataclasses.replace(stored), trials

    def get_sweep(self, sweep_id: int) -> Sweep:
        with self._lock:
            found = self._sweeps.get(sweep_id)
            if found is None:
                raise NotFound(f"no sweep {sweep_ref(sweep_id)}: see `carbonshift queue` or "
                               "`carbonshift history`")
            return dataclasses.replace(found)

    def list_sweeps(self, ids: Iterable[int] | None = None) -> list[Sweep]:
        with self._lock:
            wanted = sorted(self._sweeps) if ids is None else sorted(set(ids) & set(self._sweeps))
            return [dataclasses.replace(self._sweeps[i]) for i in wanted]

    def stop_sweep(
        self, sweep_id: int, at: datetime, reason: str, *, skip_note: str | None = None
    ) -> list[int]:
        what = f"stop sweep {sweep_ref(sweep_id)}"
        with self._lock:
            sweep = self._sweeps.get(sweep_id)
            if sweep is None:
                raise NotFound(f"no sweep {sweep_ref(sweep_id)}: see `carbonshift queue`")
            at = _at(at)
            if sweep.stopped_at is None:
                _not_null("sweeps", {"stop_reason": reason}, what)
                sweep.stopped_at, sweep.stop_reason = at, reason
            if skip_note is None:
                return []
            waiting = [i for i, job in sorted(self._jobs.items())
                       if job.sweep_id == sweep_id and job.state in _WAITING]
            stamp = self._now()
            for i in waiting:
                job = self._jobs[i]
                job.state, job.note, job.updated_at = JobState.SKIPPED, skip_note, stamp
                self._insert_event(Event(i, at, "skipped", skip_note))
            return waiting

    # -- runs -----------------------------------------------------------------------------
    @staticmethod
    def _run_in(run: Run, what: str) -> Run:
        stored = dataclasses.replace(run, started_at=_utc(run.started_at),
                                     finished_at=_utc(run.finished_at),
                                     lease_until=_utc(run.lease_until), state=JobState(run.state))
        _not_null("runs", stored, what)
        return stored

    def _run(self, run_id: int) -> Run:
        found = self._runs.get(run_id)
        if found is None:
            raise NotFound(f"no run {run_id}")
        return found

    def add_run(self, run: Run) -> Run:
        stored = self._run_in(run, f"add a run of job {run.job_id}")
        with self._lock:
            if run.job_id not in self._jobs:
                raise NotFound(f"no job {run.job_id} to add a run to")
            stored.id = self._ids.take("runs", run.id, self._runs.__contains__)
            self._runs[stored.id] = stored
            return _run_out(stored)

    def update_run(self, run: Run) -> None:
        if run.id is None:
            raise NotFound("cannot update a run that was never added (it has no id)")
        stored = self._run_in(run, f"update run {run.id}")
        with self._lock:
            self._write_run(self._run(run.id), stored)

    @staticmethod
    def _write_run(into: Run, values: Run) -> None:
        """What :meth:`update_run` and :meth:`close_run` write: all but job and accounting."""
        for name in ("site", "executor", "started_at", "handle", "host", "finished_at",
                     "exit_code", "state", "out_path", "err_path", "reason", "lease_until"):
            setattr(into, name, getattr(values, name))

    def get_run(self, run_id: int) -> Run:
        with self._lock:
            return _run_out(self._run(run_id))

    def runs_for_job(self, job_id: int) -> list[Run]:
        with self._lock:
            return [_run_out(r) for r in sorted(
                (r for r in self._runs.values() if r.job_id == job_id), key=_run_order)]

    def last_runs(self, job_ids: Iterable[int]) -> dict[int, Run]:
        wanted = set(job_ids)
        with self._lock:
            out: dict[int, Run] = {}
            for run in sorted((r for r in self._runs.values() if r.job_id in wanted),
                              key=_run_order):
                out[run.job_id] = run
            return {job_id: _run_out(run) for job_id, run in sorted(out.items())}

    def open_runs(self, *, host: str | None = None) -> list[Run]:
        with self._lock:
            return [_run_out(r) for _, r in sorted(self._runs.items())
                    if r.finished_at is None and (host is None or r.host == host)]

    def renew_leases(
        self, run_ids: Sequence[int], until: datetime | None, *, host: str | None = None
    ) -> list[int]:
        if not run_ids:
            return []
        until = _utc(until)
        with self._lock:
            renewed = sorted(
                i for i in set(run_ids)
                if (run := self._runs.get(i)) is not None and run.finished_at is None
                and (host is None or run.host == host)
            )
            for i in renewed:
                self._runs[i].lease_until = until
            return renewed

    def _expired(self, run_id: int, now: datetime) -> Run | None:
        run = self._runs.get(run_id)
        if (run is None or run.finished_at is not None or run.lease_until is None
                or not run.lease_until < now):
            return None
        return run

    def expired_runs(self, now: datetime, *, sites: Iterable[str] | None = None) -> list[Run]:
        now = _at(now)
        where = None if sites is None else set(sites)
        with self._lock:
            return [_run_out(r) for i, r in sorted(self._runs.items())
                    if self._expired(i, now) is not None and (where is None or r.site in where)]

    def reclaim_run(self, run_id: int, now: datetime, *, reason: str) -> bool:
        now = _at(now)
        how = "lost: " + reason
        _not_null("runs", {"reason": reason}, f"reclaim run {run_id}")
        with self._lock:
            run = self._expired(run_id, now)
            if run is None:
                return False
            run.finished_at, run.state, run.reason = now, JobState.LOST, reason
            self._close_interval(run_id, now, how)
            return True

    def take_over_run(
        self, run_id: int, now: datetime, *, host: str, lease_until: datetime
    ) -> bool:
        now, until = _at(now), _utc(lease_until)
        _not_null("runs", {"host": host}, f"take over run {run_id}")
        with self._lock:
            run = self._expired(run_id, now)
            if run is None:
                return False
            run.host, run.lease_until = host, until
            return True

    def close_run(self, run: Run) -> bool:
        if run.id is None:
            raise NotFound("cannot close a run that was never added (it has no id)")
        values = self._run_in(run, f"close run {run.id}")
        with self._lock:
            stored = self._run(run.id)
            if stored.finished_at is not None:
                return False
            self._write_run(stored, values)
            if values.finished_at is not None:
                how = (f"exit {run.exit_code}" if run.exit_code is not None
                       else JobState(run.state).value)
                self._close_interval(run.id, values.finished_at, how)
            return True

    def set_accounting(self, run_id: int, accounting: RunAccounting) -> None:
        with self._lock:
            self._run(run_id).accounting = accounting

    # -- run intervals and pauses -----------------------------------------------------------
    def _open_interval(self, run_id: int, at: datetime, handle: str | None) -> None:
        if run_id not in self._runs:
            raise StorageError(f"could not open an interval of run {run_id} in the in-memory "
                               "store: no such run")
        iid = self._ids.take("run_intervals", None, lambda _: False)
        self._run_intervals[run_id].append(RunInterval(run_id, at, None, handle, "", iid))

    def _close_interval(self, run_id: int, at: datetime, how: str) -> bool:
        """End the open interval of a run (there is at most one)."""
        ivs = self._run_intervals.get(run_id, [])
        closed = False
        for k, iv in enumerate(ivs):
            if iv.end is None:
                ivs[k], closed = dataclasses.replace(iv, end=at, how=how), True
        return closed

    def open_run_interval(self, run_id: int, at: datetime, handle: str | None = None) -> None:
        at = _at(at)
        with self._lock:
            self._open_interval(run_id, at, handle)

    def set_interval_handle(self, run_id: int, handle: str) -> None:
        with self._lock:
            ivs = self._run_intervals.get(run_id, [])
            for k, iv in enumerate(ivs):
                if iv.end is None:
                    ivs[k] = dataclasses.replace(iv, handle=handle)

    def close_run_interval(self, run_id: int, at: datetime, how: str) -> bool:
        at = _at(at)
        _not_null("run_intervals", {"how": how}, f"close an interval of run {run_id}")
        with self._lock:
            return self._close_interval(run_id, at, how)

    def pause_run(self, job_id: int, run_id: int, at: datetime, *, how: str | None) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state is not JobState.RUNNING:
                return False
            if how is not None:
                self._close_interval(run_id, _at(at), how)
            job.state, job.updated_at = JobState.SUSPENDED, self._now()
            return True

    def resume_run(
        self, job_id: int, run_id: int, at: datetime, *, handle: str | None = None
    ) -> bool:
        at = _at(at)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state is not JobState.SUSPENDED:
                return False
            spans = self._job_intervals.get(job_id, [])
            under_way = any(a <= at < b for a, b in spans)
            ahead = any(b > at for _, b in spans)
            if not (under_way or not ahead):
                return False
            self._open_interval(run_id, at, handle)
            job.state, job.updated_at = JobState.RUNNING, self._now()
            return True

    def run_intervals(self, run_id: int) -> list[RunInterval]:
        with self._lock:
            return sorted(self._run_intervals.get(run_id, []), key=lambda iv: (iv.start, iv.id))

    # -- leases ---------------------------------------------------------------------------
    def acquire_lease(
        self, name: str, holder: str, now: datetime, until: datetime
    ) -> Lease | None:
        now, end = _at(now), _at(until)
        _not_null("leases", {"name": name, "holder": holder}, f"take the {name} lease")
        with self._lock:
            held = self._leases.get(name)
            if held is None:
                lease = Lease(name, holder, 1, now, end)
            elif held.holder == holder:
                lease = dataclasses.replace(held, until=end)
            elif held.until >= now:
                return None
            else:
                lease = Lease(name, holder, held.term + 1, now, end)
            self._leases[name] = lease
            return lease

    def release_lease(self, name: str, holder: str) -> bool:
        with self._lock:
            held = self._leases.get(name)
            if held is None or held.holder != holder:
                return False
            # as the SQL store: the lease ends at the epoch (long before any ``now``)
            self._leases[name] = dataclasses.replace(held, until=t.NO_ISSUE_SENTINEL)
            return True

    def get_lease(self, name: str) -> Lease | None:
        with self._lock:
            return self._leases.get(name)

    def leases(self, prefix: str = "") -> list[Lease]:
        with self._lock:
            return [self._leases[n] for n in sorted(self._leases) if n.startswith(prefix)]

    # -- samples --------------------------------------------------------------------------
    def add_samples(self, run_id: int, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        what = f"add {len(samples)} samples to run {run_id}"
        stored = [dataclasses.replace(s, start=_utc(s.start), end=_utc(s.end),
                                      method=Method(s.method), estimated=_flag(s.estimated))
                  for s in samples]
        for s in stored:
            _not_null("samples", s, what)
        with self._lock:
            if run_id not in self._runs:
                raise NotFound(f"no run {run_id} to add samples to")
            mine = self._samples[run_id]
            for s in stored:
                mine.append((self._ids.take("samples", None, lambda _: False), s))

    def samples_for_run(self, run_id: int) -> list[Sample]:
        with self._lock:
            return [s for _, s in sorted(self._samples.get(run_id, []),
                                         key=lambda pair: (pair[1].start, pair[0]))]

    def device_energy(self, run_ids: Iterable[int]) -> dict[int, dict[str, float]]:
        with self._lock:
            out: dict[int, dict[str, float]] = {}
            for run_id in sorted(set(run_ids)):
                per = out[run_id] = {}
                for _, s in self._samples.get(run_id, []):
                    per[s.device] = per.get(s.device, 0.0) + float(s.energy_j or 0.0)
            return out

    # -- intensity points -------------------------------------------------------------------
    def add_points(self, points: Sequence[IntensityPoint]) -> int:
        if not points:
            return 0
        what = f"store {len(points)} intensity points"
        stored = [dataclasses.replace(
            p, start=_utc(p.start), end=_utc(p.end), issued_at=_utc(p.issued_at),
            kind=Kind(p.kind), signal=Signal(p.signal), source=Source(p.source),
            estimated=_flag(p.estimated)) for p in points]
        for p in stored:
            _not_null("intensity_points", p, what)
        with self._lock:
            now = self._now()
            new = 0
            for p in stored:
                issued = p.issued_at if p.issued_at is not None else t.NO_ISSUE_SENTINEL
                key = (p.start, p.kind.value, p.provider, p.signal.value, issued)
                zone = self._points[p.zone]
                if key not in zone:
                    zone[key] = (self._ids.take("intensity_points", None, lambda _: False),
                                 issued, p)
                    new += 1
            for p in stored:
                self._fetches[(p.zone, p.provider, p.kind.value)] = now
            return new

    def get_points(
        self,
        zone: str,
        start: datetime,
        end: datetime,
        *,
        kind: Kind | None = None,
        provider: str | None = None,
    ) -> list[IntensityPoint]:
        start, end = _at(start), _at(end)
        with self._lock:
            found = [
                (p.start, issued, pid, p) for pid, issued, p in self._points.get(zone, {}).values()
                if p.start < end and p.end > start
                and (kind is None or p.kind.value == str(kind))
                and (provider is None or p.provider == provider)
            ]
        return [p for *_, p in sorted(found, key=lambda row: row[:3])]

    def last_fetch(self, zone: str, provider: str, kind: Kind) -> datetime | None:
        with self._lock:
            return self._fetches.get((zone, provider, str(kind)))

    def note_provider_failure(self, zone: str, provider: str, at: datetime) -> None:
        at = _at(at)
        with self._lock:
            self._fetches[(zone, provider, FAILURE_KIND)] = at

    def provider_failed_at(self, zone: str, provider: str) -> datetime | None:
        with self._lock:
            return self._fetches.get((zone, provider, FAILURE_KIND))

    # -- events ---------------------------------------------------------------------------
    def _insert_event(self, event: Event) -> None:
        eid = self._ids.take("events", None, lambda _: False)
        self._events[eid] = dataclasses.replace(event, id=eid)
        self._events_of_job[event.job_id].append(eid)

    def add_event(self, event: Event) -> None:
        stored = dataclasses.replace(event, at=_utc(event.at))
        _not_null("events", stored, f"add an event to job {event.job_id}")
        with self._lock:
            if event.job_id not in self._jobs:
                raise NotFound(f"no job {event.job_id} to add an event to")
            self._insert_event(stored)

    def events_for_job(self, job_id: int) -> list[Event]:
        with self._lock:
            return [self._events[i] for i in self._events_of_job.get(job_id, [])]

    def events_of_kind(self, job_ids: Iterable[int], kind: str) -> dict[int, list[Event]]:
        with self._lock:
            out = {j: [self._events[i] for i in self._events_of_job.get(j, [])
                       if self._events[i].kind == kind] for j in sorted(set(job_ids))}
        return {j: evs for j, evs in out.items() if evs}

    def events_since(self, after_id: int, limit: int = 1000) -> list[Event]:
        with self._lock:
            ids = sorted(i for i in self._events if i > after_id)[:max(limit, 0)]
            return [self._events[i] for i in ids]


def _flag(value: object) -> bool:
    """A boolean column's value as it comes back (``1`` reads as ``True``)."""
    return bool(value)


def _site_of(job: Job) -> str | None:
    """Where a job runs for the site filters: its planned site, else its home site."""
    return job.planned_site if job.planned_site is not None else job.site


def _run_order(run: Run) -> tuple[datetime, int]:
    return run.started_at, run.id or 0


def _run_out(run: Run) -> Run:
    out = dataclasses.replace(run)
    if out.accounting is not None and out.accounting.energy_j is None:
        out.accounting = None  # as stored: no energy, no accounting
    return out


__all__ = ["MemoryStore"]
