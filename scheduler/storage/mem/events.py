"""Events of jobs, in the order they were added.

Part of :class:`~scheduler.storage.mem.store.MemoryStore` (see :mod:`scheduler.storage.mem.state`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from scheduler.domain.model import Event
from scheduler.errors import NotFound
from scheduler.storage.mem.state import MemoryState, _not_null, _utc


class MemoryEvents(MemoryState):
    """The event log (appended to by jobs and sweeps too, through ``_insert_event``)."""

    def add_event(self, event: Event) -> None:
        stored = dataclasses.replace(event, at=_utc(event.at))
        _not_null("events", stored, f"add an event to job {event.job_id}")
        with self._lock:
            if event.job_id not in self._jobs:
                raise NotFound(f"no job {event.job_id} to add an event to")
            self._insert_event(stored)

    def events_for_job(self, job_id: int) -> list[Event]:
        with self._lock:
            return [self._events[i] for i in self._events_of_job.get(job_id, [])]

    def events_of_kind(self, job_ids: Iterable[int], kind: str) -> dict[int, list[Event]]:
        with self._lock:
            out = {j: [self._events[i] for i in self._events_of_job.get(j, [])
                       if self._events[i].kind == kind] for j in sorted(set(job_ids))}
        return {j: evs for j, evs in out.items() if evs}

    def events_since(self, after_id: int, limit: int = 1000) -> list[Event]:
        with self._lock:
            ids = sorted(i for i in self._events if i > after_id)[:max(limit, 0)]
            return [self._events[i] for i in ids]


__all__ = ["MemoryEvents"]
