"""Jobs: submit (the driver-level fast path for one job on SQLite), read, list, the queue
view, plans and planned intervals, state transitions and claims.

Claims are a conditional ``UPDATE ... WHERE state IN (...) RETURNING``; on PostgreSQL
:meth:`SqlJobs.claim_due` first locks candidates with ``SELECT ... FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import RowMapping

from scheduler.domain.model import Job, JobState, Plan
from scheduler.errors import NotFound
from scheduler.storage import tables as t
from scheduler.storage.base import Span
from scheduler.storage.sql.engine import _CHUNK, SqlEngine, _now
from scheduler.storage.sql.fast_sqlite import DriverInsert, driver_write

_WAITING = [JobState.PENDING.value, JobState.PLANNED.value]


def _insert_intervals(conn: Connection, intervals: dict[int, Sequence[Span]]) -> None:
    """Store planned run intervals (``seq`` from 0), in one statement."""
    rows = [
        {"job_id": job_id, "seq": i, "start": a, "end": b}
        for job_id, spans in intervals.items() for i, (a, b) in enumerate(spans)
    ]
    if rows:
        conn.execute(insert(t.job_intervals), rows)


#: Job fields stored in ``jobs`` (tests/storage/test_contract.py checks that is all of them)
_JOB_FIELDS = [f.name for f in dataclasses.fields(Job) if f.name in t.jobs.c]
_INSERT_JOB = insert(t.jobs)
_SELECT_JOB = select(t.jobs).where(t.jobs.c.id == bindparam("id"))
_JOB_VALUE_FIELDS = [name for name in _JOB_FIELDS if name != "id"]
_EVENT_FIELDS = ["job_id", "at", "kind", "message"]
_get_job_values = operator.attrgetter(*_JOB_VALUE_FIELDS)


def _job_values(job: Job, now: datetime) -> dict[str, Any]:
    values = dict(zip(_JOB_VALUE_FIELDS, _get_job_values(job), strict=True))
    values["state"] = JobState(job.state).value
    values["argv"] = list(job.argv)
    values["env"] = dict(job.env)
    values["allowed_sites"] = list(job.allowed_sites)
    values["updated_at"] = now
    if job.id is not None:
        values["id"] = job.id
    return values


def _job_from_row(m: RowMapping) -> Job:
    values = {name: m[name] for name in _JOB_FIELDS}
    values["state"] = JobState(m["state"])
    values["shell"] = bool(m["shell"])
    values["run_now"] = bool(m["run_now"])
    values["interruptible"] = bool(m["interruptible"])
    return Job(**values)


class SqlJobs(SqlEngine):
    """The jobs aggregate (the ``jobs`` and ``job_intervals`` tables)."""

    # compiled on first use: only the submit path needs them (a few ms of every command)
    @functools.cached_property
    def _job_insert(self) -> DriverInsert | None:
        if self.dialect != "sqlite":
            return None
        return DriverInsert(t.jobs, _JOB_VALUE_FIELDS, self.engine.dialect)

    @functools.cached_property
    def _event_insert(self) -> DriverInsert | None:
        if self.dialect != "sqlite":
            return None
        return DriverInsert(t.events, _EVENT_FIELDS, self.engine.dialect)

    # -- jobs -----------------------------------------------------------------------------
    def add_job(
        self, job: Job, *, event: tuple[datetime, str, str] | None = None,
        intervals: Sequence[Span] = (),
    ) -> Job:
        now = _now()
        values = _job_values(job, now)
        fast, fast_event = self._job_insert, self._event_insert
        if fast is not None and fast_event is not None and job.id is None and not intervals:
            # the submit path: both rows bound before the transaction (a naive datetime is
            # refused here), then one BEGIN IMMEDIATE ... COMMIT on the driver; a split
            # interruptible job takes the general path below (its intervals in the same
            # transaction)
            params = fast.parameters(values)
            ev = None if event is None else fast_event.parameters(
                {"job_id": 0, "at": event[0], "kind": event[1], "message": event[2]})
            with driver_write(self, f"add job {job.name!r}") as driver:
                new_id = int(driver.execute(fast.sql, params).lastrowid)  # type: ignore[arg-type]
                if ev is not None:
                    driver.execute(fast_event.sql, fast_event.with_value(ev, "job_id", new_id))
        else:
            with self._tx(f"add job {job.name!r}") as conn:
                key = conn.execute(_INSERT_JOB, values).inserted_primary_key
                assert key is not None
                new_id = int(key[0])
                if event is not None:
                    conn.execute(insert(t.events), {"job_id": new_id, "at": event[0],
                                                    "kind": event[1], "message": event[2]})
                _insert_intervals(conn, {new_id: intervals})
                if job.id is not None and self.dialect == "postgresql":
                    # an id given explicitly does not move PostgreSQL's sequence (SQLite's
                    # rowid does move): move it past, or a later job is given this id again
                    conn.execute(text(
                        "SELECT setval(pg_get_serial_sequence('jobs', 'id'), "
                        "GREATEST((SELECT MAX(id) FROM jobs), nextval(pg_get_serial_sequence('jobs', 'id')) - 1, 1))"))
        return dataclasses.replace(job, id=new_id, updated_at=now)

    def add_jobs(
        self, jobs: Sequence[Job], *, intervals: Sequence[Sequence[Span]] | None = None
    ) -> list[int]:
        if not jobs:
            return []
        now = _now()
        values = [_job_values(j, now) for j in jobs]
        with self._tx(f"add {len(jobs)} jobs") as conn:
            result = conn.execute(
                insert(t.jobs).returning(t.jobs.c.id, sort_by_parameter_order=True), values
            )
            ids = [int(i) for i in result.scalars().all()]
            if intervals is not None:
                _insert_intervals(conn, dict(zip(ids, intervals, strict=True)))
            return ids

    def get_job(self, job_id: int) -> Job:
        if not -(2**63) <= job_id < 2**63:  # no such row can exist; SQLite would overflow
            raise NotFound(f"no job {job_id}: see `carbonshift queue` or `carbonshift history`")
        with self._tx(f"read job {job_id}", write=False) as conn:
            row = conn.execute(_SELECT_JOB, {"id": job_id}).first()
        if row is None:
            raise NotFound(f"no job {job_id}: see `carbonshift queue` or `carbonshift history`")
        return _job_from_row(row._mapping)

    def list_jobs(
        self,
        states: Iterable[JobState] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        sites: Iterable[str] | None = None,
        limit: int | None = None,
        newest: bool = False,
        sweep_id: int | None = None,
    ) -> list[Job]:
        c = t.jobs.c
        query: Select[Any] = select(t.jobs)
        if sweep_id is not None:
            query = query.where(c.sweep_id == sweep_id)
        if states is not None:
            query = query.where(c.state.in_([str(s) for s in states]))
        if since is not None:
            query = query.where(c.submitted_at >= since)
        if until is not None:
            query = query.where(c.submitted_at < until)
        if sites is not None:
            query = query.where(func.coalesce(c.planned_site, c.site).in_(list(sites)))
        query = query.order_by(c.id.desc() if newest else c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._tx("list jobs", write=False) as conn:
            rows = conn.execute(query).all()
        return [_job_from_row(r._mapping) for r in (reversed(rows) if newest else rows)]

    def queue_view(
        self, states: Sequence[JobState], *, limit: int | None = None
    ) -> tuple[list[Job], dict[str, int]]:
        c = t.jobs.c
        names = [JobState(s).value for s in states]
        jobs: list[Job] = []
        with self._tx("list the queue", write=False) as conn:
            counts = {str(state): int(n) for state, n in conn.execute(
                select(c.state, func.count()).where(c.state.in_(names)).group_by(c.state))}
            # per state, planned then unplanned: each an index range scan of
            # (state, planned_start) in index order that stops at what is left of the limit
            for name in names:
                for planned in (True, False):
                    left = None if limit is None else limit - len(jobs)
                    if (left is not None and left <= 0) or not counts.get(name):
                        break
                    query = select(t.jobs).where(c.state == name)
                    query = (query.where(c.planned_start.is_not(None)).order_by(c.planned_start, c.id)
                             if planned else query.where(c.planned_start.is_(None)).order_by(c.id))
                    if left is not None:
                        query = query.limit(left)
                    jobs.extend(_job_from_row(r._mapping) for r in conn.execute(query))
        return jobs, counts

    def planned_starts(
        self, *, after: datetime, sites: Iterable[str] | None = None
    ) -> dict[int, datetime]:
        c = t.jobs.c
        query = select(c.id, c.planned_start).where(
            c.state == JobState.PLANNED.value, c.planned_start > after
        )
        if sites is not None:
            query = query.where(func.coalesce(c.planned_site, c.site).in_(list(sites)))
        with self._tx("list planned starts", write=False) as conn:
            return {int(i): start for i, start in conn.execute(query).all()}

    def apply_plan(self, plan: Plan, now: datetime) -> int:
        if not plan.entries:
            return 0
        c = t.jobs.c
        stmt = (
            update(t.jobs)
            .where(c.id == bindparam("b_id"), c.state.in_(_WAITING))
            .values(
                state=JobState.PLANNED.value,
                planned_site=bindparam("b_site"),
                planned_start=bindparam("b_start"),
                expected_g=bindparam("b_expected_g"),
                run_now_g=bindparam("b_run_now_g"),
                updated_at=bindparam("b_now"),
            )
        )
        written: list[int] = []
        with self._tx(f"apply a plan of {len(plan.entries)} jobs") as conn:
            for job_id, entry in plan.entries.items():
                if conn.execute(
                    stmt,
                    {
                        "b_id": job_id,
                        "b_site": entry.site,
                        "b_start": entry.start,
                        "b_expected_g": entry.expected_g,
                        "b_run_now_g": entry.run_now_g,
                        "b_now": now,
                    },
                ).rowcount:
                    written.append(job_id)
            # the jobs written get the entry's intervals (when it split them) in place of
            # any they had: one statement per chunk, cheap when there are none
            ji = t.job_intervals.c
            for i in range(0, len(written), _CHUNK):
                conn.execute(delete(t.job_intervals).where(ji.job_id.in_(written[i:i + _CHUNK])))
            _insert_intervals(conn, {
                j: plan.entries[j].intervals for j in written if len(plan.entries[j].intervals) > 1
            })
        return len(written)

    # -- interruptible jobs ---------------------------------------------------------------
    def planned_intervals(self, job_ids: Iterable[int]) -> dict[int, list[Span]]:
        ids = sorted(set(job_ids))
        out: dict[int, list[Span]] = {}
        if not ids:
            return out
        ji = t.job_intervals.c
        with self._tx("read planned intervals", write=False) as conn:
            for i in range(0, len(ids), _CHUNK):
                rows = conn.execute(
                    select(ji.job_id, ji.start, ji.end)
                    .where(ji.job_id.in_(ids[i:i + _CHUNK]))
                    .order_by(ji.job_id, ji.seq)
                ).all()
                for job_id, start, end in rows:
                    out.setdefault(int(job_id), []).append((start, end))
        return out

    def replan_suspended(
        self, job_id: int, intervals: Sequence[Span], now: datetime, *, note: str | None = None
    ) -> bool:
        if not intervals:
            raise ValueError("a suspended job needs at least one interval to resume in")
        c = t.jobs.c
        values: dict[str, Any] = {"updated_at": _now()}
        if note is not None:
            values["note"] = note
        with self._tx(f"re-plan suspended job {job_id}") as conn:
            n = conn.execute(
                update(t.jobs)
                .where(c.id == job_id, c.state == JobState.SUSPENDED.value)
                .values(values)
            ).rowcount
            if n != 1:
                return False
            conn.execute(delete(t.job_intervals).where(t.job_intervals.c.job_id == job_id))
            _insert_intervals(conn, {job_id: intervals})
        return True

    def update_job(self, job: Job, *, expected: Iterable[JobState] | None = None) -> bool:
        if job.id is None:
            raise NotFound("cannot update a job that was never added (it has no id)")
        values = {
            "state": JobState(job.state).value,
            "planned_start": job.planned_start,
            "planned_site": job.planned_site,
            "expected_g": job.expected_g,
            "run_now_g": job.run_now_g,
            "plan_source": job.plan_source,
            "note": job.note,
            "attempts": job.attempts,
            "priority": job.priority,
            "updated_at": _now(),
        }
        stmt = update(t.jobs).where(t.jobs.c.id == job.id)
        if expected is not None:
            stmt = stmt.where(t.jobs.c.state.in_([JobState(s).value for s in expected]))
        with self._tx(f"update job {job.id}") as conn:
            n = conn.execute(stmt.values(values)).rowcount
            exists = n == 0 and expected is not None and conn.execute(
                select(t.jobs.c.id).where(t.jobs.c.id == job.id)
            ).first() is not None
        if exists:
            return False
        if n == 0:
            raise NotFound(f"no job {job.id}: see `carbonshift queue` or `carbonshift history`")
        return True

    def transition(
        self, job_id: int, to: JobState, *, expected: Iterable[JobState], note: str | None = None
    ) -> bool:
        """Atomically move a job to ``to`` if its state is one of ``expected``.

        Entering ``running`` counts an attempt (``attempts + 1``). :class:`NotFound` if the
        job does not exist; ``False`` if it is in another state.
        """
        c = t.jobs.c
        values: dict[str, Any] = {"state": JobState(to).value, "updated_at": _now()}
        if note is not None:
            values["note"] = note
        if JobState(to) is JobState.RUNNING:
            values["attempts"] = c.attempts + 1
        stmt = (
            update(t.jobs)
            .where(c.id == job_id, c.state.in_([JobState(s).value for s in expected]))
            .values(values)
        )
        with self._tx(f"move job {job_id} to {to}") as conn:
            if conn.execute(stmt).rowcount == 1:
                return True
            exists = conn.execute(select(c.id).where(c.id == job_id)).first()
        if exists is None:
            raise NotFound(f"no job {job_id}: see `carbonshift queue` or `carbonshift history`")
        return False

    def claim_due(
        self, now: datetime, *, sites: Iterable[str] | None = None, limit: int = 10
    ) -> list[Job]:
        """Move up to ``limit`` due planned jobs to ``running`` (``attempts + 1``) and return
        them, earliest planned start first (then higher priority, then id)."""
        c = t.jobs.c
        candidates = (
            select(c.id)
            .where(c.state == JobState.PLANNED.value, c.planned_start <= now)
            .order_by(c.planned_start, c.priority.desc(), c.id)
            .limit(limit)
        )
        if sites is not None:
            candidates = candidates.where(
                func.coalesce(c.planned_site, c.site).in_(list(sites))
            )
        if self.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        with self._tx("claim due jobs") as conn:
            ids = list(conn.execute(candidates).scalars())
            if not ids:
                return []
            rows = conn.execute(
                update(t.jobs)
                .where(c.id.in_(ids), c.state == JobState.PLANNED.value)
                .values(state=JobState.RUNNING.value, updated_at=_now(), attempts=c.attempts + 1)
                .returning(*t.jobs.c)
            ).all()
        claimed = [_job_from_row(r._mapping) for r in rows]
        claimed.sort(key=lambda j: (j.planned_start or now, -j.priority, j.id or 0))
        return claimed
