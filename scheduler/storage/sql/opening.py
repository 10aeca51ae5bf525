"""Opening a store: a URL to an open, migrated :class:`~scheduler.storage.sql.store.SqlStore`.

- ``sqlite://`` (no path): an in-memory database on one shared connection.
- ``sqlite:////abs/path.db``: a file, created owner-only (0600, parent directory 0700) when
  missing, checked read-only before anything is written, opened with WAL, a 5 s busy
  timeout, foreign keys on and ``synchronous=NORMAL``; write transactions start with
  ``BEGIN IMMEDIATE`` (the pysqlite recipe: the driver's own transaction handling is
  switched off and the ``begin`` event emits the BEGIN).
- ``postgresql+psycopg://user@host:port/db``: several hosts sharing one queue.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool, StaticPool

from scheduler.errors import BadDatabase, DatabaseUnreachable, DiskFull
from scheduler.storage.location import check_folder
from scheduler.storage.sql.admin import HEAD_REVISION, _check_revision, _migrate, _read_revision
from scheduler.storage.sql.engine import (
    _WRITE,
    BUSY_TIMEOUT_S,
    _is_disk_full,
    _is_sqlite_memory,
    parse_url,
    safe_url,
    sqlite_path,
)
from scheduler.storage.sql.store import SqlStore

SQLITE_HEADER = b"SQLite format 3\x00"


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
