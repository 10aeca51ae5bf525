"""The SQL job store: one implementation of :class:`JobStore` for SQLite and PostgreSQL.

:func:`open_store` turns a URL into an open, migrated :class:`SqlStore`:

- ``sqlite://`` (no path): an in-memory database on one shared connection (the shipped
  in-memory store; same code as the others).
- ``sqlite:////abs/path.db``: a file, created owner-only (0600, parent directory 0700) when
  missing, opened with WAL, a 5 s busy timeout, foreign keys on and ``synchronous=NORMAL``.
- ``postgresql+psycopg://user@host:port/db``: several hosts sharing one queue.

Hot paths use SQLAlchemy Core; on an SQLite file each thread keeps one connection (a pool
checkout costs as much as a one-row insert). Write transactions on SQLite start with ``BEGIN IMMEDIATE``
(the pysqlite recipe: the driver's own transaction handling is switched off and the
``begin`` event emits the BEGIN), so two processes never both read a job as claimable and
a writer waits for the busy timeout instead of failing on a lock upgrade. Claims are a
conditional ``UPDATE ... WHERE state IN (...) RETURNING``; on PostgreSQL ``claim_due``
first locks candidates with ``SELECT ... FOR UPDATE SKIP LOCKED``.

The schema is migrated on open. The current revision is read with one plain query, and
Alembic is imported only when an upgrade is due, so opening an up-to-date database stays
fast. Every SQLAlchemy or driver error leaves this module as a
:class:`~scheduler.errors.StorageError` (or :class:`~scheduler.errors.BadDatabase`,
:class:`~scheduler.errors.NotFound`) with the original chained; passwords never appear.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import operator
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Select,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, RowMapping, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.pool import NullPool, StaticPool

from intensity.model import IntensityPoint, Kind, Signal, Source
from probes.model import Method, Sample
from scheduler.errors import (
    BadDatabase,
    CarbonshiftError,
    DatabaseUnreachable,
    DiskFull,
    NotFound,
    StorageError,
)
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
from scheduler.storage.location import check_folder

#: The newest schema revision this code knows; must equal Alembic's script head.
HEAD_REVISION = "0005"
#: Every revision this code knows, oldest first. A database at any other is from a newer
#: carbonshift (or not ours) and is refused rather than touched.
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005")

BUSY_TIMEOUT_S = 5.0
SQLITE_HEADER = b"SQLite format 3\x00"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x63_73_68_69_66_74  # "cshift": serialises concurrent first opens

_WRITE = "carbonshift_write"  # execution option: this transaction writes (BEGIN IMMEDIATE)
#: ``intensity_fetches.kind`` of the row that says when a provider last failed for a zone
FAILURE_KIND = "failure"


def _now() -> datetime:
    return datetime.now(UTC)


#: free bytes under which an SQLite I/O error is taken for a full disk (SQLite reports one
#: that cannot grow its shared-memory index as SQLITE_IOERR_SHMSIZE, not SQLITE_FULL)
DISK_FULL_BELOW_B = 1 << 20


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


def _is_disk_full(orig: BaseException, path: Path | None) -> bool:
    """A driver error that means the database's disk is full (SQLite or PostgreSQL)."""
    if isinstance(orig, OSError):
        return orig.errno == errno.ENOSPC
    if getattr(orig, "sqlstate", None) == "53100":  # PostgreSQL disk_full
        return True
    name = getattr(orig, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL":
        return True
    return name.startswith("SQLITE_IOERR") and path is not None and disk_nearly_full(path)


def _is_connection_error(orig: BaseException) -> bool:
    """A PostgreSQL error of class 08 (connection exception) or 57P (server shutting down)."""
    state = getattr(orig, "sqlstate", None)
    return isinstance(state, str) and (state.startswith("08") or state.startswith("57P"))


def sqlite_path(url: str) -> Path | None:
    """The file an ``sqlite:///`` URL points at; ``None`` for in-memory or other backends."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or _is_sqlite_memory(parsed):
        return None
    assert parsed.database is not None
    path = Path(parsed.database).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def parse_url(url: str) -> URL:
    """``url`` parsed; :class:`BadDatabase` (exit 2) for one that is not a URL or holds a port
    that is not a number from 1 to 65535."""
    port_text: object = None
    try:
        parsed = make_url(url)
        port_text = parsed.port
    except ArgumentError as exc:
        raise BadDatabase(
            f"database URL {safe_url(url)!r} is not a URL: use sqlite:///path/to/file.db or "
            "postgresql+psycopg://user@host:port/db"
        ) from exc
    except ValueError:  # make_url reads the port with int()
        found = re.search(r"^[^:/]+://(?:[^@/]*@)?[^:/?]*:([^/?]*)", url)
        port_text = found.group(1) if found else "?"
    if port_text is not None and not (isinstance(port_text, int) and 1 <= port_text <= 65535):
        raise BadDatabase(f"database URL has an invalid port {str(port_text)!r}: give a number from 1 to "
                          "65535, like postgresql+psycopg://user@host:5432/db")
    return parsed


def check_cli_url(url: str) -> None:
    """Refuse, at the command line, a database no later command can see: an in-memory SQLite
    URL (``sqlite://``) would plan a job and forget it when the command exits."""
    parsed = parse_url(url)
    if _is_sqlite_memory(parsed):
        raise BadDatabase(f"database URL {url!r} is an in-memory database, gone when this command "
                          "exits: give a file path or sqlite:///path/to/file.db")


def safe_url(url: URL | str) -> str:
    """The URL with its password masked, for messages."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


class SqlStore(JobStore):
    """A :class:`JobStore` over SQLAlchemy Core: SQLite (file or memory) or PostgreSQL.

    Build one with :func:`open_store`. Each public method is one transaction. The store is
    safe to share between threads; :meth:`transition` and :meth:`claim_due` are safe
    between processes sharing the database.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        description: str,
        url: str | None = None,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        #: the URL the store was opened with (may hold a password: never print it; use
        #: :func:`safe_url`)
        self.url = url if url is not None else engine.url.render_as_string(hide_password=False)
        self.engine = engine
        self.description = description
        self.busy_timeout_s = busy_timeout_s
        self.dialect = engine.dialect.name
        self._password = engine.url.password
        self._write_engine = engine.execution_options(**{_WRITE: True})
        # The in-memory database is one connection shared by every thread: serialise use.
        self._lock: AbstractContextManager[Any] = (
            threading.RLock() if isinstance(engine.pool, StaticPool) else nullcontext()
        )
        # SQLite files: one connection per thread, kept (see _thread_connection)
        self._per_thread = self.dialect == "sqlite" and not isinstance(engine.pool, StaticPool)
        self._local = threading.local()
        self._registry_lock = threading.Lock()
        self._thread_conns: dict[int, tuple[threading.Thread, Connection]] = {}
        #: why this store only reads (``"disk full"``: see :func:`open_store`), or None
        self.read_only: str | None = None
        #: an SQLite file's path and (device, inode) when opened (see :meth:`file_lost`)
        self._file: tuple[Path, tuple[int, int]] | None = None
        path = sqlite_path(self.url) if self.dialect == "sqlite" else None
        if path is not None:
            try:
                st = path.stat()
                self._file = (path, (st.st_dev, st.st_ino))
            except OSError:
                pass

    # compiled on first use: only the submit path needs them (a few ms of every command)
    @functools.cached_property
    def _job_insert(self) -> _DriverInsert | None:
        if self.dialect != "sqlite":
            return None
        return _DriverInsert(t.jobs, _JOB_VALUE_FIELDS, self.engine.dialect)

    @functools.cached_property
    def _event_insert(self) -> _DriverInsert | None:
        if self.dialect != "sqlite":
            return None
        return _DriverInsert(t.events, _EVENT_FIELDS, self.engine.dialect)

    # -- plumbing -------------------------------------------------------------------------
    def _scrub(self, message: str) -> str:
        if self._password:
            message = message.replace(str(self._password), "***")
        return " ".join(message.split())

    def _translate(self, exc: BaseException, what: str) -> CarbonshiftError:
        """Turn a SQLAlchemy/driver error into one of ours, with a one-line message."""
        if isinstance(exc, StatementError) and isinstance(exc.orig, CarbonshiftError):
            return exc.orig
        orig = getattr(exc, "orig", None) or exc
        detail = self._scrub(str(orig).splitlines()[0] if str(orig) else type(orig).__name__)
        if isinstance(exc, OperationalError | sqlite3.OperationalError) and (
            "locked" in detail.lower() or "busy" in detail.lower()
        ):
            return StorageError(
                f"{self.description} is locked: another process held it for longer than the "
                f"{self.busy_timeout_s:g} s busy timeout while this one tried to {what}; retry, "
                "or find the process holding it"
            )
        if _is_disk_full(orig, sqlite_path(self.url)):
            return DiskFull(
                f"disk full: could not {what} in {self.description} ({detail}); free space "
                "on its disk (reading the queue still works)"
            )
        if isinstance(exc, DataError):
            return StorageError(
                f"{self.description} refused a value while trying to {what}: {detail}"
            )
        if (isinstance(exc, DBAPIError) and exc.connection_invalidated) or _is_connection_error(
            orig
        ):
            return DatabaseUnreachable(
                f"lost the connection to {self.description} while trying to {what}: {detail}"
            )
        return StorageError(f"could not {what} in {self.description}: {detail}")

    def _thread_connection(self, write: bool) -> Connection:
        """This thread's own long-lived connection (SQLite files only).

        Checking a connection out of a pool and wrapping it costs about as much as a
        one-row insert; keeping one connection per thread halves the cost of a small
        transaction. Connections of threads that have ended are closed when a new thread
        connects, and all of them by :meth:`close`; a forked child never reuses its parent's.
        """
        local = self._local
        conn: Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            lost = self.file_lost()
            if lost is not None:  # a new connection would open another database
                raise StorageError(f"{lost}: not connecting to whatever is at its path now")
            conn = self.engine.connect()
            local.conn, local.pid, local.write = conn, os.getpid(), False
            me = threading.current_thread()
            with self._registry_lock:
                for key, (thread, other) in list(self._thread_conns.items()):
                    if not thread.is_alive():
                        del self._thread_conns[key]
                        other.close()
                self._thread_conns[id(conn)] = (me, conn)
        if local.write != write:
            conn.execution_options(**{_WRITE: write})
            local.write = write
        return conn

    def _drop_thread_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._registry_lock:
                self._thread_conns.pop(id(conn), None)
            try:
                conn.invalidate()
                conn.close()
            except SQLAlchemyError:  # pragma: no cover - already broken
                pass

    def _refuse_read_only(self, what: str) -> None:
        if self.read_only is not None:
            raise DiskFull(f"disk full: could not {what} in {self.description}; free space "
                           "on its disk (reading the queue still works)")

    @contextmanager
    def _tx(self, what: str, *, write: bool = True) -> Iterator[Connection]:
        """One transaction; ``write`` ones take the SQLite write lock at BEGIN."""
        if write:
            self._refuse_read_only(what)
        if self._per_thread:
            try:
                conn = self._thread_connection(write)
                with conn.begin():
                    yield conn
            except CarbonshiftError:
                raise
            except (SQLAlchemyError, sqlite3.Error) as exc:
                # a refused row or a bad parameter leaves the connection sound; anything
                # else (locked, I/O, closed) gets this thread a fresh one next time
                if not isinstance(exc, IntegrityError) and type(exc) is not StatementError:
                    self._drop_thread_connection()
                raise self._translate(exc, what) from exc
            return
        with self._lock:
            try:
                engine = self._write_engine if write else self.engine
                with engine.connect() as conn, conn.begin():
                    yield conn
            except CarbonshiftError:
                raise
            except (SQLAlchemyError, sqlite3.Error) as exc:
                raise self._translate(exc, what) from exc

    @contextmanager
    def _driver_write(self, what: str) -> Iterator[sqlite3.Connection]:
        """A write transaction run straight on the DB-API connection (SQLite only).

        The same transaction as :meth:`_tx` (``BEGIN IMMEDIATE``, ``COMMIT``, a rollback on
        any error, the same error translation) without SQLAlchemy's per-transaction
        bookkeeping, which costs more than SQLite's own work for the submit path's two
        one-row inserts. Only for statements run on the yielded driver connection.
        """
        self._refuse_read_only(what)
        if not self._per_thread:  # the in-memory database: one locked, shared connection
            with self._tx(what) as conn:
                driver = conn.connection.driver_connection
                assert driver is not None
                yield driver
            return
        try:
            conn = self._thread_connection(getattr(self._local, "write", True))
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
                self._drop_thread_connection()
            raise self._translate(exc, what) from exc

    def file_lost(self) -> str | None:
        """Why this store's SQLite file is no longer the one it opened (deleted, or
        replaced by another file at its path), or ``None`` when it still is (and always
        for PostgreSQL and memory). Open connections keep writing into the old file, which
        nobody else sees and which vanishes when they close: see :meth:`save_copy`."""
        if self._file is None:
            return None
        path, identity = self._file
        try:
            st = path.stat()
        except FileNotFoundError:
            return f"database file {path} was deleted"
        except OSError as exc:
            return f"database file {path} cannot be checked: {exc.strerror or exc}"
        if (st.st_dev, st.st_ino) != identity:
            return f"database file {path} was replaced by another file"
        return None

    def save_copy(self, dest: Path) -> None:
        """Copy the database this store has open (even if its file was deleted) to ``dest``
        (owner-only; replacing an earlier copy whole), through this thread's open
        connection (SQLite files only)."""
        if not self._per_thread:
            raise StorageError("only an SQLite file store can save a copy of itself")
        try:
            driver = self._thread_connection(False).connection.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            partial = dest.with_name(dest.name + ".partial")
            partial.unlink(missing_ok=True)
            os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            target = sqlite3.connect(partial)
            try:
                driver.backup(target)
            finally:
                target.close()
            os.replace(partial, dest)  # a later copy replaces an earlier one whole
        except (OSError, sqlite3.Error, SQLAlchemyError) as exc:
            raise StorageError(f"could not save a copy of {self.description} to {dest}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from exc

    def close(self) -> None:
        """Release every connection (those of other threads too)."""
        with self._registry_lock:
            conns = [conn for _, conn in self._thread_conns.values()]
            self._thread_conns = {}
            self._local = threading.local()  # a later call reconnects instead of failing
        for conn in conns:
            try:
                conn.close()
            except SQLAlchemyError:  # pragma: no cover - closing a broken connection
                pass
        try:
            self.engine.dispose()
        except SQLAlchemyError as exc:  # pragma: no cover - dispose rarely fails
            raise self._translate(exc, "close the store") from exc

    # -- policies -------------------------------------------------------------------------
    def put_policy(self, policy: Policy) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        values = dataclasses.asdict(policy)
        with self._tx(f"save policy {policy.name!r}") as conn:
            conn.execute(delete(t.policies).where(t.policies.c.name == policy.name))
            conn.execute(insert(t.policies), values)

    def get_policy(self, name: str) -> Policy:
        with self._tx(f"read policy {name!r}", write=False) as conn:
            row = conn.execute(select(t.policies).where(t.policies.c.name == name)).first()
        if row is None:
            raise NotFound(f"no policy named {name!r}: see `carbonshift policy list`")
        return Policy(**row._mapping)

    def list_policies(self) -> list[Policy]:
        with self._tx("list policies", write=False) as conn:
            rows = conn.execute(select(t.policies).order_by(t.policies.c.name)).all()
        return [Policy(**r._mapping) for r in rows]

    def delete_policy(self, name: str) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        with self._tx(f"delete policy {name!r}") as conn:
            n = conn.execute(delete(t.policies).where(t.policies.c.name == name)).rowcount
        if n == 0:
            raise NotFound(f"no policy named {name!r}: see `carbonshift policy list`")

    # -- sites ----------------------------------------------------------------------------
    def put_site(self, site: Site) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        values = dataclasses.asdict(site)
        with self._tx(f"save site {site.name!r}") as conn:
            conn.execute(delete(t.sites).where(t.sites.c.name == site.name))
            conn.execute(insert(t.sites), values)

    def get_site(self, name: str) -> Site:
        with self._tx(f"read site {name!r}", write=False) as conn:
            row = conn.execute(select(t.sites).where(t.sites.c.name == name)).first()
        if row is None:
            raise NotFound(f"no site named {name!r}: see `carbonshift site list`")
        return Site(**row._mapping)

    def list_sites(self) -> list[Site]:
        with self._tx("list sites", write=False) as conn:
            rows = conn.execute(select(t.sites).order_by(t.sites.c.name)).all()
        return [Site(**r._mapping) for r in rows]

    def delete_site(self, name: str) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        with self._tx(f"delete site {name!r}") as conn:
            n = conn.execute(delete(t.sites).where(t.sites.c.name == name)).rowcount
        if n == 0:
            raise NotFound(f"no site named {name!r}: see `carbonshift site list`")

    # -- jobs -----------------------------------------------------------------------------
    def add_job(
        self, job: Job, *, event: tuple[datetime, str, str] | None = None,
        intervals: Sequence[Span] = (),
    ) -> Job:
        now = _now()
        values = _job_values(job, now)
        fast, fast_event = self._job_insert, self._event_insert
        if fast is not None and fast_event is not None and job.id is None and not intervals:
            # the submit path: both rows bound before the transaction (a naive datetime is
            # refused here), then one BEGIN IMMEDIATE ... COMMIT on the driver; a split
            # interruptible job takes the general path below (its intervals in the same
            # transaction)
            params = fast.parameters(values)
            ev = None if event is None else fast_event.parameters(
                {"job_id": 0, "at": event[0], "kind": event[1], "message": event[2]})
            with self._driver_write(f"add job {job.name!r}") as driver:
                new_id = int(driver.execute(fast.sql, params).lastrowid)  # type: ignore[arg-type]
                if ev is not None:
                    driver.execute(fast_event.sql, fast_event.with_value(ev, "job_id", new_id))
        else:
            with self._tx(f"add job {job.name!r}") as conn:
                key = conn.execute(_INSERT_JOB, values).inserted_primary_key
                assert key is not None
                new_id = int(key[0])
                if event is not None:
                    conn.execute(insert(t.events), {"job_id": new_id, "at": event[0],
                                                    "kind": event[1], "message": event[2]})
                _insert_intervals(conn, {new_id: intervals})
        return dataclasses.replace(job, id=new_id, updated_at=now)

    def add_jobs(
        self, jobs: Sequence[Job], *, intervals: Sequence[Sequence[Span]] | None = None
    ) -> list[int]:
        if not jobs:
            return []
        now = _now()
        values = [_job_values(j, now) for j in jobs]
        with self._tx(f"add {len(jobs)} jobs") as conn:
            result = conn.execute(
                insert(t.jobs).returning(t.jobs.c.id, sort_by_parameter_order=True), values
            )
            ids = [int(i) for i in result.scalars().all()]
            if intervals is not None:
                _insert_intervals(conn, dict(zip(ids, intervals, strict=True)))
            return ids

    def get_job(self, job_id: int) -> Job:
        if not -(2**63) <= job_id < 2**63:  # no such row can exist; SQLite would overflow
            raise NotFound(f"no job {job_id}: see `carbonshift queue` or `carbonshift history`")
        with self._tx(f"read job {job_id}", write=False) as conn:
            row = conn.execute(_SELECT_JOB, {"id": job_id}).first()
        if row is None:
            raise NotFound(f"no job {job_id}: see `carbonshift queue` or `carbonshift history`")
        return _job_from_row(row._mapping)

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
        c = t.jobs.c
        query: Select[Any] = select(t.jobs)
        if sweep_id is not None:
            query = query.where(c.sweep_id == sweep_id)
        if states is not None:
            query = query.where(c.state.in_([str(s) for s in states]))
        if since is not None:
            query = query.where(c.submitted_at >= since)
        if until is not None:
            query = query.where(c.submitted_at < until)
        if sites is not None:
            query = query.where(func.coalesce(c.planned_site, c.site).in_(list(sites)))
        query = query.order_by(c.id.desc() if newest else c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._tx("list jobs", write=False) as conn:
            rows = conn.execute(query).all()
        return [_job_from_row(r._mapping) for r in (reversed(rows) if newest else rows)]

    # -- sweeps ---------------------------------------------------------------------------
    def add_sweep_with_jobs(
        self, sweep: Sweep, jobs: Sequence[Job], *,
        events: Sequence[tuple[datetime, str, str]] | None = None,
        intervals: Sequence[Sequence[Span]] | None = None,
    ) -> tuple[Sweep, list[Job]]:
        for given, what in ((events, "events"), (intervals, "interval lists")):
            if given is not None and len(given) != len(jobs):
                raise ValueError(f"{len(given)} {what} for {len(jobs)} trials")
        now = _now()
        with self._tx(f"add sweep {sweep.name!r} of {len(jobs)} trials") as conn:
            key = conn.execute(insert(t.sweeps), _sweep_values(sweep)).inserted_primary_key
            assert key is not None
            sweep_id = int(key[0])
            trials = [dataclasses.replace(j, sweep_id=sweep_id) for j in jobs]
            ids: list[int] = []
            if trials:
                result = conn.execute(
                    insert(t.jobs).returning(t.jobs.c.id, sort_by_parameter_order=True),
                    [_job_values(j, now) for j in trials],
                )
                ids = [int(i) for i in result.scalars().all()]
            if intervals is not None and ids:
                _insert_intervals(conn, dict(zip(ids, intervals, strict=True)))
            if events and ids:
                conn.execute(insert(t.events), [
                    {"job_id": i, "at": at, "kind": kind, "message": message}
                    for i, (at, kind, message) in zip(ids, events, strict=True)
                ])
        return (dataclasses.replace(sweep, id=sweep_id),
                [dataclasses.replace(j, id=i, updated_at=now) for j, i in zip(trials, ids, strict=True)])

    def get_sweep(self, sweep_id: int) -> Sweep:
        found = self.list_sweeps([sweep_id]) if -(2**63) <= sweep_id < 2**63 else []
        if not found:
            raise NotFound(f"no sweep {sweep_ref(sweep_id)}: see `carbonshift queue` or "
                           "`carbonshift history`")
        return found[0]

    def list_sweeps(self, ids: Iterable[int] | None = None) -> list[Sweep]:
        query = select(t.sweeps).order_by(t.sweeps.c.id)
        wanted = None if ids is None else sorted(set(ids))
        with self._tx("list sweeps", write=False) as conn:
            if wanted is None:
                rows = conn.execute(query).all()
            else:
                rows = [r for k in range(0, len(wanted), _CHUNK) for r in conn.execute(
                    query.where(t.sweeps.c.id.in_(wanted[k:k + _CHUNK])))]
        return [_sweep_from_row(r._mapping) for r in rows]

    def stop_sweep(
        self, sweep_id: int, at: datetime, reason: str, *, skip_note: str | None = None
    ) -> list[int]:
        s, c = t.sweeps.c, t.jobs.c
        with self._tx(f"stop sweep {sweep_ref(sweep_id)}") as conn:
            if conn.execute(select(s.id).where(s.id == sweep_id)).first() is None:
                raise NotFound(f"no sweep {sweep_ref(sweep_id)}: see `carbonshift queue`")
            conn.execute(update(t.sweeps).where(s.id == sweep_id, s.stopped_at.is_(None))
                         .values(stopped_at=at, stop_reason=reason))
            if skip_note is None:
                return []
            waiting = [int(i) for i in conn.execute(
                select(c.id).where(c.sweep_id == sweep_id, c.state.in_(_WAITING))
                .order_by(c.id)).scalars()]
            if not waiting:
                return []
            conn.execute(update(t.jobs).where(c.id.in_(waiting), c.state.in_(_WAITING))
                         .values(state=JobState.SKIPPED.value, note=skip_note, updated_at=_now()))
            conn.execute(insert(t.events), [
                {"job_id": i, "at": at, "kind": "skipped", "message": skip_note} for i in waiting
            ])
            return waiting

    def queue_view(
        self, states: Sequence[JobState], *, limit: int | None = None
    ) -> tuple[list[Job], dict[str, int]]:
        c = t.jobs.c
        names = [JobState(s).value for s in states]
        jobs: list[Job] = []
        with self._tx("list the queue", write=False) as conn:
            counts = {str(state): int(n) for state, n in conn.execute(
                select(c.state, func.count()).where(c.state.in_(names)).group_by(c.state))}
            # per state, planned then unplanned: each an index range scan of
            # (state, planned_start) in index order that stops at what is left of the limit
            for name in names:
                for planned in (True, False):
                    left = None if limit is None else limit - len(jobs)
                    if (left is not None and left <= 0) or not counts.get(name):
                        break
                    query = select(t.jobs).where(c.state == name)
                    query = (query.where(c.planned_start.is_not(None)).order_by(c.planned_start, c.id)
                             if planned else query.where(c.planned_start.is_(None)).order_by(c.id))
                    if left is not None:
                        query = query.limit(left)
                    jobs.extend(_job_from_row(r._mapping) for r in conn.execute(query))
        return jobs, counts

    def planned_starts(
        self, *, after: datetime, sites: Iterable[str] | None = None
    ) -> dict[int, datetime]:
        c = t.jobs.c
        query = select(c.id, c.planned_start).where(
            c.state == JobState.PLANNED.value, c.planned_start > after
        )
        if sites is not None:
            query = query.where(func.coalesce(c.planned_site, c.site).in_(list(sites)))
        with self._tx("list planned starts", write=False) as conn:
            return {int(i): start for i, start in conn.execute(query).all()}

    def apply_plan(self, plan: Plan, now: datetime) -> int:
        if not plan.entries:
            return 0
        c = t.jobs.c
        stmt = (
            update(t.jobs)
            .where(c.id == bindparam("b_id"), c.state.in_(_WAITING))
            .values(
                state=JobState.PLANNED.value,
                planned_site=bindparam("b_site"),
                planned_start=bindparam("b_start"),
                expected_g=bindparam("b_expected_g"),
                run_now_g=bindparam("b_run_now_g"),
                updated_at=bindparam("b_now"),
            )
        )
        written: list[int] = []
        with self._tx(f"apply a plan of {len(plan.entries)} jobs") as conn:
            for job_id, entry in plan.entries.items():
                if conn.execute(
                    stmt,
                    {
                        "b_id": job_id,
                        "b_site": entry.site,
                        "b_start": entry.start,
                        "b_expected_g": entry.expected_g,
                        "b_run_now_g": entry.run_now_g,
                        "b_now": now,
                    },
                ).rowcount:
                    written.append(job_id)
            # the jobs written get the entry's intervals (when it split them) in place of
            # any they had: one statement per chunk, cheap when there are none
            ji = t.job_intervals.c
            for i in range(0, len(written), _CHUNK):
                conn.execute(delete(t.job_intervals).where(ji.job_id.in_(written[i:i + _CHUNK])))
            _insert_intervals(conn, {
                j: plan.entries[j].intervals for j in written if len(plan.entries[j].intervals) > 1
            })
        return len(written)

    # -- interruptible jobs ---------------------------------------------------------------
    def planned_intervals(self, job_ids: Iterable[int]) -> dict[int, list[Span]]:
        ids = sorted(set(job_ids))
        out: dict[int, list[Span]] = {}
        if not ids:
            return out
        ji = t.job_intervals.c
        with self._tx("read planned intervals", write=False) as conn:
            for i in range(0, len(ids), _CHUNK):
                rows = conn.execute(
                    select(ji.job_id, ji.start, ji.end)
                    .where(ji.job_id.in_(ids[i:i + _CHUNK]))
                    .order_by(ji.job_id, ji.seq)
                ).all()
                for job_id, start, end in rows:
                    out.setdefault(int(job_id), []).append((start, end))
        return out

    def replan_suspended(
        self, job_id: int, intervals: Sequence[Span], now: datetime, *, note: str | None = None
    ) -> bool:
        if not intervals:
            raise ValueError("a suspended job needs at least one interval to resume in")
        c = t.jobs.c
        values: dict[str, Any] = {"updated_at": _now()}
        if note is not None:
            values["note"] = note
        with self._tx(f"re-plan suspended job {job_id}") as conn:
            n = conn.execute(
                update(t.jobs)
                .where(c.id == job_id, c.state == JobState.SUSPENDED.value)
                .values(values)
            ).rowcount
            if n != 1:
                return False
            conn.execute(delete(t.job_intervals).where(t.job_intervals.c.job_id == job_id))
            _insert_intervals(conn, {job_id: intervals})
        return True

    def open_run_interval(self, run_id: int, at: datetime, handle: str | None = None) -> None:
        with self._tx(f"open an interval of run {run_id}") as conn:
            _open_interval(conn, run_id, at, handle)

    def set_interval_handle(self, run_id: int, handle: str) -> None:
        ri = t.run_intervals.c
        with self._tx(f"record the process of run {run_id}") as conn:
            conn.execute(
                update(t.run_intervals)
                .where(ri.run_id == run_id, ri.end.is_(None))
                .values(handle=handle)
            )

    def close_run_interval(self, run_id: int, at: datetime, how: str) -> bool:
        with self._tx(f"close an interval of run {run_id}") as conn:
            return _close_interval(conn, run_id, at, how)

    def pause_run(self, job_id: int, run_id: int, at: datetime, *, how: str | None) -> bool:
        c = t.jobs.c
        with self._tx(f"pause job {job_id}") as conn:
            n = conn.execute(
                update(t.jobs)
                .where(c.id == job_id, c.state == JobState.RUNNING.value)
                .values(state=JobState.SUSPENDED.value, updated_at=_now())
            ).rowcount
            if n != 1:
                return False
            if how is not None:
                _close_interval(conn, run_id, at, how)
        return True

    def resume_run(
        self, job_id: int, run_id: int, at: datetime, *, handle: str | None = None
    ) -> bool:
        c, ji = t.jobs.c, t.job_intervals.c
        # due: an interval is under way, or none is left ahead (the first interval not yet
        # ended has begun); read in the same statement as the state, so a re-plan that
        # moved the job's intervals is always respected
        mine = ji.job_id == c.id
        under_way = exists().where(mine, ji.start <= at, ji.end > at)
        ahead = exists().where(mine, ji.end > at)
        due = under_way | ~ahead
        with self._tx(f"resume job {job_id}") as conn:
            n = conn.execute(
                update(t.jobs)
                .where(c.id == job_id, c.state == JobState.SUSPENDED.value, due)
                .values(state=JobState.RUNNING.value, updated_at=_now())
            ).rowcount
            if n != 1:
                return False
            _open_interval(conn, run_id, at, handle)
        return True

    def run_intervals(self, run_id: int) -> list[RunInterval]:
        ri = t.run_intervals.c
        with self._tx(f"read the intervals of run {run_id}", write=False) as conn:
            rows = conn.execute(
                select(t.run_intervals).where(ri.run_id == run_id).order_by(ri.start, ri.id)
            ).all()
        return [RunInterval(**r._mapping) for r in rows]

    def update_job(self, job: Job, *, expected: Iterable[JobState] | None = None) -> bool:
        if job.id is None:
            raise NotFound("cannot update a job that was never added (it has no id)")
        values = {
            "state": JobState(job.state).value,
            "planned_start": job.planned_start,
            "planned_site": job.planned_site,
            "expected_g": job.expected_g,
            "run_now_g": job.run_now_g,
            "plan_source": job.plan_source,
            "note": job.note,
            "attempts": job.attempts,
            "priority": job.priority,
            "updated_at": _now(),
        }
        stmt = update(t.jobs).where(t.jobs.c.id == job.id)
        if expected is not None:
            stmt = stmt.where(t.jobs.c.state.in_([JobState(s).value for s in expected]))
        with self._tx(f"update job {job.id}") as conn:
            n = conn.execute(stmt.values(values)).rowcount
            exists = n == 0 and expected is not None and conn.execute(
                select(t.jobs.c.id).where(t.jobs.c.id == job.id)
            ).first() is not None
        if exists:
            return False
        if n == 0:
            raise NotFound(f"no job {job.id}: see `carbonshift queue` or `carbonshift history`")
        return True

    def transition(
        self, job_id: int, to: JobState, *, expected: Iterable[JobState], note: str | None = None
    ) -> bool:
        """Atomically move a job to ``to`` if its state is one of ``expected``.

        Entering ``running`` counts an attempt (``attempts + 1``). :class:`NotFound` if the
        job does not exist; ``False`` if it is in another state.
        """
        c = t.jobs.c
        values: dict[str, Any] = {"state": JobState(to).value, "updated_at": _now()}
        if note is not None:
            values["note"] = note
        if JobState(to) is JobState.RUNNING:
            values["attempts"] = c.attempts + 1
        stmt = (
            update(t.jobs)
            .where(c.id == job_id, c.state.in_([JobState(s).value for s in expected]))
            .values(values)
        )
        with self._tx(f"move job {job_id} to {to}") as conn:
            if conn.execute(stmt).rowcount == 1:
                return True
            exists = conn.execute(select(c.id).where(c.id == job_id)).first()
        if exists is None:
            raise NotFound(f"no job {job_id}: see `carbonshift queue` or `carbonshift history`")
        return False

    def claim_due(
        self, now: datetime, *, sites: Iterable[str] | None = None, limit: int = 10
    ) -> list[Job]:
        """Move up to ``limit`` due planned jobs to ``running`` (``attempts + 1``) and return
        them, earliest planned start first (then higher priority, then id)."""
        c = t.jobs.c
        candidates = (
            select(c.id)
            .where(c.state == JobState.PLANNED.value, c.planned_start <= now)
            .order_by(c.planned_start, c.priority.desc(), c.id)
            .limit(limit)
        )
        if sites is not None:
            candidates = candidates.where(
                func.coalesce(c.planned_site, c.site).in_(list(sites))
            )
        if self.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        with self._tx("claim due jobs") as conn:
            ids = list(conn.execute(candidates).scalars())
            if not ids:
                return []
            rows = conn.execute(
                update(t.jobs)
                .where(c.id.in_(ids), c.state == JobState.PLANNED.value)
                .values(state=JobState.RUNNING.value, updated_at=_now(), attempts=c.attempts + 1)
                .returning(*t.jobs.c)
            ).all()
        claimed = [_job_from_row(r._mapping) for r in rows]
        claimed.sort(key=lambda j: (j.planned_start or now, -j.priority, j.id or 0))
        return claimed

    # -- runs -----------------------------------------------------------------------------
    def add_run(self, run: Run) -> Run:
        values = _run_values(run)
        values.update(_accounting_values(run.accounting))
        try:
            with self._tx(f"add a run of job {run.job_id}") as conn:
                new_id = conn.execute(
                    insert(t.runs).returning(t.runs.c.id), values
                ).scalar_one()
        except StorageError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise NotFound(f"no job {run.job_id} to add a run to") from exc
            raise
        return dataclasses.replace(run, id=new_id)

    def update_run(self, run: Run) -> None:
        if run.id is None:
            raise NotFound("cannot update a run that was never added (it has no id)")
        values = _run_values(run)
        del values["job_id"]
        with self._tx(f"update run {run.id}") as conn:
            n = conn.execute(update(t.runs).where(t.runs.c.id == run.id).values(values)).rowcount
        if n == 0:
            raise NotFound(f"no run {run.id}")

    def get_run(self, run_id: int) -> Run:
        with self._tx(f"read run {run_id}", write=False) as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no run {run_id}")
        return _run_from_row(row._mapping)

    def runs_for_job(self, job_id: int) -> list[Run]:
        c = t.runs.c
        with self._tx(f"read runs of job {job_id}", write=False) as conn:
            rows = conn.execute(
                select(t.runs).where(c.job_id == job_id).order_by(c.started_at, c.id)
            ).all()
        return [_run_from_row(r._mapping) for r in rows]

    def last_runs(self, job_ids: Iterable[int]) -> dict[int, Run]:
        ids = sorted(set(job_ids))
        c = t.runs.c
        out: dict[int, Run] = {}
        with self._tx("read the last runs of jobs", write=False) as conn:
            for k in range(0, len(ids), 500):  # bounded IN lists; rows in run order per job
                rows = conn.execute(
                    select(t.runs).where(c.job_id.in_(ids[k:k + 500]))
                    .order_by(c.job_id, c.started_at, c.id)
                ).all()
                for r in rows:
                    run = _run_from_row(r._mapping)
                    out[run.job_id] = run
        return out

    def open_runs(self, *, host: str | None = None) -> list[Run]:
        c = t.runs.c
        query = select(t.runs).where(c.finished_at.is_(None))
        if host is not None:
            query = query.where(c.host == host)
        with self._tx("list open runs", write=False) as conn:
            rows = conn.execute(query.order_by(c.id)).all()
        return [_run_from_row(r._mapping) for r in rows]

    def renew_leases(
        self, run_ids: Sequence[int], until: datetime | None, *, host: str | None = None
    ) -> list[int]:
        if not run_ids:
            return []
        c = t.runs.c
        stmt = update(t.runs).where(c.id.in_(list(run_ids)), c.finished_at.is_(None))
        if host is not None:
            stmt = stmt.where(c.host == host)
        with self._tx(f"renew the leases of {len(run_ids)} runs") as conn:
            renewed = conn.execute(stmt.values(lease_until=until).returning(c.id)).scalars()
            return sorted(int(i) for i in renewed)

    def expired_runs(self, now: datetime, *, sites: Iterable[str] | None = None) -> list[Run]:
        c = t.runs.c
        query = select(t.runs).where(
            c.finished_at.is_(None), c.lease_until.is_not(None), c.lease_until < now
        )
        if sites is not None:
            query = query.where(c.site.in_(list(sites)))
        with self._tx("list runs whose lease expired", write=False) as conn:
            rows = conn.execute(query.order_by(c.id)).all()
        return [_run_from_row(r._mapping) for r in rows]

    def _expired(self, run_id: int, now: datetime) -> Any:
        c = t.runs.c
        return update(t.runs).where(
            c.id == run_id, c.finished_at.is_(None), c.lease_until.is_not(None),
            c.lease_until < now,
        )

    def reclaim_run(self, run_id: int, now: datetime, *, reason: str) -> bool:
        stmt = self._expired(run_id, now).values(
            finished_at=now, state=JobState.LOST.value, reason=reason
        )
        with self._tx(f"reclaim run {run_id}") as conn:
            won = bool(conn.execute(stmt).rowcount == 1)
            if won:
                _close_interval(conn, run_id, now, "lost: " + reason)
            return won

    def take_over_run(
        self, run_id: int, now: datetime, *, host: str, lease_until: datetime
    ) -> bool:
        stmt = self._expired(run_id, now).values(host=host, lease_until=lease_until)
        with self._tx(f"take over run {run_id}") as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def close_run(self, run: Run) -> bool:
        if run.id is None:
            raise NotFound("cannot close a run that was never added (it has no id)")
        values = _run_values(run)
        del values["job_id"]
        c = t.runs.c
        with self._tx(f"close run {run.id}") as conn:
            n = conn.execute(
                update(t.runs).where(c.id == run.id, c.finished_at.is_(None)).values(values)
            ).rowcount
            if n == 0 and conn.execute(select(c.id).where(c.id == run.id)).first() is None:
                raise NotFound(f"no run {run.id}")
            if n == 1 and run.finished_at is not None:
                how = (f"exit {run.exit_code}" if run.exit_code is not None
                       else JobState(run.state).value)
                _close_interval(conn, run.id, run.finished_at, how)
        return bool(n == 1)

    # -- leases ---------------------------------------------------------------------------
    def acquire_lease(
        self, name: str, holder: str, now: datetime, until: datetime
    ) -> Lease | None:
        c = t.leases.c
        query = select(t.leases).where(c.name == name)
        if self.dialect == "postgresql":
            query = query.with_for_update()  # SQLite: BEGIN IMMEDIATE already serialises
        with self._tx(f"take the {name} lease") as conn:
            row = conn.execute(query).first()
            if row is None:
                values = {"name": name, "holder": holder, "term": 1, "acquired_at": now,
                          "until": until}
                if self.dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert as pg_insert

                    stmt: Any = pg_insert(t.leases).on_conflict_do_nothing()
                else:
                    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                    stmt = sqlite_insert(t.leases).on_conflict_do_nothing()
                if conn.execute(stmt.returning(c.name), values).first() is None:
                    return None  # another process created it first
                return Lease(name, holder, 1, now, until)
            m = row._mapping
            if m["holder"] == holder:
                conn.execute(update(t.leases).where(c.name == name).values(until=until))
                return Lease(name, holder, int(m["term"]), m["acquired_at"], until)
            if m["until"] >= now:
                return None
            term = int(m["term"]) + 1
            conn.execute(
                update(t.leases)
                .where(c.name == name)
                .values(holder=holder, term=term, acquired_at=now, until=until)
            )
            return Lease(name, holder, term, now, until)

    def release_lease(self, name: str, holder: str) -> bool:
        c = t.leases.c
        with self._tx(f"release the {name} lease") as conn:
            n = conn.execute(
                update(t.leases)
                .where(c.name == name, c.holder == holder)
                .values(until=t.NO_ISSUE_SENTINEL)
            ).rowcount
        return bool(n == 1)

    def get_lease(self, name: str) -> Lease | None:
        c = t.leases.c
        with self._tx(f"read the {name} lease", write=False) as conn:
            row = conn.execute(select(t.leases).where(c.name == name)).first()
        if row is None:
            return None
        m = row._mapping
        return Lease(m["name"], m["holder"], int(m["term"]), m["acquired_at"], m["until"])

    def set_accounting(self, run_id: int, accounting: RunAccounting) -> None:
        with self._tx(f"store the accounting of run {run_id}") as conn:
            n = conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(_accounting_values(accounting))
            ).rowcount
        if n == 0:
            raise NotFound(f"no run {run_id}")

    # -- samples --------------------------------------------------------------------------
    def add_samples(self, run_id: int, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        values = [
            {
                "run_id": run_id,
                "start": s.start,
                "end": s.end,
                "device": s.device,
                "energy_j": s.energy_j,
                "method": str(s.method),
                "estimated": s.estimated,
                "note": s.note,
            }
            for s in samples
        ]
        try:
            with self._tx(f"add {len(samples)} samples to run {run_id}") as conn:
                conn.execute(insert(t.samples), values)
        except StorageError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise NotFound(f"no run {run_id} to add samples to") from exc
            raise

    def samples_for_run(self, run_id: int) -> list[Sample]:
        c = t.samples.c
        with self._tx(f"read samples of run {run_id}", write=False) as conn:
            rows = conn.execute(
                select(t.samples).where(c.run_id == run_id).order_by(c.start, c.id)
            ).all()
        return [
            Sample(
                start=m["start"],
                end=m["end"],
                device=m["device"],
                energy_j=m["energy_j"],
                method=Method(m["method"]),
                estimated=bool(m["estimated"]),
                note=m["note"],
            )
            for m in (r._mapping for r in rows)
        ]

    # -- intensity ------------------------------------------------------------------------
    def _insert_ignoring_duplicates(self) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(t.intensity_points).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(t.intensity_points).on_conflict_do_nothing()

    def _upsert_fetch(self) -> Any:
        c = t.intensity_fetches.c
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pg = pg_insert(t.intensity_fetches)
            return pg.on_conflict_do_update(
                index_elements=[c.zone, c.provider, c.kind],
                set_={"fetched_at": pg.excluded.fetched_at},
            )
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(t.intensity_fetches)
        return lite.on_conflict_do_update(
            index_elements=[c.zone, c.provider, c.kind],
            set_={"fetched_at": lite.excluded.fetched_at},
        )

    def add_points(self, points: Sequence[IntensityPoint]) -> int:
        if not points:
            return 0
        now = _now()
        values = [
            {
                "zone": p.zone,
                "start": p.start,
                "end": p.end,
                "intensity_g_per_kwh": p.intensity_g_per_kwh,
                "kind": str(p.kind),
                "provider": p.provider,
                "signal": str(p.signal),
                "issued_at": p.issued_at,
                "issued_key": p.issued_at if p.issued_at is not None else t.NO_ISSUE_SENTINEL,
                "source": str(p.source),
                "estimated": p.estimated,
                "fetched_at": now,
            }
            for p in points
        ]
        fetches = sorted({(p.zone, p.provider, str(p.kind)) for p in points})
        with self._tx(f"store {len(points)} intensity points") as conn:
            new = conn.execute(
                self._insert_ignoring_duplicates().returning(t.intensity_points.c.id), values
            ).all()
            conn.execute(
                self._upsert_fetch(),
                [{"zone": z, "provider": p, "kind": k, "fetched_at": now} for z, p, k in fetches],
            )
        return len(new)

    def get_points(
        self,
        zone: str,
        start: datetime,
        end: datetime,
        *,
        kind: Kind | None = None,
        provider: str | None = None,
    ) -> list[IntensityPoint]:
        c = t.intensity_points.c
        query = select(t.intensity_points).where(c.zone == zone, c.start < end, c.end > start)
        if kind is not None:
            query = query.where(c.kind == str(kind))
        if provider is not None:
            query = query.where(c.provider == provider)
        query = query.order_by(c.start, c.issued_key, c.id)
        with self._tx(f"read intensity points of {zone}", write=False) as conn:
            rows = conn.execute(query).all()
        return [
            IntensityPoint(
                zone=m["zone"],
                start=m["start"],
                end=m["end"],
                intensity_g_per_kwh=m["intensity_g_per_kwh"],
                kind=Kind(m["kind"]),
                provider=m["provider"],
                signal=Signal(m["signal"]),
                issued_at=m["issued_at"],
                source=Source(m["source"]),
                estimated=bool(m["estimated"]),
            )
            for m in (r._mapping for r in rows)
        ]

    def last_fetch(self, zone: str, provider: str, kind: Kind) -> datetime | None:
        c = t.intensity_fetches.c
        with self._tx(f"read the last fetch of {zone}", write=False) as conn:
            value: datetime | None = conn.execute(
                select(c.fetched_at).where(
                    c.zone == zone, c.provider == provider, c.kind == str(kind)
                )
            ).scalar_one_or_none()
        return value

    def note_provider_failure(self, zone: str, provider: str, at: datetime) -> None:
        # a row beside the fetch times, under a kind no point has: no schema change
        with self._tx(f"record that {provider} failed for {zone}") as conn:
            conn.execute(self._upsert_fetch(), [{"zone": zone, "provider": provider,
                                                 "kind": FAILURE_KIND, "fetched_at": at}])

    def provider_failed_at(self, zone: str, provider: str) -> datetime | None:
        c = t.intensity_fetches.c
        with self._tx(f"read the last failure of {provider}", write=False) as conn:
            value: datetime | None = conn.execute(
                select(c.fetched_at).where(
                    c.zone == zone, c.provider == provider, c.kind == FAILURE_KIND
                )
            ).scalar_one_or_none()
        return value

    # -- events ---------------------------------------------------------------------------
    def add_event(self, event: Event) -> None:
        values = {"job_id": event.job_id, "at": event.at, "kind": event.kind,
                  "message": event.message}
        try:
            with self._tx(f"add an event to job {event.job_id}") as conn:
                conn.execute(insert(t.events), values)
        except StorageError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise NotFound(f"no job {event.job_id} to add an event to") from exc
            raise

    def events_for_job(self, job_id: int) -> list[Event]:
        c = t.events.c
        with self._tx(f"read events of job {job_id}", write=False) as conn:
            rows = conn.execute(select(t.events).where(c.job_id == job_id).order_by(c.id)).all()
        return [Event(**r._mapping) for r in rows]

    def events_since(self, after_id: int, limit: int = 1000) -> list[Event]:
        c = t.events.c
        with self._tx("read recent events", write=False) as conn:
            rows = conn.execute(
                select(t.events).where(c.id > after_id).order_by(c.id).limit(limit)
            ).all()
        return [Event(**r._mapping) for r in rows]

    def totals(self) -> Totals:
        j, r = t.jobs.c, t.runs.c
        with self._tx("read the queue's totals", write=False) as conn:
            counts = conn.execute(select(j.state, func.count()).group_by(j.state)).all()
            per_site = conn.execute(
                select(r.site, func.count(), func.sum(r.energy_j), func.sum(r.facility_energy_j),
                       func.sum(r.emissions_g), func.sum(r.counterfactual_g))
                .where(r.energy_j.is_not(None)).group_by(r.site)
            ).all()
            last = conn.execute(
                select(j.updated_at, j.plan_source).where(j.planned_start.is_not(None),
                                                          j.plan_source.is_not(None))
                .order_by(j.updated_at.desc(), j.id.desc()).limit(1)
            ).first()
        return Totals(
            jobs_by_state={str(state): int(n) for state, n in counts},
            sites={str(site): SiteTotals(int(n), float(e or 0.0), float(f or 0.0), float(g or 0.0),
                                         float(c or 0.0))
                   for site, n, e, f, g, c in per_site},
            last_planned_at=last[0] if last is not None else None,
            last_plan_source=last[1] if last is not None else None,
        )

    def device_energy(self, run_ids: Iterable[int]) -> dict[int, dict[str, float]]:
        ids = sorted(set(run_ids))
        c = t.samples.c
        out: dict[int, dict[str, float]] = {i: {} for i in ids}
        with self._tx("read energy by device", write=False) as conn:
            for k in range(0, len(ids), 500):  # bounded IN lists
                rows = conn.execute(
                    select(c.run_id, c.device, func.sum(c.energy_j))
                    .where(c.run_id.in_(ids[k:k + 500])).group_by(c.run_id, c.device)
                ).all()
                for run_id, device, energy_j in rows:
                    out[int(run_id)][str(device)] = float(energy_j or 0.0)
        return out

    # -- maintenance (used by `carbonshift db`) -------------------------------------------
    def revision(self) -> str | None:
        """The schema revision stored in the database (``None`` before the first migration)."""
        try:
            with self._lock, self.engine.connect() as conn:
                return _read_revision(conn)
        except SQLAlchemyError as exc:
            raise self._translate(exc, "read the schema revision") from exc

    def count_jobs_by_state(self) -> dict[str, int]:
        """How many jobs are in each state."""
        c = t.jobs.c
        with self._tx("count jobs", write=False) as conn:
            rows = conn.execute(select(c.state, func.count()).group_by(c.state)).all()
        return {str(state): int(n) for state, n in rows}

    def integrity_problems(self) -> list[str]:
        """SQLite's ``integrity_check`` and ``foreign_key_check`` findings (empty when fine).

        PostgreSQL enforces both itself, so there it always returns an empty list.
        """
        if self.dialect != "sqlite":
            return []
        problems: list[str] = []
        with self._tx("check the database", write=False) as conn:
            for (line,) in conn.exec_driver_sql("PRAGMA integrity_check").all():
                if str(line) != "ok":
                    problems.append(f"integrity: {line}")
            for row in conn.exec_driver_sql("PRAGMA foreign_key_check").all():
                problems.append(
                    f"foreign key: table {row[0]} row {row[1]} points to missing {row[2]}"
                )
        return problems

    def upgrade(self) -> str:
        """Apply pending migrations; return the revision the database is now at."""
        _migrate(self.engine, self.description, self._translate)
        rev = self.revision()
        return rev or "none"


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a public method so no SQLAlchemy error escapes it, even from row conversion
    outside :meth:`SqlStore._tx` (a column the code expects and the database lacks)."""

    @functools.wraps(method)
    def wrapper(self: SqlStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self._translate(exc, method.__name__.replace("_", " ")) from exc

    return wrapper


for _name in sorted(JobStore.__abstractmethods__ | {"revision", "count_jobs_by_state",
                                                    "integrity_problems", "upgrade"}):
    setattr(SqlStore, _name, _guarded(getattr(SqlStore, _name)))


# -- row mapping ------------------------------------------------------------------------

_WAITING = [JobState.PENDING.value, JobState.PLANNED.value]
#: ids per ``IN (...)`` list (well under every backend's limit on bound parameters)
_CHUNK = 500


def _insert_intervals(conn: Connection, intervals: dict[int, Sequence[Span]]) -> None:
    """Store planned run intervals (``seq`` from 0), in one statement."""
    rows = [
        {"job_id": job_id, "seq": i, "start": a, "end": b}
        for job_id, spans in intervals.items() for i, (a, b) in enumerate(spans)
    ]
    if rows:
        conn.execute(insert(t.job_intervals), rows)


def _open_interval(conn: Connection, run_id: int, at: datetime, handle: str | None) -> None:
    conn.execute(insert(t.run_intervals), {"run_id": run_id, "start": at, "handle": handle, "how": ""})


def _close_interval(conn: Connection, run_id: int, at: datetime, how: str) -> bool:
    """End the open interval of a run (there is at most one)."""
    ri = t.run_intervals.c
    n = conn.execute(
        update(t.run_intervals).where(ri.run_id == run_id, ri.end.is_(None)).values(end=at, how=how)
    ).rowcount
    return bool(n)


#: Job fields stored in ``jobs`` (tests/storage/test_contract.py checks that is all of them)
_JOB_FIELDS = [f.name for f in dataclasses.fields(Job) if f.name in t.jobs.c]
_INSERT_JOB = insert(t.jobs)
_SELECT_JOB = select(t.jobs).where(t.jobs.c.id == bindparam("id"))


_JOB_VALUE_FIELDS = [name for name in _JOB_FIELDS if name != "id"]
_EVENT_FIELDS = ["job_id", "at", "kind", "message"]
_get_job_values = operator.attrgetter(*_JOB_VALUE_FIELDS)


class _DriverInsert:
    """A one-row INSERT compiled once by SQLAlchemy Core, run on the DB-API connection.

    ``SqlStore.add_job`` is the submit path and runs one transaction per job; on SQLite,
    SQLAlchemy's per-statement execution machinery costs more than SQLite's insert. This
    keeps the SQL text and each column type's own bind processor (so values are converted
    exactly as SQLAlchemy would, naive datetimes refused) and skips the rest. The
    transaction is still SQLAlchemy's (``BEGIN IMMEDIATE``, commit, rollback).
    """

    def __init__(self, table: Table, names: Sequence[str], dialect: Dialect) -> None:
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


def _job_values(job: Job, now: datetime) -> dict[str, Any]:
    values = dict(zip(_JOB_VALUE_FIELDS, _get_job_values(job), strict=True))
    values["state"] = JobState(job.state).value
    values["argv"] = list(job.argv)
    values["env"] = dict(job.env)
    values["allowed_sites"] = list(job.allowed_sites)
    values["updated_at"] = now
    if job.id is not None:
        values["id"] = job.id
    return values


def _job_from_row(m: RowMapping) -> Job:
    values = {name: m[name] for name in _JOB_FIELDS}
    values["state"] = JobState(m["state"])
    values["shell"] = bool(m["shell"])
    values["run_now"] = bool(m["run_now"])
    values["interruptible"] = bool(m["interruptible"])
    return Job(**values)


_SWEEP_FIELDS = [f.name for f in dataclasses.fields(Sweep)]


def _sweep_values(sweep: Sweep) -> dict[str, Any]:
    values = {name: getattr(sweep, name) for name in _SWEEP_FIELDS}
    if sweep.id is None:
        del values["id"]
    return values


def _sweep_from_row(m: RowMapping) -> Sweep:
    return Sweep(**{name: m[name] for name in _SWEEP_FIELDS})


def _run_values(run: Run) -> dict[str, Any]:
    return {
        "job_id": run.job_id,
        "site": run.site,
        "executor": run.executor,
        "started_at": run.started_at,
        "handle": run.handle,
        "host": run.host,
        "finished_at": run.finished_at,
        "exit_code": run.exit_code,
        "state": JobState(run.state).value,
        "out_path": run.out_path,
        "err_path": run.err_path,
        "reason": run.reason,
        "lease_until": run.lease_until,
    }


_ACCOUNTING_FIELDS = [f.name for f in dataclasses.fields(RunAccounting)]


def _accounting_values(acc: RunAccounting | None) -> dict[str, Any]:
    if acc is None:
        return dict.fromkeys(_ACCOUNTING_FIELDS)
    return {name: getattr(acc, name) for name in _ACCOUNTING_FIELDS}


def _run_from_row(m: RowMapping) -> Run:
    accounting = None
    if m["energy_j"] is not None:
        accounting = RunAccounting(**{name: m[name] for name in _ACCOUNTING_FIELDS})
    return Run(
        job_id=m["job_id"],
        site=m["site"],
        executor=m["executor"],
        started_at=m["started_at"],
        id=m["id"],
        handle=m["handle"],
        host=m["host"],
        finished_at=m["finished_at"],
        exit_code=m["exit_code"],
        state=JobState(m["state"]),
        out_path=m["out_path"],
        err_path=m["err_path"],
        reason=m["reason"],
        lease_until=m["lease_until"],
        accounting=accounting,
    )


# -- opening ------------------------------------------------------------------------------


def _read_revision(conn: Connection) -> str | None:
    """The revision in ``alembic_version``, or ``None`` when the table is absent or empty."""
    if conn.dialect.name == "postgresql":
        # pg_tables, not to_regclass(): a name lookup may use a catalog cache that has not
        # yet seen tables another process committed while this one waited for the lock
        present = conn.exec_driver_sql(
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename = 'alembic_version'"
        ).scalar()
    else:
        present = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).scalar()
    if present is None:
        return None
    value = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return None if value is None else str(value)


def _has_tables(conn: Connection) -> bool:
    if conn.dialect.name == "postgresql":
        q = "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() LIMIT 1"
    else:
        q = "SELECT 1 FROM sqlite_master WHERE type='table' LIMIT 1"
    return conn.exec_driver_sql(q).scalar() is not None


def _check_revision(revision: str | None, where: str) -> None:
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise BadDatabase(
            f"{where} has schema revision {revision!r}, newer than this carbonshift "
            f"understands (newest known {HEAD_REVISION!r}): upgrade carbonshift, or use "
            "another --db"
        )


def _migrate(engine: Engine, where: str, translate: Any) -> None:
    """Bring the schema to :data:`HEAD_REVISION` (imports Alembic only when needed).

    An up-to-date database costs one read (no lock: a CLI command never waits for the
    daemon's writes here). Otherwise the check and the upgrade share one write transaction
    (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock), so two
    processes opening a new database at once migrate it once.
    """
    try:
        with engine.connect() as conn:
            current = _read_revision(conn)
            conn.rollback()
        _check_revision(current, where)
        if current == HEAD_REVISION:
            return
        with engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                revision = _read_revision(conn)
                _check_revision(revision, where)
                if revision == HEAD_REVISION:
                    return
                if revision is None and _has_tables(conn):
                    raise BadDatabase(
                        f"{where} already holds tables but no carbonshift schema revision: "
                        "it is not a carbonshift database; use another --db"
                    )
                _run_alembic_upgrade(conn)
    except CarbonshiftError:
        raise
    except (SQLAlchemyError, sqlite3.Error) as exc:
        raise translate(exc, "migrate the schema") from exc
    except Exception as exc:  # alembic's own errors (CommandError, ...)
        raise StorageError(f"could not migrate the schema of {where}: {exc}") from exc


def _run_alembic_upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _sqlite_on_connect(busy_timeout_s: float, *, read_only: bool = False) -> Any:
    """The ``connect`` listener: pragmas, and the driver's own BEGIN switched off."""

    def on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        _configure_sqlite(dbapi_conn, busy_timeout_s, read_only=read_only)

    return on_connect


def _configure_sqlite(
    dbapi_conn: sqlite3.Connection, busy_timeout_s: float, *, read_only: bool = False
) -> None:
    # pysqlite recipe: let SQLAlchemy's "begin" event emit BEGIN, not the driver.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cur.execute("PRAGMA foreign_keys = ON")
        mode = cur.execute("PRAGMA journal_mode").fetchone()
        if read_only:
            pass  # an immutable read of a full disk: nothing may be written, WAL neither
        elif mode is not None and str(mode[0]).lower() not in ("wal", "memory"):
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
    finally:
        cur.close()


def _on_sqlite_begin(conn: Connection) -> None:
    # Straight to the driver: same effect as conn.exec_driver_sql("BEGIN ..."), without
    # a trip through the statement machinery on every transaction.
    write = conn.get_execution_options().get(_WRITE, False)
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")


def _sqlite_file_checks(path: Path, shown: str) -> bool:
    """Refuse a path carbonshift cannot use, before anything is written.

    Returns whether the file already exists (with content).
    """
    if path.exists():
        if path.is_dir():
            raise BadDatabase(f"database {shown} is a directory: give a file path for --db")
        if not path.is_file():
            raise BadDatabase(f"database {shown} is not a regular file: give a file path for --db")
        if not os.access(path, os.R_OK | os.W_OK):
            raise BadDatabase(
                f"database {shown} is not readable and writable by this user: fix its "
                "permissions or use another --db"
            )
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise BadDatabase(
                f"directory {path.parent} of database {shown} is not writable (SQLite needs "
                "to create its journal there): fix its permissions or use another --db"
            )
        if path.stat().st_size == 0:
            return False
        try:
            with path.open("rb") as fh:
                header = fh.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise BadDatabase(f"cannot read database {shown}: {exc.strerror}") from exc
        if header != SQLITE_HEADER:
            raise BadDatabase(
                f"{shown} is not an SQLite database: point --db at a carbonshift database or "
                "a new file name"
            )
        return True
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadDatabase(
            f"cannot create database {shown}: {ancestor} is not a directory; use another --db"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadDatabase(
            f"cannot create database {shown}: directory {ancestor} is not writable by this "
            "user; use another --db or fix its permissions"
        )
    return False


def _immutable_uri(path: Path) -> str:
    """A read-only URI that takes no locks and needs no shared-memory file (a full disk)."""
    return f"{path.as_uri()}?mode=ro&immutable=1"


def _preflight_existing(path: Path, shown: str) -> bool:
    """Read an existing SQLite file read-only: refuse garbage or a newer schema untouched.

    Returns whether its disk is full: SQLite then cannot even size the shared-memory file
    a reader of a WAL database needs, so the file is checked (and is to be read) without
    locks or shared memory, which is safe while its write-ahead log is empty (nobody can
    be writing it: there is no room).
    """
    try:
        _preflight(path, shown, f"{path.as_uri()}?mode=ro")
        return False
    except BadDatabase as exc:
        cause = exc.__cause__
        if cause is None or not _is_disk_full(cause, path):
            raise
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise DiskFull(
            f"disk full: {shown} cannot be read until space is freed on its disk (its "
            "write-ahead log holds changes not yet in the file)"
        )
    _preflight(path, shown, _immutable_uri(path))
    return True


def _preflight(path: Path, shown: str, uri: str) -> None:
    try:
        ro = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise BadDatabase(f"cannot open database {shown}: {exc}") from exc
    try:
        ro.execute("PRAGMA busy_timeout = 5000")
        names = {r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        revision = None
        if "alembic_version" in names:
            row = ro.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = None if row is None else str(row[0])
        _check_revision(revision, f"database {shown}")
        if revision is None and names:
            raise BadDatabase(
                f"database {shown} holds tables but no carbonshift schema revision: it is not a "
                "carbonshift database; use another --db"
            )
    except sqlite3.DatabaseError as exc:
        raise BadDatabase(
            f"{shown} is not a usable SQLite database ({exc}): point --db at a carbonshift "
            "database or a new file name"
        ) from exc
    finally:
        ro.close()


def _create_owner_only(path: Path) -> None:
    """Create missing parent directories (0700) and an empty database file (0600).

    Another process creating the same ones at the same moment is fine: whoever loses the
    race uses what the winner made (the schema itself is migrated under a lock).
    """
    missing: list[Path] = []
    p = path.parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, 0o600)


def _open_sqlite(url: URL, busy_timeout_s: float, create_parents: bool) -> tuple[Engine, str, bool]:
    """The engine, how to name the database in messages, and whether its disk is full
    (the engine then reads it read-only, see :func:`_preflight_existing`)."""
    full = False
    if _is_sqlite_memory(url):
        engine = create_engine(
            "sqlite://",
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
        shown = "the in-memory database"
    else:
        path = sqlite_path(url.render_as_string(hide_password=False))
        assert path is not None
        shown = str(path)
        try:
            exists = _sqlite_file_checks(path, shown)
            if exists:
                full = _preflight_existing(path, shown)
            elif not path.exists():
                check_folder(path, create_parents=create_parents)
                _create_owner_only(path)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFull(f"disk full: cannot create database {shown}; free space on "
                               "its disk") from exc
            raise BadDatabase(
                f"cannot use database {shown}: {exc.strerror or exc}; use another --db"
            ) from exc
        # NullPool: each thread keeps its own connection (SqlStore._thread_connection);
        # a bounded pool would make the 16th thread wait for a connection never returned.
        if full:
            uri = _immutable_uri(path)
            engine = create_engine(
                "sqlite://", poolclass=NullPool,
                creator=lambda: sqlite3.connect(uri, uri=True, timeout=busy_timeout_s,
                                                check_same_thread=False),
            )
            shown = f"{shown} (read-only)"
        else:
            engine = create_engine(
                url.set(database=str(path)),
                poolclass=NullPool,
                connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
            )
    event.listen(engine, "connect", _sqlite_on_connect(busy_timeout_s, read_only=full))
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine, shown, full


def _open_postgres(url: URL) -> tuple[Engine, str]:
    host = f"{url.host or 'localhost'}:{url.port or 5432}"
    shown = f"PostgreSQL database {url.database or ''} at {host}"
    engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except (SQLAlchemyError, OSError) as exc:
        orig = getattr(exc, "orig", None) or exc
        detail = " ".join(str(orig).split())
        if url.password:
            detail = detail.replace(str(url.password), "***")
        engine.dispose()
        raise DatabaseUnreachable(
            f"cannot reach database at {host}: {detail}; check it is running and that "
            f"{safe_url(url)} is right"
        ) from exc
    return engine, shown


def open_store(
    url: str, *, migrate: bool = True, busy_timeout_s: float = BUSY_TIMEOUT_S,
    create_parents: bool = False,
) -> SqlStore:
    """Open (and, with ``migrate``, create or upgrade) the database at ``url``.

    With ``migrate=False`` the schema is left as it is (for inspection: ``carbonshift db
    check``); :meth:`SqlStore.revision` says where it stands. ``busy_timeout_s`` is how long
    an SQLite writer waits for another's lock before the call fails with
    :class:`StorageError`. A new SQLite file is created (owner-only) in an existing folder;
    ``create_parents`` also creates missing folders above it: only for the default location,
    since a typo in a path the user gave must not silently make an empty queue elsewhere.

    Raises :class:`BadDatabase` for a database carbonshift cannot use (a directory, not
    SQLite, not writable, a newer schema), without writing anything, and
    :class:`StorageError` when the server cannot be reached.
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    full = False
    if backend == "sqlite":
        engine, shown, full = _open_sqlite(parsed, busy_timeout_s, create_parents)
    elif backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine, shown = _open_postgres(parsed)
    else:
        raise BadDatabase(
            f"database URL {safe_url(parsed)!r} uses {backend!r}: carbonshift supports "
            "sqlite:///path and postgresql+psycopg://user@host:port/db"
        )
    store = SqlStore(engine, description=shown, url=url, busy_timeout_s=busy_timeout_s)
    if full:
        store.read_only = "disk full"
    try:
        if migrate and full:
            with engine.connect() as conn:
                revision = _read_revision(conn)
            if revision != HEAD_REVISION:
                _check_revision(revision, shown)
                raise DiskFull(f"disk full: {shown} needs a schema upgrade, which needs "
                               "free space on its disk")
        elif migrate:
            _migrate(engine, shown, store._translate)
        else:
            try:
                with engine.connect() as conn:
                    revision = _read_revision(conn)
            except SQLAlchemyError as exc:
                raise store._translate(exc, "read the schema revision") from exc
            _check_revision(revision, shown)
    except BaseException:
        engine.dispose()
        raise
    return store


__all__ = ["HEAD_REVISION", "KNOWN_REVISIONS", "SqlStore", "open_store", "safe_url", "sqlite_path"]
