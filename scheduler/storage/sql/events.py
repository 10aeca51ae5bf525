"""Job events: add one, read a job's, read by kind, follow them by id."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert, select

from scheduler.domain.model import Event
from scheduler.storage import tables as t
from scheduler.storage.sql.engine import _CHUNK, SqlEngine


class SqlEvents(SqlEngine):
    """The events aggregate (the ``events`` table)."""

    # -- events ---------------------------------------------------------------------------
    def add_event(self, event: Event) -> None:
        values = {"job_id": event.job_id, "at": event.at, "kind": event.kind,
                  "message": event.message}
        with self._child_tx(f"add an event to job {event.job_id}",
                            f"no job {event.job_id} to add an event to") as conn:
            conn.execute(insert(t.events), values)

    def events_for_job(self, job_id: int) -> list[Event]:
        c = t.events.c
        with self._tx(f"read events of job {job_id}", write=False) as conn:
            rows = conn.execute(select(t.events).where(c.job_id == job_id).order_by(c.id)).all()
        return [Event(**r._mapping) for r in rows]

    def events_of_kind(self, job_ids: Iterable[int], kind: str) -> dict[int, list[Event]]:
        ids = sorted(set(job_ids))
        c = t.events.c
        out: dict[int, list[Event]] = {}
        with self._tx(f"read {kind} events of jobs", write=False) as conn:
            for k in range(0, len(ids), _CHUNK):
                rows = conn.execute(
                    select(t.events).where(c.job_id.in_(ids[k:k + _CHUNK]), c.kind == kind)
                    .order_by(c.job_id, c.id)
                ).all()
                for r in rows:
                    e = Event(**r._mapping)
                    out.setdefault(e.job_id, []).append(e)
        return out

    def events_since(self, after_id: int, limit: int = 1000) -> list[Event]:
        c = t.events.c
        with self._tx("read recent events", write=False) as conn:
            rows = conn.execute(
                select(t.events).where(c.id > after_id).order_by(c.id).limit(limit)
            ).all()
        return [Event(**r._mapping) for r in rows]
