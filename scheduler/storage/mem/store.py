"""The in-memory job store: one implementation of :class:`JobStore` in plain Python.

:class:`MemoryStore` is composed as :class:`~scheduler.storage.sql.store.SqlStore` is: one
mixin per aggregate over one shared state (:mod:`~scheduler.storage.mem.state`: the dicts,
the one lock, the clock): config (policies, sites), jobs, sweeps, runs (with their
intervals and pauses), leases, samples, points (intensity), events, and admin (totals,
revision, integrity).
"""

from __future__ import annotations

from scheduler.storage.base import JobStore
from scheduler.storage.mem.admin import MemoryAdmin
from scheduler.storage.mem.config import MemoryConfig
from scheduler.storage.mem.events import MemoryEvents
from scheduler.storage.mem.jobs import MemoryJobs
from scheduler.storage.mem.leases import MemoryLeases
from scheduler.storage.mem.points import MemoryPoints
from scheduler.storage.mem.runs import MemoryRuns
from scheduler.storage.mem.samples import MemorySamples
from scheduler.storage.mem.sweeps import MemorySweeps


class MemoryStore(MemoryConfig, MemorySweeps, MemoryJobs, MemoryRuns, MemoryLeases, MemorySamples,
                  MemoryPoints, MemoryEvents, MemoryAdmin, JobStore):
    """Every port of :class:`JobStore` over dicts in this process (see
    :mod:`~scheduler.storage.mem.state`).

    Safe to share between threads (one lock); private to one process. ``clock`` gives the
    wall time the store stamps ``updated_at`` and fetch times with (the SQL store reads
    the system clock).
    """

    description = "the in-memory store"


__all__ = ["MemoryStore"]
