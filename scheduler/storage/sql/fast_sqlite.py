"""The store's speed side doors, in one named place: raw :mod:`sqlite3` paths around the store.

Two kinds live here. Reads through the standard library alone, for commands that must not
pay for importing SQLAlchemy (below); and the store's own submit path on SQLite
(:class:`DriverInsert`, :func:`driver_write`): SQL compiled once by SQLAlchemy, run on the
DB-API connection. This module imports no SQLAlchemy at import time.

A read-only look at an SQLite queue through the standard library alone.

``carbonshift queue`` only reads, and on SQLite importing SQLAlchemy was most of its cost
(about 0.15 s of CPU of a 0.35 s command). On a busy machine, with 20 processes submitting
on two cores, every CPU-second of a short command costs several seconds of wall time, so
``queue`` took seconds. :func:`queue_view` answers :meth:`JobStore.queue_view
<scheduler.storage.base.JobStore.queue_view>` with the same queries through :mod:`sqlite3`,
opened read-only, for a database that is an existing carbonshift SQLite file at the schema
revision this code knows. For anything else (another backend, no file yet, not SQLite,
another revision, a missing column, any SQLite error) it returns ``None`` and the caller
uses the full store, which creates, migrates, explains or refuses as it always does.

Rows map to :class:`~scheduler.model.Job` exactly as the store maps them:
``tests/storage/test_lite.py`` checks the two against each other, and the column kinds
below against :mod:`scheduler.storage.tables`.

The intensity cache has the same side door: ``forecast`` served from a fresh cached
forecast only reads (the fetch time, the points, a provider's last failure), and
:class:`IntensityCache` answers those reads here while the full store is not open, so
one decision costs no SQLAlchemy; the first write (a provider's new points, a failure)
opens the store, which then answers everything (``tests/storage/test_lite_intensity.py``).

And ``submit`` (:class:`LiteSubmitStore`): what one submission reads (sites, policies, the
jobs holding capacity) and the one transaction it writes (the job and its first event),
through :mod:`sqlite3`, so a submit on an SQLite file never imports SQLAlchemy. The rows are
bound exactly as :mod:`scheduler.storage.tables` binds them (``tests/storage/
test_lite_submit.py`` writes a database both ways and compares them row for row); anything
the full store would do differently (create, migrate, refuse a read-only file or a full
disk, report a lock) is left to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from intensity.model import IntensityPoint, Kind, Signal, Source
from scheduler.domain.model import Event, Job, JobState
from scheduler.errors import CarbonshiftError, no_policy

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Protocol

    from sqlalchemy import Dialect, Table

    from intensity.chain import FailureLog, PointCache
    from scheduler.domain.model import Policy, Site
    from scheduler.storage.ports import Span, SubmitReads  # noqa: F401 - named as a string in a base class
    from scheduler.storage.sql.engine import SqlEngine

    class FullCache(PointCache, FailureLog, Protocol):
        """What :class:`IntensityCache` hands writes to: the full store."""

#: how long an SQLite writer waits for another's lock (the store's default)
BUSY_TIMEOUT_S = 5.0
#: free bytes under which an SQLite I/O error is taken for a full disk (SQLite reports one
#: that cannot grow its shared-memory index as SQLITE_IOERR_SHMSIZE, not SQLITE_FULL)
DISK_FULL_BELOW_B = 1 << 20

VERSIONS_DIR = Path(__file__).resolve().parent.parent / "migrations" / "versions"

#: Job fields stored as UTC text, as JSON, as 0/1 (tables.py: UTCDateTime, JSON, Boolean)
DATETIME_FIELDS = frozenset({
    "submitted_at", "earliest_start", "latest_start", "deadline_at", "planned_start",
    "updated_at",
})
JSON_FIELDS = frozenset({"argv", "env", "allowed_sites"})
BOOL_FIELDS = frozenset({"shell", "run_now", "interruptible"})
#: Job fields of Float columns (SQLAlchemy binds them through ``float()``)
FLOAT_FIELDS = frozenset({
    "power_w", "threshold_g_per_kwh", "budget_g", "transfer_energy_j", "expected_g", "run_now_g",
    "pause_grace_s",
})
JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
#: ``intensity_fetches.kind`` of a provider's last failure (points.py's FAILURE_KIND)
FAILURE_KIND = "failure"
POINT_FIELDS = ("zone", "start", "end", "intensity_g_per_kwh", "kind", "provider", "signal",
                "issued_at", "source", "estimated")


def head_revision() -> str | None:
    """The newest migration shipped (``NNNN`` of ``versions/NNNN_name.py``)."""
    try:
        names = os.listdir(VERSIONS_DIR)
    except OSError:
        return None
    found = [m.group(1) for n in names if (m := re.fullmatch(r"(\d{4})_\w+\.py", n))]
    return max(found, default=None)


def sqlite_file(url: str) -> Path | None:
    """The absolute file of a plain ``sqlite:////abs/path.db`` URL; ``None`` for anything
    else (other backends, in-memory, query parameters, relative paths)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url or "#" in url:
        return None
    path = url[len(prefix):]
    if not path.startswith("/") or path == "/":
        return None
    return Path(path)


