"""The in-memory store's shared state: dicts behind one lock, nothing on disk.

:class:`MemoryState` holds what every aggregate of
:class:`~scheduler.storage.mem.store.MemoryStore` reads and writes (the rows, the ids, the
one :class:`threading.RLock`, the clock), as :class:`~scheduler.storage.sql.engine.SqlEngine`
holds the engine of the SQL store; here too are the helpers the aggregates share: times
checked and converted to UTC (:func:`_utc`, :func:`_at`), the NOT NULL columns refused
(:func:`_not_null`), and the copies stored and handed back (:func:`_job_copy`,
:func:`_run_out`).

The store keeps the semantics of :class:`~scheduler.storage.store.SqlStore`
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
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

from intensity.model import IntensityPoint
from probes.model import Sample
from scheduler.domain.model import Event, Job, Policy, Run, RunInterval, Site, Sweep
from scheduler.errors import NotFound, StorageError
from scheduler.storage import tables as t
from scheduler.storage.base import Lease, Span

#: the columns of each table that may not be empty (NOT NULL, ids given by the store aside)
_NOT_NULL: dict[str, frozenset[str]] = {
    table.name: frozenset(c.name for c in table.c
                          if not c.nullable and not (c.primary_key and c.autoincrement is True))
    for table in t.metadata.sorted_tables
}
_T = TypeVar("_T")


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


class MemoryState:
    """The rows of every aggregate, the ids, the one lock and the clock (see the module's doc)."""

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

    def _insert_event(self, event: Event) -> None:
        eid = self._ids.take("events", None, lambda _: False)
        self._events[eid] = dataclasses.replace(event, id=eid)
        self._events_of_job[event.job_id].append(eid)


def _flag(value: object) -> bool:
    """A boolean column's value as it comes back (``1`` reads as ``True``)."""
    return bool(value)


def _run_out(run: Run) -> Run:
    out = dataclasses.replace(run)
    if out.accounting is not None and out.accounting.energy_j is None:
        out.accounting = None  # as stored: no energy, no accounting
    return out


__all__ = ["MemoryState"]
