"""Intensity points, deduplicated on (zone, start, kind, provider, signal,
issued_at), and the fetch bookkeeping (last fetch, last provider failure).

Part of :class:`~scheduler.storage.mem.store.MemoryStore` (see :mod:`scheduler.storage.mem.state`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from intensity.model import IntensityPoint, Kind, Signal, Source
from scheduler.storage import tables as t
from scheduler.storage.mem.state import MemoryState, _at, _flag, _not_null, _utc

#: what a ``kind`` column of the fetch bookkeeping holds for a provider's last failure
FAILURE_KIND = "failure"


class MemoryPoints(MemoryState):
    """Intensity points per zone and when each provider was last fetched or failed."""

    def add_points(self, points: Sequence[IntensityPoint]) -> int:
        if not points:
            return 0
        what = f"store {len(points)} intensity points"
        stored = [dataclasses.replace(
            p, start=_utc(p.start), end=_utc(p.end), issued_at=_utc(p.issued_at),
            kind=Kind(p.kind), signal=Signal(p.signal), source=Source(p.source),
            estimated=_flag(p.estimated)) for p in points]
        for p in stored:
            _not_null("intensity_points", p, what)
        with self._lock:
            now = self._now()
            new = 0
            for p in stored:
                issued = p.issued_at if p.issued_at is not None else t.NO_ISSUE_SENTINEL
                key = (p.start, p.kind.value, p.provider, p.signal.value, issued)
                zone = self._points[p.zone]
                if key not in zone:
                    zone[key] = (self._ids.take("intensity_points", None, lambda _: False),
                                 issued, p)
                    new += 1
            for p in stored:
                self._fetches[(p.zone, p.provider, p.kind.value)] = now
            return new

    def get_points(
        self,
        zone: str,
        start: datetime,
        end: datetime,
        *,
        kind: Kind | None = None,
        provider: str | None = None,
    ) -> list[IntensityPoint]:
        start, end = _at(start), _at(end)
        with self._lock:
            found = [
                (p.start, issued, pid, p) for pid, issued, p in self._points.get(zone, {}).values()
                if p.start < end and p.end > start
                and (kind is None or p.kind.value == str(kind))
                and (provider is None or p.provider == provider)
            ]
        return [p for *_, p in sorted(found, key=lambda row: row[:3])]

    def last_fetch(self, zone: str, provider: str, kind: Kind) -> datetime | None:
        with self._lock:
            return self._fetches.get((zone, provider, str(kind)))

    def note_provider_failure(self, zone: str, provider: str, at: datetime) -> None:
        at = _at(at)
        with self._lock:
            self._fetches[(zone, provider, FAILURE_KIND)] = at

    def provider_failed_at(self, zone: str, provider: str) -> datetime | None:
        with self._lock:
            return self._fetches.get((zone, provider, FAILURE_KIND))


__all__ = ["MemoryPoints"]