def disk_nearly_full(path: Path) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing folder) is full."""
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < DISK_FULL_BELOW_B


T = TypeVar("T")


def _answer(url: str, read: Callable[[sqlite3.Connection], T]) -> T | None:
    """``read`` on a read-only connection to the SQLite file of ``url``, in one snapshot,
    or ``None`` when the full store must answer instead (see the module's docstring)."""
    path = sqlite_file(url)
    head = head_revision()
    if path is None or head is None or not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S,
                              isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        con.execute("BEGIN")  # one snapshot for everything ``read`` asks
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        if row is None or row[0] != head:
            return None
        return read(con)
    except (sqlite3.Error, ValueError, KeyError, TypeError):
        return None
    finally:
        con.close()


def queue_view(
    url: str, states: Sequence[JobState], *, limit: int | None = None
) -> tuple[list[Job], dict[str, int]] | None:
    """:meth:`JobStore.queue_view` on an SQLite file, or ``None`` when the full store must
    answer instead (see the module's docstring)."""
    return _answer(url, lambda con: _read(con, states, limit))


def planned_intervals(url: str, job_ids: Sequence[int]) -> dict[int, list[tuple[datetime, datetime]]] | None:
    """:meth:`JobStore.planned_intervals` on an SQLite file, or ``None`` when the full store
    must answer instead (the same conditions as :func:`queue_view`)."""
    ids = sorted(set(job_ids))

    def read(con: sqlite3.Connection) -> dict[int, list[tuple[datetime, datetime]]]:
        out: dict[int, list[tuple[datetime, datetime]]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ", ".join("?" * len(chunk))
            for job_id, start, end in con.execute(
                f'SELECT job_id, start, "end" FROM job_intervals WHERE job_id IN ({marks}) '
                "ORDER BY job_id, seq", chunk,
            ):
                out.setdefault(int(job_id), []).append((_utc(start), _utc(end)))
        return out

    return _answer(url, read)


def _read(
    con: sqlite3.Connection, states: Sequence[JobState], limit: int | None
) -> tuple[list[Job], dict[str, int]]:
    # the store's queries (jobs.py, SqlJobs.queue_view), written out
    names = [JobState(s).value for s in states]
    marks = ", ".join("?" * len(names))
    counts = {str(state): int(n) for state, n in con.execute(
        f"SELECT state, count(*) FROM jobs WHERE state IN ({marks}) GROUP BY state", names)}
    columns = ", ".join(f'"{name}"' for name in JOB_FIELDS)
    jobs: list[Job] = []
    for name in names:
        for where, order in (("planned_start IS NOT NULL", "planned_start, id"),
                             ("planned_start IS NULL", "id")):
            left = None if limit is None else limit - len(jobs)
            if (left is not None and left <= 0) or not counts.get(name):
                break
            sql = f"SELECT {columns} FROM jobs WHERE state = ? AND {where} ORDER BY {order}"
            params: list[Any] = [name]
            if left is not None:
                sql += " LIMIT ?"
                params.append(left)
            jobs.extend(_job(r) for r in con.execute(sql, params))
    return jobs, counts


def _job(row: Sequence[Any]) -> Job:
    values: dict[str, Any] = dict(zip(JOB_FIELDS, row, strict=True))
    for name in DATETIME_FIELDS:
        if values[name] is not None:
            values[name] = _utc(values[name])
    for name in JSON_FIELDS:
        if values[name] is not None:
            values[name] = json.loads(values[name])
    for name in BOOL_FIELDS:
        values[name] = bool(values[name])
    values["state"] = JobState(values["state"])
    return Job(**values)


S = TypeVar("S")


class _SideDoor(Generic[S]):
    """A reader of the SQLite file of ``url`` through :mod:`sqlite3` while ``is_open()``
    says the full store is not open; what it cannot vouch for, and everything once the
    store is open, goes to ``store()`` (which opens it, creating or migrating the file as
    it always does)."""

    def __init__(self, url: str, store: Callable[[], S], is_open: Callable[[], bool]) -> None:
        self.url = url
        self._store = store
        self._is_open = is_open

    def _lite(self, read: Callable[[sqlite3.Connection], T]) -> tuple[T] | None:
        """``(answer,)`` read through :mod:`sqlite3`; ``None`` when the store is to answer."""
        if self._is_open():
            return None
        return _answer(self.url, lambda con: (read(con),))


class IntensityCache(_SideDoor["FullCache"]):
    """The intensity service's cache and failure log over the SQLite file of ``url``.

    Reads go through :mod:`sqlite3` (as :func:`queue_view`) while ``is_open()`` says the
    full store is not open; writes, reads this module cannot vouch for, and every read
    once the store is open go to ``store()``."""

    def last_fetch(self, zone: str, provider: str, kind: Kind) -> datetime | None:
        got = self._lite(lambda con: _fetched_at(con, zone, provider, str(kind)))
        return got[0] if got is not None else self._store().last_fetch(zone, provider, kind)

    def provider_failed_at(self, zone: str, provider: str) -> datetime | None:
        got = self._lite(lambda con: _fetched_at(con, zone, provider, FAILURE_KIND))
        return got[0] if got is not None else self._store().provider_failed_at(zone, provider)

    def get_points(
        self, zone: str, start: datetime, end: datetime, *, kind: Kind | None = None,
        provider: str | None = None,
    ) -> list[IntensityPoint]:
        got = self._lite(lambda con: _points(con, zone, start, end, kind, provider))
        if got is not None:
            return got[0]
        return self._store().get_points(zone, start, end, kind=kind, provider=provider)

    def add_points(self, points: Sequence[IntensityPoint]) -> int:
        return self._store().add_points(points)

    def note_provider_failure(self, zone: str, provider: str, at: datetime) -> None:
        self._store().note_provider_failure(zone, provider, at)


def _fetched_at(con: sqlite3.Connection, zone: str, provider: str, kind: str) -> datetime | None:
    row = con.execute("SELECT fetched_at FROM intensity_fetches WHERE zone = ? AND provider = ? "
                      "AND kind = ?", (zone, provider, kind)).fetchone()
    return None if row is None or row[0] is None else _utc(row[0])


def _points(
    con: sqlite3.Connection, zone: str, start: datetime, end: datetime, kind: Kind | None,
    provider: str | None,
) -> list[IntensityPoint]:
    # the store's query (points.py, SqlPoints.get_points), written out
    columns = ", ".join(f'"{name}"' for name in POINT_FIELDS)
    sql = f'SELECT {columns} FROM intensity_points WHERE zone = ? AND start < ? AND "end" > ?'
    params: list[Any] = [zone, sqlite_text(end), sqlite_text(start)]
    if kind is not None:
        sql += " AND kind = ?"
        params.append(str(kind))
    if provider is not None:
        sql += " AND provider = ?"
        params.append(provider)
    sql += " ORDER BY start, issued_key, id"
    return [
        IntensityPoint(zone=z, start=_utc(s), end=_utc(e), intensity_g_per_kwh=value, kind=Kind(k),
                       provider=p, signal=Signal(sig), issued_at=None if issued is None else _utc(issued),
                       source=Source(src), estimated=bool(est))
        for z, s, e, value, k, p, sig, issued, src, est in con.execute(sql, params)
    ]


#: the job and last-run columns of a history row (:func:`history_view`), in that order
HISTORY_JOB_COLUMNS = ("id", "name", "state", "owner", "policy_name", "submitted_at", "planned_start",
                       "planned_site", "site", "zone", "expected_g", "run_now_g", "plan_source",
                       "duration_s", "gpus", "deadline_at", "note", "sweep_id", "array_index")
HISTORY_RUN_COLUMNS = ("id", "site", "started_at", "finished_at", "exit_code", "energy_j",
                       "facility_energy_j", "emissions_g", "counterfactual_g", "energy_method",
                       "intensity_kind", "intensity_provider", "pue", "measured_share", "actual_share")
_HISTORY_TIMES = tuple(i for i, name in enumerate(HISTORY_JOB_COLUMNS) if name in DATETIME_FIELDS) + tuple(
    len(HISTORY_JOB_COLUMNS) + i for i, name in enumerate(HISTORY_RUN_COLUMNS) if name.endswith("_at"))


def history_view(
    url: str, states: Sequence[JobState] | None = None, *, since: datetime | None = None,
    until: datetime | None = None, limit: int | None = None,
) -> list[tuple[Any, ...]] | None:
    """The jobs of :meth:`JobStore.list_jobs(states, since=, until=, limit=, newest=True)
    <scheduler.storage.base.JobStore.list_jobs>` (oldest first), each joined to its last run
    as :meth:`JobStore.last_runs <scheduler.storage.base.JobStore.last_runs>` picks it (the
    last by start time, then id), in one query: a row per job of
    :data:`HISTORY_JOB_COLUMNS` then :data:`HISTORY_RUN_COLUMNS` (all ``None`` without a
    run), times as aware UTC datetimes; or ``None`` when the full store must answer instead
    (the same conditions as :func:`queue_view`)."""
    def read(con: sqlite3.Connection) -> list[tuple[Any, ...]]:
        # built here, so that anything the store would refuse (a naive time, an unknown
        # state) is left to it
        where: list[str] = []
        params: list[Any] = []
        if states is not None:
            names = [JobState(s).value for s in states]
            where.append(f"state IN ({', '.join('?' * len(names))})")
            params.extend(names)
        if since is not None:
            where.append("submitted_at >= ?")
            params.append(sqlite_text(since))
        if until is not None:
            where.append("submitted_at < ?")
            params.append(sqlite_text(until))
        jobs = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
        if limit is not None:
            jobs += " LIMIT ?"
            params.append(limit)
        columns = ", ".join([f'j."{c}"' for c in HISTORY_JOB_COLUMNS] + [f'r."{c}"' for c in HISTORY_RUN_COLUMNS])
        # the store's order of a job's runs is (started_at, id): its last is the first descending
        sql = (f"SELECT {columns} FROM ({jobs}) AS j LEFT JOIN runs AS r ON r.id = "
               "(SELECT id FROM runs WHERE job_id = j.id ORDER BY started_at DESC, id DESC LIMIT 1) "
               "ORDER BY j.id")
        out: list[tuple[Any, ...]] = []
        for row in con.execute(sql, params):
            values = list(row)
            for i in _HISTORY_TIMES:
                if values[i] is not None:
                    values[i] = _utc(values[i])
            out.append(tuple(values))
        return out

    return _answer(url, read)


def events_of_kind(url: str, job_ids: Sequence[int], kind: str) -> dict[int, list[Event]] | None:
    """:meth:`JobStore.events_of_kind <scheduler.storage.base.JobStore.events_of_kind>` on an
    SQLite file (each job's events of ``kind`` in id order, 500 jobs a query), or ``None``
    when the full store must answer instead (the same conditions as :func:`queue_view`)."""
    ids = sorted(set(job_ids))

    def read(con: sqlite3.Connection) -> dict[int, list[Event]]:
        out: dict[int, list[Event]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ", ".join("?" * len(chunk))
            for event_id, job_id, at, message in con.execute(
                f"SELECT id, job_id, at, message FROM events WHERE job_id IN ({marks}) AND kind = ? "
                "ORDER BY job_id, id", [*chunk, kind],
            ):
                out.setdefault(job_id, []).append(
                    Event(job_id=job_id, at=_utc(at), kind=kind, message=message, id=event_id))
        return out

    return _answer(url, read)


def sqlite_text(value: datetime) -> str:
    """An aware time as the store keeps it in SQLite (tables.py's ``_sqlite_bind``): naive
    UTC, fixed width, so text order is time order."""
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()!r}: carbonshift only stores aware UTC times")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# -- submit through the standard library -------------------------------------------------


class _Decline(Exception):
    """A value this module will not bind itself: the full store binds (or refuses) it."""


def _write(url: str, write: Callable[[sqlite3.Connection], T]) -> tuple[T] | None:
    """``write`` in one ``BEGIN IMMEDIATE ... COMMIT`` on the SQLite file of ``url``, or
    ``None`` (nothing written) when the full store must do it instead: the conditions of
    :func:`queue_view`, and a file or folder this user cannot write, a nearly full disk, a
    journal mode other than WAL (the store would switch it), or any SQLite error (a lock
    held past the busy timeout included: the store then tries again and reports it in its
    own words). A failed transaction is rolled back: nothing is half-written."""
    path = sqlite_file(url)
    head = head_revision()
    if path is None or head is None or not path.is_file():
        return None
    if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)) \
            or disk_nearly_full(path):
        return None
    try:
        con = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                              check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        # the store's pragmas (opening.py, _configure_sqlite)
        con.execute("PRAGMA foreign_keys = ON")
        mode = con.execute("PRAGMA journal_mode").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            return None
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute("BEGIN IMMEDIATE")
        try:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            if row is None or row[0] != head:
                con.execute("ROLLBACK")
                return None
            result = write(con)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        return (result,)
    except sqlite3.Error:
        return None
    finally:
        con.close()


