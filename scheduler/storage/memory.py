"""A :class:`JobStore` in plain Python: dicts behind one lock, nothing on disk.

Kept so ``from scheduler.storage.memory import MemoryStore`` goes on working: the store
lives in :mod:`scheduler.storage.mem` (one mixin per aggregate, composed in
:mod:`scheduler.storage.mem.store`).
"""

from __future__ import annotations

from scheduler.storage.mem.points import FAILURE_KIND
from scheduler.storage.mem.store import MemoryStore

__all__ = ["FAILURE_KIND", "MemoryStore"]
