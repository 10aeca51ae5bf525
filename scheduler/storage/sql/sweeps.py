"""Sweeps: a sweep and its trials in one transaction, reads, and stopping one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping

from scheduler.domain.model import Job, JobState, Sweep, sweep_ref
from scheduler.errors import NotFound
from scheduler.storage import tables as t
from scheduler.storage.base import Span
from scheduler.storage.sql.engine import _CHUNK, SqlEngine, _now
from scheduler.storage.sql.jobs import _WAITING, _insert_intervals, _job_values

_SWEEP_FIELDS = [f.name for f in dataclasses.fields(Sweep)]


def _sweep_values(sweep: Sweep) -> dict[str, Any]:
    values = {name: getattr(sweep, name) for name in _SWEEP_FIELDS}
    if sweep.id is None:
        del values["id"]
    return values


def _sweep_from_row(m: RowMapping) -> Sweep:
    return Sweep(**{name: m[name] for name in _SWEEP_FIELDS})


class SqlSweeps(SqlEngine):
    """The sweeps aggregate (the ``sweeps`` table; trials are jobs)."""

    # -- sweeps ---------------------------------------------------------------------------
    def add_sweep_with_jobs(
        self, sweep: Sweep, jobs: Sequence[Job], *,
        events: Sequence[tuple[datetime, str, str]] | None = None,
        intervals: Sequence[Sequence[Span]] | None = None,
    ) -> tuple[Sweep, list[Job]]:
        for given, what in ((events, "events"), (intervals, "interval lists")):
            if given is not None and len(given) != len(jobs):
                raise ValueError(f"{len(given)} {what} for {len(jobs)} trials")
        now = _now()
        with self._tx(f"add sweep {sweep.name!r} of {len(jobs)} trials") as conn:
            key = conn.execute(insert(t.sweeps), _sweep_values(sweep)).inserted_primary_key
            assert key is not None
            sweep_id = int(key[0])
            trials = [dataclasses.replace(j, sweep_id=sweep_id) for j in jobs]
            ids: list[int] = []
            if trials:
                result = conn.execute(
                    insert(t.jobs).returning(t.jobs.c.id, sort_by_parameter_order=True),
                    [_job_values(j, now) for j in trials],
                )
                ids = [int(i) for i in result.scalars().all()]
            if intervals is not None and ids:
                _insert_intervals(conn, dict(zip(ids, intervals, strict=True)))
            if events and ids:
                conn.execute(insert(t.events), [
                    {"job_id": i, "at": at, "kind": kind, "message": message}
                    for i, (at, kind, message) in zip(ids, events, strict=True)
                ])
        return (dataclasses.replace(sweep, id=sweep_id),
                [dataclasses.replace(j, id=i, updated_at=now) for j, i in zip(trials, ids, strict=True)])

    def get_sweep(self, sweep_id: int) -> Sweep:
        found = self.list_sweeps([sweep_id]) if -(2**63) <= sweep_id < 2**63 else []
        if not found:
            raise NotFound(f"no sweep {sweep_ref(sweep_id)}: see `carbonshift queue` or "
                           "`carbonshift history`")
        return found[0]

    def list_sweeps(self, ids: Iterable[int] | None = None) -> list[Sweep]:
        query = select(t.sweeps).order_by(t.sweeps.c.id)
        wanted = None if ids is None else sorted(set(ids))
        with self._tx("list sweeps", write=False) as conn:
            if wanted is None:
                rows = conn.execute(query).all()
            else:
                rows = [r for k in range(0, len(wanted), _CHUNK) for r in conn.execute(
                    query.where(t.sweeps.c.id.in_(wanted[k:k + _CHUNK])))]
        return [_sweep_from_row(r._mapping) for r in rows]

    def stop_sweep(
        self, sweep_id: int, at: datetime, reason: str, *, skip_note: str | None = None
    ) -> list[int]:
        s, c = t.sweeps.c, t.jobs.c
        with self._tx(f"stop sweep {sweep_ref(sweep_id)}") as conn:
            if conn.execute(select(s.id).where(s.id == sweep_id)).first() is None:
                raise NotFound(f"no sweep {sweep_ref(sweep_id)}: see `carbonshift queue`")
            conn.execute(update(t.sweeps).where(s.id == sweep_id, s.stopped_at.is_(None))
                         .values(stopped_at=at, stop_reason=reason))
            if skip_note is None:
                return []
            waiting = [int(i) for i in conn.execute(
                select(c.id).where(c.sweep_id == sweep_id, c.state.in_(_WAITING))
                .order_by(c.id)).scalars()]
            if not waiting:
                return []
            conn.execute(update(t.jobs).where(c.id.in_(waiting), c.state.in_(_WAITING))
                         .values(state=JobState.SKIPPED.value, note=skip_note, updated_at=_now()))
            conn.execute(insert(t.events), [
                {"job_id": i, "at": at, "kind": "skipped", "message": skip_note} for i in waiting
            ])
            return waiting