def _bind_job_value(name: str, value: Any) -> Any:
    """One job column's value as tables.py binds it on SQLite (UTCDateTime, JSON, Boolean,
    Float); :class:`_Decline` for anything SQLAlchemy's processor might treat otherwise."""
    if name in DATETIME_FIELDS:
        return None if value is None else _bind_time(value)
    if name in JSON_FIELDS:
        return json.dumps(value)  # SQLAlchemy's JSON: json.dumps, None as JSON null
    if name in BOOL_FIELDS:
        if value is None or type(value) is bool:
            return None if value is None else int(value)
        raise _Decline(name)
    if name in FLOAT_FIELDS and value is not None:
        if type(value) not in (int, float):
            raise _Decline(name)
        return float(value)
    return value


def _bind_time(value: Any) -> str:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise _Decline("time")  # the store refuses it in its own words
    return sqlite_text(value)


#: the columns of a job's row a submission writes: every Job field but the id
_JOB_INSERT_FIELDS = tuple(name for name in JOB_FIELDS if name != "id")
_INSERT_JOB_SQL = "INSERT INTO jobs ({}) VALUES ({})".format(
    ", ".join(f'"{n}"' for n in _JOB_INSERT_FIELDS), ", ".join("?" * len(_JOB_INSERT_FIELDS)))
