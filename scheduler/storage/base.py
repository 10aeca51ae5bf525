"""The one interface to the queue's database: :class:`JobStore`.

The database is the source of truth. Every method is one transaction. :class:`JobStore` is
the union of the ports of :mod:`scheduler.storage.ports` (one per aggregate: jobs, runs,
leases, samples, events, config, points, sweeps, admin), where each method is declared and
documented. Implementations: :class:`scheduler.storage.store.SqlStore` (SQLite file,
PostgreSQL, or in-memory SQLite: the same code) and
:class:`scheduler.storage.memory.MemoryStore` (plain Python, for tests). Methods raise
:class:`~scheduler.errors.NotFound` for a missing row and
:class:`~scheduler.errors.StorageError` for anything the database refused; no SQLAlchemy
exception crosses this boundary.
"""

from __future__ import annotations

from abc import ABC

from scheduler.storage.ports import (
    Admin,
    Config,
    Events,
    Jobs,
    Lease,
    Leases,
    Points,
    Runs,
    Samples,
    SiteTotals,
    Span,
    Sweeps,
    Totals,
)


class JobStore(Admin, Config, Jobs, Sweeps, Runs, Leases, Samples, Points, Events, ABC):
    """Jobs, policies, sites, runs, samples, intensity points and events: every port."""


__all__ = ["JobStore", "Lease", "SiteTotals", "Span", "Totals"]
