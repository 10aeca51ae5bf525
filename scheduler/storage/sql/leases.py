"""Named leases (the planner's, each agent's presence): take, release, read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping

from scheduler.storage import tables as t
from scheduler.storage.base import Lease
from scheduler.storage.sql.engine import SqlEngine


def _lease_from_row(m: RowMapping) -> Lease:
    return Lease(m["name"], m["holder"], int(m["term"]), m["acquired_at"], m["until"])


class SqlLeases(SqlEngine):
    """The leases aggregate (the ``leases`` table)."""

    # -- leases ---------------------------------------------------------------------------
    def acquire_lease(
        self, name: str, holder: str, now: datetime, until: datetime
    ) -> Lease | None:
        # compared in Python below: refuse a naive time here, as binding it would
        now, until = t.aware_utc(now), t.aware_utc(until)  # type: ignore[assignment]
        c = t.leases.c
        query = select(t.leases).where(c.name == name)
        if self.dialect == "postgresql":
            query = query.with_for_update()  # SQLite: BEGIN IMMEDIATE already serialises
        with self._tx(f"take the {name} lease") as conn:
            row = conn.execute(query).first()
            if row is None:
                values = {"name": name, "holder": holder, "term": 1, "acquired_at": now,
                          "until": until}
                if self.dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert as pg_insert

                    stmt: Any = pg_insert(t.leases).on_conflict_do_nothing()
                else:
                    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                    stmt = sqlite_insert(t.leases).on_conflict_do_nothing()
                if conn.execute(stmt.returning(c.name), values).first() is None:
                    return None  # another process created it first
                return Lease(name, holder, 1, now, until)
            m = row._mapping
            if m["holder"] == holder:
                conn.execute(update(t.leases).where(c.name == name).values(until=until))
                return Lease(name, holder, int(m["term"]), m["acquired_at"], until)
            if m["until"] >= now:
                return None
            term = int(m["term"]) + 1
            conn.execute(
                update(t.leases)
                .where(c.name == name)
                .values(holder=holder, term=term, acquired_at=now, until=until)
            )
            return Lease(name, holder, term, now, until)

    def release_lease(self, name: str, holder: str) -> bool:
        c = t.leases.c
        with self._tx(f"release the {name} lease") as conn:
            n = conn.execute(
                update(t.leases)
                .where(c.name == name, c.holder == holder)
                .values(until=t.NO_ISSUE_SENTINEL)
            ).rowcount
        return bool(n == 1)

    def get_lease(self, name: str) -> Lease | None:
        c = t.leases.c
        with self._tx(f"read the {name} lease", write=False) as conn:
            row = conn.execute(select(t.leases).where(c.name == name)).first()
        return None if row is None else _lease_from_row(row._mapping)

    def leases(self, prefix: str = "") -> list[Lease]:
        c = t.leases.c
        query = select(t.leases).order_by(c.name)
        if prefix:
            query = query.where(c.name.startswith(prefix, autoescape=True))
        with self._tx("read the leases", write=False) as conn:
            rows = conn.execute(query).all()
        return [_lease_from_row(r._mapping) for r in rows]
