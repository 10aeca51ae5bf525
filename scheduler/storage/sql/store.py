"""The SQL job store: one implementation of :class:`JobStore` for SQLite and PostgreSQL.

:class:`SqlStore` is composed of one mixin per aggregate over one shared engine
(:mod:`~scheduler.storage.sql.engine`): config (policies, sites), jobs, sweeps, runs (with
their intervals and pauses), leases, samples, points (intensity), events, and admin
(revision, upgrade, integrity). The raw-driver fast paths live in
:mod:`~scheduler.storage.sql.fast_sqlite`; opening a URL in :mod:`~scheduler.storage.sql.opening`.

:func:`~scheduler.storage.sql.opening.open_store` turns a URL into an open, migrated :class:`SqlStore`:

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

from scheduler.storage.base import JobStore
from scheduler.storage.sql.admin import SqlAdmin
from scheduler.storage.sql.config import SqlConfig
from scheduler.storage.sql.engine import _guarded
from scheduler.storage.sql.events import SqlEvents
from scheduler.storage.sql.jobs import SqlJobs
from scheduler.storage.sql.leases import SqlLeases
from scheduler.storage.sql.points import SqlPoints
from scheduler.storage.sql.runs import SqlRuns
from scheduler.storage.sql.samples import SqlSamples
from scheduler.storage.sql.sweeps import SqlSweeps


class SqlStore(SqlConfig, SqlJobs, SqlSweeps, SqlRuns, SqlLeases, SqlSamples, SqlPoints, SqlEvents,
               SqlAdmin, JobStore):
    """A :class:`JobStore` over SQLAlchemy Core: SQLite (file or memory) or PostgreSQL.

    Build one with :func:`~scheduler.storage.sql.opening.open_store`. Each public method is
    one transaction. The store is safe to share between threads; :meth:`transition` and
    :meth:`claim_due` are safe between processes sharing the database.
    """


for _name in sorted(JobStore.__abstractmethods__ | {"revision", "count_jobs_by_state",
                                                    "integrity_problems", "upgrade"}):
    setattr(SqlStore, _name, _guarded(getattr(SqlStore, _name)))


__all__ = ["SqlStore"]