_INSERT_EVENT_SQL = "INSERT INTO events (job_id, at, kind, message) VALUES (?, ?, ?, ?)"


def job_row(job: Job, now: datetime) -> tuple[Any, ...]:
    """The new job's row (:data:`_JOB_INSERT_FIELDS`) as the store writes it (jobs.py,
    ``_job_values``): its state's name, ``updated_at`` = ``now``."""
    values = {n: getattr(job, n) for n in _JOB_INSERT_FIELDS}
    values["state"] = JobState(job.state).value
    values["updated_at"] = now
    return tuple(_bind_job_value(n, values[n]) for n in _JOB_INSERT_FIELDS)


class LiteSubmitStore(_SideDoor["SubmitReads"]):
    """What a submission reads and writes (:class:`~scheduler.storage.ports.SubmitReads`)
    on the SQLite file of ``url``, through :mod:`sqlite3` while ``is_open()`` says the full
    store is not open; anything it cannot vouch for, and everything once the store is open,
    goes to ``store()`` (see the module's docstring)."""

    @property
    def config_version(self) -> int:
        return self._store().config_version if self._is_open() else 0

    def get_policy(self, name: str) -> Policy:
        got = self._lite(lambda con: _config_rows(con, "policies", name))
        if got is None:
            return self._store().get_policy(name)
        if not got[0]:
            raise no_policy(name)
        return _policy(got[0][0])

    def list_policies(self) -> list[Policy]:
        got = self._lite(lambda con: _config_rows(con, "policies"))
        return [_policy(r) for r in got[0]] if got is not None else self._store().list_policies()

    def list_sites(self) -> list[Site]:
        from scheduler.domain.model import Site

        got = self._lite(lambda con: _config_rows(con, "sites"))
        return [Site(**r) for r in got[0]] if got is not None else self._store().list_sites()

    def list_jobs(
        self, states: Iterable[JobState] | None = None, *, since: datetime | None = None,
        until: datetime | None = None, sites: Iterable[str] | None = None, limit: int | None = None,
        newest: bool = False, sweep_id: int | None = None,
    ) -> list[Job]:
        if since is None and until is None and limit is None and not newest and sweep_id is None:
            names = None if states is None else [JobState(s).value for s in states]
            where = list(sites) if sites is not None else None
            got = self._lite(lambda con: _jobs_on(con, names, where))
            if got is not None:
                return got[0]
        return self._store().list_jobs(states, since=since, until=until, sites=sites, limit=limit,
                                       newest=newest, sweep_id=sweep_id)

    def planned_intervals(self, job_ids: Iterable[int]) -> dict[int, list[Span]]:
        ids = list(job_ids)
        got = None if self._is_open() else planned_intervals(self.url, ids)
        return got if got is not None else self._store().planned_intervals(ids)

    def add_job(
        self, job: Job, *, event: tuple[datetime, str, str] | None = None,
        intervals: Sequence[Span] = (),
    ) -> Job:
        if not self._is_open() and job.id is None and not intervals:
            now = datetime.now(UTC)
            try:
                row = job_row(job, now)
                ev = None if event is None else (_bind_time(event[0]), event[1], event[2])
            except _Decline:
                ev, row = None, ()
            if row:
                def insert(con: sqlite3.Connection) -> int:
                    cur = con.execute(_INSERT_JOB_SQL, row)
                    new_id = cur.lastrowid
                    assert new_id is not None
                    if ev is not None:
                        con.execute(_INSERT_EVENT_SQL, (new_id, *ev))
                    return new_id

                got = _write(self.url, insert)
                if got is not None:
                    return dataclasses.replace(job, id=got[0], updated_at=now)
        return self._store().add_job(job, event=event, intervals=intervals)


