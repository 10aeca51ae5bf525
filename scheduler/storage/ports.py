"""The store's ports: one :class:`~typing.Protocol` per aggregate of the queue's database.

:class:`~scheduler.storage.base.JobStore` is all of them together (the full interface, what
:func:`~scheduler.storage.store.open_store` returns); a service that needs less asks for
less: the planner lease takes :class:`Leases`, the intensity cache :class:`Points`. Every
method is one transaction. Implementations: :class:`~scheduler.storage.store.SqlStore`
(SQLite, PostgreSQL) and :class:`~scheduler.storage.memory.MemoryStore` (dicts, for tests
and simulations); ``tests/storage/test_contract.py`` holds both to the same contract.

Methods raise :class:`~scheduler.errors.NotFound` for a missing row and
:class:`~scheduler.errors.StorageError` for anything the store refused; no driver
exception crosses this boundary. A naive datetime is refused with a
:class:`ValueError` that is also a :class:`~scheduler.errors.CarbonshiftError`; every
datetime handed back is aware UTC.

| Port       | What it holds                                                         |
|------------|-----------------------------------------------------------------------|
| Config     | policies and sites (and ``config_version``, for callers caching them) |
| Jobs       | jobs, their planned intervals, plans, claims                          |
| Sweeps     | sweeps and their trials                                               |
| Runs       | runs, their leases (heartbeats, reclaims), intervals, pauses          |
| Leases     | named leases (the planner lease), with fencing terms                  |
| Samples    | energy samples of runs                                                |
| Points     | intensity points and the fetch bookkeeping (last fetch, failures)     |
| Events     | the lines of each job's story                                         |
| Admin      | life cycle, totals, schema revision, upgrade, integrity, counts       |
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from intensity.model import IntensityPoint, Kind
from probes.model import Sample
from scheduler.domain.model import (
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
)
from scheduler.errors import StorageError

#: ``(start, end)`` of one planned run interval
Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Lease:
    """A named lease (e.g. ``planner``) as stored: its holder, until when, and its term.

    ``term`` grows by one each time the lease changes holder (a fencing number).
    """

    name: str
    holder: str
    term: int
    acquired_at: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class SiteTotals:
    """What a site's accounted runs used and emitted, and the run-now figure they replace."""

    runs: int = 0
    energy_j: float = 0.0
    facility_energy_j: float = 0.0
    emissions_g: float = 0.0
    counterfactual_g: float = 0.0


@dataclass(frozen=True, slots=True)
class Totals:
    """The whole queue in a few numbers (``/metrics``): jobs by state, each site's
    accounted runs, and the last plan written (when, and what its forecast came from)."""

    jobs_by_state: dict[str, int]
    sites: dict[str, SiteTotals]
    last_planned_at: datetime | None
    last_plan_source: str | None


