"""Carbon-intensity points and fetch bookkeeping (when a provider was last fetched for a
zone, when it last failed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from intensity.model import IntensityPoint, Kind, Signal, Source
from scheduler.storage import tables as t
from scheduler.storage.sql.engine import SqlEngine, _now

#: ``intensity_fetches.kind`` of the row that says when a provider last failed for a zone
FAILURE_KIND = "failure"


class SqlPoints(SqlEngine):
    """The intensity aggregate (the ``intensity_points`` and ``intensity_fetches`` tables)."""

    # -- intensity ------------------------------------------------------------------------
    def _insert_ignoring_duplicates(self) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(t.intensity_points).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(t.intensity_points).on_conflict_do_nothing()

    def _upsert_fetch(self) -> Any:
        c = t.intensity_fetches.c
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pg = pg_insert(t.intensity_fetches)
            return pg.on_conflict_do_update(
                index_elements=[c.zone, c.provider, c.kind],
                set_={"fetched_at": pg.excluded.fetched_at},
            )
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(t.intensity_fetches)
        return lite.on_conflict_do_update(
            index_elements=[c.zone, c.provider, c.kind],
            set_={"fetched_at": lite.excluded.fetched_at},
        )

    def add_points(self, points: Sequence[IntensityPoint]) -> int:
        if not points:
            return 0
        now = _now()
        values = [
            {
                "zone": p.zone,
                "start": p.start,
                "end": p.end,
                "intensity_g_per_kwh": p.intensity_g_per_kwh,
                "kind": str(p.kind),
                "provider": p.provider,
                "signal": str(p.signal),
                "issued_at": p.issued_at,
                "issued_key": p.issued_at if p.issued_at is not None else t.NO_ISSUE_SENTINEL,
                "source": str(p.source),
                "estimated": p.estimated,
                "fetched_at": now,
            }
            for p in points
        ]
        fetches = sorted({(p.zone, p.provider, str(p.kind)) for p in points})
        with self._tx(f"store {len(points)} intensity points") as conn:
            new = conn.execute(
                self._insert_ignoring_duplicates().returning(t.intensity_points.c.id), values
            ).all()
            conn.execute(
                self._upsert_fetch(),
                [{"zone": z, "provider": p, "kind": k, "fetched_at": now} for z, p, k in fetches],
            )
        return len(new)

    def get_points(
        self,
        zone: str,
        start: datetime,
        end: datetime,
        *,
        kind: Kind | None = None,
        provider: str | None = None,
    ) -> list[IntensityPoint]:
        c = t.intensity_points.c
        query = select(t.intensity_points).where(c.zone == zone, c.start < end, c.end > start)
        if kind is not None:
            query = query.where(c.kind == str(kind))
        if provider is not None:
            query = query.where(c.provider == provider)
        query = query.order_by(c.start, c.issued_key, c.id)
        with self._tx(f"read intensity points of {zone}", write=False) as conn:
            rows = conn.execute(query).all()
        return [
            IntensityPoint(
                zone=m["zone"],
                start=m["start"],
                end=m["end"],
                intensity_g_per_kwh=m["intensity_g_per_kwh"],
                kind=Kind(m["kind"]),
                provider=m["provider"],
                signal=Signal(m["signal"]),
                issued_at=m["issued_at"],
                source=Source(m["source"]),
                estimated=bool(m["estimated"]),
            )
            for m in (r._mapping for r in rows)
        ]

    def last_fetch(self, zone: str, provider: str, kind: Kind) -> datetime | None:
        c = t.intensity_fetches.c
        with self._tx(f"read the last fetch of {zone}", write=False) as conn:
            value: datetime | None = conn.execute(
                select(c.fetched_at).where(
                    c.zone == zone, c.provider == provider, c.kind == str(kind)
                )
            ).scalar_one_or_none()
        return value

    def note_provider_failure(self, zone: str, provider: str, at: datetime) -> None:
        # a row beside the fetch times, under a kind no point has: no schema change
        with self._tx(f"record that {provider} failed for {zone}") as conn:
            conn.execute(self._upsert_fetch(), [{"zone": zone, "provider": provider,
                                                 "kind": FAILURE_KIND, "fetched_at": at}])

    def provider_failed_at(self, zone: str, provider: str) -> datetime | None:
        c = t.intensity_fetches.c
        with self._tx(f"read the last failure of {provider}", write=False) as conn:
            value: datetime | None = conn.execute(
                select(c.fetched_at).where(
                    c.zone == zone, c.provider == provider, c.kind == FAILURE_KIND
                )
            ).scalar_one_or_none()
        return value