def _config_rows(con: sqlite3.Connection, table: str, name: str | None = None) -> list[dict[str, Any]]:
    # the store's queries (config.py): one by name, or all by name
    sql = f"SELECT * FROM {table}" + (" WHERE name = ?" if name is not None else " ORDER BY name")
    cur = con.execute(sql, () if name is None else (name,))
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, r, strict=True)) for r in cur]


#: Policy fields stored as UTC text, as 0/1 (tables.py's ``policies``)
POLICY_DATETIME_FIELDS = ("deadline_at", "latest_start_at")
POLICY_BOOL_FIELDS = ("run_now", "interruptible")


def _policy(values: dict[str, Any]) -> Policy:
    from scheduler.domain.model import Policy

    for name in POLICY_DATETIME_FIELDS:
        if values[name] is not None:
            values[name] = _utc(values[name])
    for name in POLICY_BOOL_FIELDS:
        values[name] = bool(values[name])
    return Policy(**values)


def _jobs_on(con: sqlite3.Connection, states: list[str] | None, sites: list[str] | None) -> list[Job]:
    # the store's query (jobs.py, SqlJobs.list_jobs) for these filters, written out
    where: list[str] = []
    params: list[Any] = []
    if states is not None:
        where.append(f"state IN ({', '.join('?' * len(states))})")
        params.extend(states)
    if sites is not None:
        where.append(f"coalesce(planned_site, site) IN ({', '.join('?' * len(sites))})")
        params.extend(sites)
    columns = ", ".join(f'"{name}"' for name in JOB_FIELDS)
    sql = f"SELECT {columns} FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    return [_job(r) for r in con.execute(sql, params)]