@runtime_checkable
class Admin(Protocol):
    """The store as a whole: its life cycle, its totals and its schema."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def file_lost(self) -> str | None:
        """Why the database this store opened is no longer the one others open at its
        location (an SQLite file deleted or replaced under it); ``None`` while it is."""
        return None

    def save_copy(self, dest: Path) -> None:
        """Copy the database this store holds open to the file ``dest``."""
        raise StorageError(f"this store cannot save a copy of itself to {dest}")

    @abstractmethod
    def totals(self) -> Totals:
        """Jobs by state and per-site run totals in a bounded number of queries."""

    @abstractmethod
    def revision(self) -> str | None:
        """The schema revision stored in the database (``None`` before the first migration)."""

    @abstractmethod
    def count_jobs_by_state(self) -> dict[str, int]:
        """How many jobs are in each state."""

    @abstractmethod
    def integrity_problems(self) -> list[str]:
        """SQLite's ``integrity_check`` and ``foreign_key_check`` findings (empty when fine).

        PostgreSQL enforces both itself, so there it always returns an empty list.
        """

    @abstractmethod
    def upgrade(self, progress: Callable[[int, int, str], None] | None = None) -> str:
        """Apply pending migrations; return the revision the database is now at.
        ``progress(done, total, revision)`` is called as each migration is applied."""


@runtime_checkable
class Config(Protocol):
    """Named policies and sites."""

    #: Bumped by every write of a site or policy through this object, so a caller caching
    #: them (the queue, for a second) sees its own writes at once.
    config_version: int = 0

    @abstractmethod
    def put_policy(self, policy: Policy) -> None:
        """Create or replace the named policy."""

    @abstractmethod
    def get_policy(self, name: str) -> Policy:
        """The named policy; :class:`NotFound` if none."""

    @abstractmethod
    def list_policies(self) -> list[Policy]:
        """All policies, by name."""

    @abstractmethod
    def delete_policy(self, name: str) -> None:
        """Remove the named policy; :class:`NotFound` if none."""

    @abstractmethod
    def put_site(self, site: Site) -> None:
        """Create or replace the named site."""

    @abstractmethod
    def get_site(self, name: str) -> Site:
        """The named site; :class:`NotFound` if none."""

    @abstractmethod
    def list_sites(self) -> list[Site]:
        """All sites, by name."""

    @abstractmethod
    def delete_site(self, name: str) -> None:
        """Remove the named site; :class:`NotFound` if none."""


@runtime_checkable
class Jobs(Protocol):
    """Jobs: their rows, their planned run intervals, plans written onto them, claims."""

    @abstractmethod
    def add_job(
        self, job: Job, *, event: tuple[datetime, str, str] | None = None,
        intervals: Sequence[Span] = (),
    ) -> Job:
        """Insert a job; return it with its new ``id`` (and ``updated_at``).

        ``event`` ``(at, kind, message)`` is recorded for the new job in the same
        transaction (the submission's first line of its story), and so are its planned run
        ``intervals`` (an interruptible job the planner split; see
        :meth:`planned_intervals`)."""

    @abstractmethod
    def add_jobs(
        self, jobs: Sequence[Job], *, intervals: Sequence[Sequence[Span]] | None = None
    ) -> list[int]:
        """Insert many jobs in one transaction; their ids in order. ``intervals``, when
        given, holds each job's planned run intervals (empty for most)."""

    @abstractmethod
    def get_job(self, job_id: int) -> Job:
        """The job; :class:`NotFound` if none."""

    @abstractmethod
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
        """Jobs filtered by state, submission time ``[since, until)``, planned site and
        sweep (``sweep_id``: that sweep's trials), by id; ``limit`` keeps the first
        ``limit`` of them, or with ``newest`` the last."""

    @abstractmethod
    def queue_view(
        self, states: Sequence[JobState], *, limit: int | None = None
    ) -> tuple[list[Job], dict[str, int]]:
        """What ``carbonshift queue`` shows, read in one transaction: at most ``limit`` jobs in
        ``states``, state by state in the order given, each state's by planned start (jobs
        without one after them) then id; and how many jobs each of ``states`` holds in all.
        Its cost follows ``limit``, not the length of the queue."""

    @abstractmethod
    def planned_starts(
        self, *, after: datetime, sites: Iterable[str] | None = None
    ) -> dict[int, datetime]:
        """``{job id: planned start}`` of planned jobs starting after ``after`` (on ``sites``):
        what an agent keeps timers for, without loading whole jobs."""

    @abstractmethod
    def apply_plan(self, plan: Plan, now: datetime) -> int:
        """Write each entry's site, start, expected_g, run_now_g onto jobs that are still
        pending or planned (never on a job that started meanwhile) and set them ``planned``.
        The planned intervals of each job written are replaced by the entry's when it has
        several, and removed otherwise (one interval is the job's start and duration).
        Returns how many jobs were updated."""

    @abstractmethod
    def planned_intervals(self, job_ids: Iterable[int]) -> dict[int, list[Span]]:
        """The stored planned run intervals of these jobs, in order; jobs with none (they
        run in one go from their planned start) are absent."""

    @abstractmethod
    def replan_suspended(
        self, job_id: int, intervals: Sequence[Span], now: datetime, *, note: str | None = None
    ) -> bool:
        """Give a suspended job new planned intervals for its remaining work, if it is
        still ``suspended``. Returns whether they were written."""

    @abstractmethod
    def update_job(self, job: Job, *, expected: Iterable[JobState] | None = None) -> bool:
        """Write back a job's mutable fields (state, plan fields, note, attempts).

        With ``expected``, only if the job's stored state is one of them (so a re-plan
        never writes ``planned`` over a job an agent has just claimed); returns whether the
        job was written. :class:`NotFound` if the job does not exist.
        """

    @abstractmethod
    def transition(
        self, job_id: int, to: JobState, *, expected: Iterable[JobState], note: str | None = None
    ) -> bool:
        """Atomically move a job to ``to`` if its state is one of ``expected``.

        Returns ``False`` (and changes nothing) when the job was in another state. This is
        the claim primitive: a timer claims a job with
        ``transition(id, RUNNING, expected={PLANNED})`` before launching it.
        """

    @abstractmethod
    def claim_due(
        self, now: datetime, *, sites: Iterable[str] | None = None, limit: int = 10
    ) -> list[Job]:
        """Atomically move up to ``limit`` planned jobs whose ``planned_start <= now`` to
        ``running`` and return them (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
        ``BEGIN IMMEDIATE`` + conditional ``UPDATE ... RETURNING`` on SQLite)."""


@runtime_checkable
class SubmitReads(Protocol):
    """What one submission reads and writes, and nothing more: the sites and policies it is
    planned with, the jobs holding capacity it is fitted around, and the job it adds. The
    full store is one; on an SQLite file the CLI hands the queue a standard-library side
    door (:class:`~scheduler.storage.sql.fast_sqlite.LiteSubmitStore`) that answers these
    without importing SQLAlchemy and leaves anything it cannot vouch for to the full store."""

    @property
    def config_version(self) -> int: ...

    def get_policy(self, name: str) -> Policy: ...

    def list_policies(self) -> list[Policy]: ...

    def list_sites(self) -> list[Site]: ...

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
    ) -> list[Job]: ...

    def planned_intervals(self, job_ids: Iterable[int]) -> dict[int, list[Span]]: ...

    def add_job(
        self, job: Job, *, event: tuple[datetime, str, str] | None = None,
        intervals: Sequence[Span] = (),
    ) -> Job: ...


