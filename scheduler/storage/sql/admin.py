"""Maintenance (``carbonshift db``): the schema revision and its migration, integrity checks,
counts, and a copy of an SQLite file that was lost under a daemon (:meth:`SqlAdmin.save_copy`).

The schema is migrated on open. The current revision is read with one plain query, and
Alembic is imported only when an upgrade is due, so opening an up-to-date database stays
fast.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from scheduler.errors import BadDatabase, CarbonshiftError, StorageError
from scheduler.storage import tables as t
from scheduler.storage.base import SiteTotals, Totals
from scheduler.storage.sql.engine import _WRITE, SqlEngine

#: The newest schema revision this code knows; must equal Alembic's script head.
HEAD_REVISION = "0005"
#: Every revision this code knows, oldest first. A database at any other is from a newer
#: carbonshift (or not ours) and is refused rather than touched.
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005")
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_PG_MIGRATION_LOCK = 0x63_73_68_69_66_74  # "cshift": serialises concurrent first opens


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


def _migrate(
    engine: Engine, where: str, translate: Any,
    progress: Callable[[int, int, str], None] | None = None,
) -> None:
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
                _run_alembic_upgrade(conn, revision, progress)
    except CarbonshiftError:
        raise
    except (SQLAlchemyError, sqlite3.Error) as exc:
        raise translate(exc, "migrate the schema") from exc
    except Exception as exc:  # alembic's own errors (CommandError, ...)
        raise StorageError(f"could not migrate the schema of {where}: {exc}") from exc


def _run_alembic_upgrade(
    conn: Connection, current: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    if progress is not None:
        from alembic.script import ScriptDirectory

        total = len(list(ScriptDirectory.from_config(config).iterate_revisions("head", current)))
        done = [0]
        report = progress

        def applied(*, step: Any, **_: Any) -> None:
            done[0] += 1
            report(done[0], total, str(step.up_revision_id))

        config.attributes["on_version_apply"] = applied
        report(0, total, current or "empty")
    command.upgrade(config, "head")


@runtime_checkable
class Maintenance(Protocol):
    """What maintenance (``carbonshift db``) asks of a store beyond
    :class:`~scheduler.storage.base.JobStore`; :class:`SqlAdmin` is it."""

    #: the backend's name: ``sqlite`` or ``postgresql``
    dialect: str

    def revision(self) -> str | None:
        """The schema revision stored in the database (``None`` before the first migration)."""
        ...

    def count_jobs_by_state(self) -> dict[str, int]:
        """How many jobs are in each state."""
        ...

    def integrity_problems(self) -> list[str]:
        """What the backend's own consistency checks found (empty when fine)."""
        ...

    def upgrade(self, progress: Callable[[int, int, str], None] | None = None) -> str:
        """Apply pending migrations; return the revision the database is now at."""
        ...


def maintenance(store: object) -> Maintenance:
    """``store``'s maintenance face; :class:`StorageError` for a store that has none."""
    if not isinstance(store, Maintenance):
        raise StorageError(f"a {type(store).__name__} has no schema to check or upgrade")
    return store


class SqlAdmin(SqlEngine):
    """Revision, upgrade, integrity problems, counts, totals and :meth:`save_copy`."""

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

    def upgrade(self, progress: Callable[[int, int, str], None] | None = None) -> str:
        """Apply pending migrations; return the revision the database is now at.
        ``progress(done, total, revision)`` is called as each migration is applied."""
        _migrate(self.engine, self.description, self._translate, progress)
        rev = self.revision()
        return rev or "none"