# -- the store's own fast path (SQLite): SQLAlchemy-compiled SQL run on the driver ----------


class DriverInsert:
    """A one-row INSERT compiled once by SQLAlchemy Core, run on the DB-API connection.

    ``SqlStore.add_job`` is the submit path and runs one transaction per job; on SQLite,
    SQLAlchemy's per-statement execution machinery costs more than SQLite's insert. This
    keeps the SQL text and each column type's own bind processor (so values are converted
    exactly as SQLAlchemy would, naive datetimes refused) and skips the rest. The
    transaction is still SQLAlchemy's (``BEGIN IMMEDIATE``, commit, rollback).
    """

    def __init__(self, table: Table, names: Sequence[str], dialect: Dialect) -> None:
        from sqlalchemy import bindparam, insert  # this module imports no SQLAlchemy itself

        columns = [table.c[name] for name in names]
        stmt = insert(table).values({c.name: bindparam(c.name, type_=c.type) for c in columns})
        compiled = stmt.compile(dialect=dialect)
        order = compiled.positiontup
        assert order is not None and set(order) == set(names), "positional dialect expected"
        self.sql = str(compiled)
        self._steps = [
            (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in order
        ]
        self._position = {name: i for i, name in enumerate(order)}

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...]:
        """The statement's positional parameters, converted by the column types."""
        return tuple([proc(values[n]) if proc else values[n] for n, proc in self._steps])

    def with_value(self, params: tuple[Any, ...], name: str, value: Any) -> tuple[Any, ...]:
        """``params`` with the (already converted) value of column ``name`` replaced."""
        i = self._position[name]
        return (*params[:i], value, *params[i + 1:])


