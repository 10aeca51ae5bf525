"""The store's plumbing, shared by every aggregate over one engine.

:class:`SqlEngine` holds the engine and, on an SQLite file, one connection per thread; runs
each transaction (:meth:`SqlEngine._tx`: ``BEGIN IMMEDIATE`` for writes on SQLite); turns
every SQLAlchemy or driver error into one of ours (:meth:`SqlEngine._translate`, passwords
scrubbed); refuses writes while the store only reads (a full disk); and notices that its
SQLite file was deleted or replaced (:meth:`SqlEngine.file_lost`, which
:mod:`scheduler.storage.watch` acts on). The URL helpers every part uses live here too.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.pool import StaticPool

from scheduler.errors import (
    BadDatabase,
    CarbonshiftError,
    DatabaseUnreachable,
    DiskFull,
    NotFound,
    StorageError,
)
from scheduler.storage.sql.fast_sqlite import BUSY_TIMEOUT_S, disk_nearly_full

_WRITE = "carbonshift_write"  # execution option: this transaction writes (BEGIN IMMEDIATE)
#: ids per ``IN (...)`` list (well under every backend's limit on bound parameters)
_CHUNK = 500


def _now() -> datetime:
    return datetime.now(UTC)


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


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a public method so no SQLAlchemy error escapes it, even from row conversion
    outside :meth:`SqlStore._tx` (a column the code expects and the database lacks)."""

    @functools.wraps(method)
    def wrapper(self: SqlEngine, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self._translate(exc, method.__name__.replace("_", " ")) from exc

    return wrapper


def missing_parent(exc: BaseException) -> bool:
    """Whether ``exc`` (a :class:`StorageError` from :meth:`SqlEngine._tx`) is a foreign-key
    violation: the row it points at (a job, a run) does not exist. Any other integrity error
    (an empty NOT NULL column, a duplicate) is not a missing row and must not be reported
    as one."""
    cause = exc.__cause__
    if not isinstance(cause, IntegrityError):
        return False
    orig = getattr(cause, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code is not None:
        return str(code) == "23503"  # PostgreSQL: foreign_key_violation
    return "FOREIGN KEY" in str(orig).upper()


class SqlEngine:
    """The engine and its connections, transactions and error translation: what every
    aggregate of :class:`~scheduler.storage.sql.store.SqlStore` runs its SQL through."""

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
    def _child_tx(self, what: str, missing: str) -> Iterator[Connection]:
        """:meth:`_tx` (writing) for rows that point at another row (a job, a run): where
        that row does not exist, :class:`NotFound` with ``missing`` (what to say)."""
        try:
            with self._tx(what) as conn:
                yield conn
        except StorageError as exc:
            if missing_parent(exc):
                raise NotFound(missing) from exc
            raise

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