@runtime_checkable
class Sweeps(Protocol):
    """Sweeps: trials submitted, limited and stopped as one unit."""

    @abstractmethod
    def add_sweep_with_jobs(
        self, sweep: Sweep, jobs: Sequence[Job], *,
        events: Sequence[tuple[datetime, str, str]] | None = None,
        intervals: Sequence[Sequence[Span]] | None = None,
    ) -> tuple[Sweep, list[Job]]:
        """Insert a sweep and its trials in one transaction (nothing of either is written
        if any row is refused); return them with their new ids, each trial's ``sweep_id``
        set. ``events``, when given, holds one ``(at, kind, message)`` per trial: the first
        line of its story; ``intervals`` each trial's planned run intervals (empty for
        most, as in :meth:`add_jobs`)."""

    @abstractmethod
    def get_sweep(self, sweep_id: int) -> Sweep:
        """The sweep; :class:`NotFound` if none."""

    @abstractmethod
    def list_sweeps(self, ids: Iterable[int] | None = None) -> list[Sweep]:
        """Sweeps (all, or those of ``ids`` that exist), by id."""

    @abstractmethod
    def stop_sweep(
        self, sweep_id: int, at: datetime, reason: str, *, skip_note: str | None = None
    ) -> list[int]:
        """Stop launching a sweep's trials: record ``stopped_at = at`` and ``reason`` (the
        first stop's are kept), and with ``skip_note`` move every trial still waiting
        (pending or planned) to ``skipped`` with that note and a ``skipped`` event, all in
        one transaction. Returns the ids of the trials this call skipped.
        :class:`NotFound` if no such sweep."""