@contextmanager
def driver_write(store: SqlEngine, what: str) -> Iterator[sqlite3.Connection]:
    """A write transaction run straight on the DB-API connection (SQLite only).

    The same transaction as :meth:`SqlEngine._tx <scheduler.storage.sql.engine.SqlEngine._tx>` (``BEGIN IMMEDIATE``, ``COMMIT``, a rollback on
    any error, the same error translation) without SQLAlchemy's per-transaction
    bookkeeping, which costs more than SQLite's own work for the submit path's two
    one-row inserts. Only for statements run on the yielded driver connection.
    """
    from sqlalchemy.exc import SQLAlchemyError

    store._refuse_read_only(what)
    if not store._per_thread:  # the in-memory database: one locked, shared connection
        with store._tx(what) as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            yield driver
        return
    try:
        conn = store._thread_connection(getattr(store._local, "write", True))
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        driver.execute("BEGIN IMMEDIATE")
        try:
            yield driver
            driver.execute("COMMIT")
        except BaseException:
            if driver.in_transaction:
                driver.rollback()
            raise
    except CarbonshiftError:
        raise
    except (SQLAlchemyError, sqlite3.Error) as exc:
        # as in _tx: a refused row leaves the connection sound, anything else (locked,
        # I/O, closed) gets this thread a fresh one next time
        if not isinstance(exc, sqlite3.IntegrityError):
            store._drop_thread_connection()
        raise store._translate(exc, what) from exc


__all__ = [
    "BUSY_TIMEOUT_S",
    "DISK_FULL_BELOW_B",
    "HISTORY_JOB_COLUMNS",
    "HISTORY_RUN_COLUMNS",
    "DriverInsert",
    "IntensityCache",
    "LiteSubmitStore",
    "disk_nearly_full",
    "driver_write",
    "events_of_kind",
    "head_revision",
    "history_view",
    "job_row",
    "planned_intervals",
    "queue_view",
    "sqlite_file",
    "sqlite_text",
]
