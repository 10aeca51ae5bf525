"""Named leases with expiry and fencing terms.

Part of :class:`~scheduler.storage.mem.store.MemoryStore` (see :mod:`scheduler.storage.mem.state`).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from scheduler.storage import tables as t
from scheduler.storage.base import Lease
from scheduler.storage.mem.state import MemoryState, _at, _not_null


class MemoryLeases(MemoryState):
    """Named leases: one holder at a time, a new term each time the holder changes."""

    def acquire_lease(
        self, name: str, holder: str, now: datetime, until: datetime
    ) -> Lease | None:
        now, end = _at(now), _at(until)
        _not_null("leases", {"name": name, "holder": holder}, f"take the {name} lease")
        with self._lock:
            held = self._leases.get(name)
            if held is None:
                lease = Lease(name, holder, 1, now, end)
            elif held.holder == holder:
                lease = dataclasses.replace(held, until=end)
            elif held.until >= now:
                return None
            else:
                lease = Lease(name, holder, held.term + 1, now, end)
            self._leases[name] = lease
            return lease

    def release_lease(self, name: str, holder: str) -> bool:
        with self._lock:
            held = self._leases.get(name)
            if held is None or held.holder != holder:
                return False
            # as the SQL store: the lease ends at the epoch (long before any ``now``)
            self._leases[name] = dataclasses.replace(held, until=t.NO_ISSUE_SENTINEL)
            return True

    def get_lease(self, name: str) -> Lease | None:
        with self._lock:
            return self._leases.get(name)

    def leases(self, prefix: str = "") -> list[Lease]:
        with self._lock:
            return [self._leases[n] for n in sorted(self._leases) if n.startswith(prefix)]


__all__ = ["MemoryLeases"]