@runtime_checkable
class Runs(Protocol):
    """Runs (attempts at jobs): their rows, leases, accounting, intervals and pauses."""

    @abstractmethod
    def add_run(self, run: Run) -> Run:
        """Insert a run; return it with its ``id``."""

    @abstractmethod
    def update_run(self, run: Run) -> None:
        """Write back a run's handle, paths, end, exit code, state, reason, lease."""

    @abstractmethod
    def get_run(self, run_id: int) -> Run:
        """The run; :class:`NotFound` if none."""

    @abstractmethod
    def runs_for_job(self, job_id: int) -> list[Run]:
        """A job's runs, oldest first."""

    @abstractmethod
    def last_runs(self, job_ids: Iterable[int]) -> dict[int, Run]:
        """Each job's latest run (by start, then id), in a bounded number of queries; jobs
        without a run are absent."""

    @abstractmethod
    def open_runs(self, *, host: str | None = None) -> list[Run]:
        """Runs with no ``finished_at`` (optionally only those of one host)."""

    @abstractmethod
    def renew_leases(
        self, run_ids: Sequence[int], until: datetime | None, *, host: str | None = None
    ) -> list[int]:
        """Extend the lease of each still-open run to ``until`` (the agent's heartbeat).

        With ``host``, only runs that host holds. Returns the ids renewed: a run missing
        from the answer was closed or taken over by another agent (its lease had expired),
        and the caller must stop it. ``until=None`` parks a run: a cleanly stopped agent
        leaves it to be adopted by the next agent of that host, never reclaimed by others.
        """

    @abstractmethod
    def expired_runs(self, now: datetime, *, sites: Iterable[str] | None = None) -> list[Run]:
        """Open runs whose lease ended before ``now`` (their agent stopped renewing), by id.

        Runs without a lease (parked, see :meth:`renew_leases`) are not expired.
        """

    @abstractmethod
    def reclaim_run(self, run_id: int, now: datetime, *, reason: str) -> bool:
        """Close an open run whose lease ended before ``now`` as ``lost`` with ``reason``
        (``finished_at = now``). Atomic: of several agents reclaiming one run, one gets
        ``True``; a run renewed or closed meanwhile gives ``False`` and is left alone."""

    @abstractmethod
    def take_over_run(
        self, run_id: int, now: datetime, *, host: str, lease_until: datetime
    ) -> bool:
        """Make ``host`` the holder of an open run whose lease ended before ``now`` (an
        engine-side job, such as a Slurm job, outlives its agent and is followed on by
        another). Atomic like :meth:`reclaim_run`."""

    @abstractmethod
    def close_run(self, run: Run) -> bool:
        """Write a run's end (finished_at, exit code, state, reason, paths) if it is still
        open, closing its open interval too. Returns ``False`` when another agent closed it
        first (nothing written)."""

    @abstractmethod
    def set_accounting(self, run_id: int, accounting: RunAccounting) -> None:
        """Store a finished run's energy and emissions figures."""

    @abstractmethod
    def open_run_interval(self, run_id: int, at: datetime, handle: str | None = None) -> None:
        """Record that a run starts running at ``at`` (its launch)."""

    @abstractmethod
    def set_interval_handle(self, run_id: int, handle: str) -> None:
        """Name the process (or engine job) of a run's open interval."""

    @abstractmethod
    def close_run_interval(self, run_id: int, at: datetime, how: str) -> bool:
        """End a run's open interval at ``at`` saying ``how``; ``False`` if none was open."""

    @abstractmethod
    def pause_run(self, job_id: int, run_id: int, at: datetime, *, how: str | None) -> bool:
        """Atomically move a job from ``running`` to ``suspended``. With ``how``, the run's
        open interval is closed at ``at`` in the same transaction (a stopped process);
        without, it stays open until the process exits (a checkpointing job). Returns
        ``False`` (nothing written) when the job is no longer ``running``."""

    @abstractmethod
    def resume_run(
        self, job_id: int, run_id: int, at: datetime, *, handle: str | None = None
    ) -> bool:
        """Atomically move a job from ``suspended`` back to ``running`` (not counted as an
        attempt) and open a new interval of its run at ``at``, but only when its resumption
        is due: one of its planned intervals is under way at ``at``, or none is left
        ahead. Returns whether it won."""

    @abstractmethod
    def run_intervals(self, run_id: int) -> list[RunInterval]:
        """A run's intervals, oldest first (none for a run of a job that is not
        interruptible: it ran from ``started_at`` to ``finished_at``)."""


@runtime_checkable
class Leases(Protocol):
    """Named leases (the planner lease, agents' presence), with fencing terms."""

    @abstractmethod
    def acquire_lease(
        self, name: str, holder: str, now: datetime, until: datetime
    ) -> Lease | None:
        """Take or renew the lease ``name`` for ``holder`` until ``until``.

        Succeeds when nobody holds it, when its holder's lease ended before ``now``, or when
        ``holder`` holds it already (renewal); the term grows by one when the holder
        changes. Returns the lease now held, or ``None`` when another holder's is live.
        Atomic between processes and hosts.
        """

    @abstractmethod
    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if ``holder`` holds it (a clean stop: the next one need not
        wait for it to expire). Returns whether it was held."""

    @abstractmethod
    def get_lease(self, name: str) -> Lease | None:
        """The lease as stored (possibly expired), or ``None`` if never taken."""

    @abstractmethod
    def leases(self, prefix: str = "") -> list[Lease]:
        """Every stored lease whose name starts with ``prefix`` (expired ones too), by name."""


@runtime_checkable
class Samples(Protocol):
    """Energy samples of runs."""

    @abstractmethod
    def add_samples(self, run_id: int, samples: Sequence[Sample]) -> None:
        """Append energy samples of a run (one transaction for the batch)."""

    @abstractmethod
    def samples_for_run(self, run_id: int) -> list[Sample]:
        """A run's samples, by start time."""

    @abstractmethod
    def device_energy(self, run_ids: Iterable[int]) -> dict[int, dict[str, float]]:
        """Energy in joules per device (``gpu0``, ``cpu``, ``memory``...) of each run."""


@runtime_checkable
class Points(Protocol):
    """Intensity points (every vintage) and the fetch bookkeeping beside them."""

    @abstractmethod
    def add_points(self, points: Sequence[IntensityPoint]) -> int:
        """Store intensity points; a point equal in (zone, start, kind, provider, signal,
        issued_at) to a stored one is skipped. Returns how many were new."""

    @abstractmethod
    def get_points(
        self,
        zone: str,
        start: datetime,
        end: datetime,
        *,
        kind: Kind | None = None,
        provider: str | None = None,
    ) -> list[IntensityPoint]:
        """Points of a zone overlapping ``[start, end)``, all vintages, by (start, issued_at)."""

    @abstractmethod
    def last_fetch(self, zone: str, provider: str, kind: Kind) -> datetime | None:
        """When points of that zone, provider and kind were last stored (for the cache)."""

    @abstractmethod
    def note_provider_failure(self, zone: str, provider: str, at: datetime) -> None:
        """Record that ``provider`` failed for ``zone`` at ``at`` (the chain's back-off)."""

    @abstractmethod
    def provider_failed_at(self, zone: str, provider: str) -> datetime | None:
        """When ``provider`` last failed for ``zone`` (``None`` if it never did)."""


@runtime_checkable
class Events(Protocol):
    """The lines of each job's story."""

    @abstractmethod
    def add_event(self, event: Event) -> None:
        """Append a line to a job's story."""

    @abstractmethod
    def events_for_job(self, job_id: int) -> list[Event]:
        """A job's events, oldest first."""

    @abstractmethod
    def events_of_kind(self, job_ids: Iterable[int], kind: str) -> dict[int, list[Event]]:
        """The events of one kind of each of ``job_ids``, oldest first, in a bounded number
        of queries (not one per job)."""

    @abstractmethod
    def events_since(self, after_id: int, limit: int = 1000) -> list[Event]:
        """Events with id greater than ``after_id`` (for tailing)."""


#: Every port, in the order :class:`~scheduler.storage.base.JobStore` composes them
PORTS: tuple[type, ...] = (Admin, Config, Jobs, Sweeps, Runs, Leases, Samples, Points, Events)

__all__ = [
    "PORTS", "Admin", "Config", "Events", "Jobs", "Lease", "Leases", "Points", "Runs",
    "Samples", "SiteTotals", "Span", "SubmitReads", "Sweeps", "Totals",
]
