"""Runs: their rows and leases (renew, expire, reclaim, take over, close), accounting, and
the intervals of a run (pauses and resumes of interruptible jobs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exists, insert, select, update
from sqlalchemy.engine import RowMapping

from scheduler.domain.model import JobState, Run, RunAccounting, RunInterval
from scheduler.errors import NotFound
from scheduler.storage import tables as t
from scheduler.storage.sql.engine import SqlEngine, _now


def _open_interval(conn: Connection, run_id: int, at: datetime, handle: str | None) -> None:
    conn.execute(insert(t.run_intervals), {"run_id": run_id, "start": at, "handle": handle, "how": ""})


def _close_interval(conn: Connection, run_id: int, at: datetime, how: str) -> bool:
    """End the open interval of a run (there is at most one)."""
    ri = t.run_intervals.c
    n = conn.execute(
        update(t.run_intervals).where(ri.run_id == run_id, ri.end.is_(None)).values(end=at, how=how)
    ).rowcount
    return bool(n)


def _run_values(run: Run) -> dict[str, Any]:
    return {
        "job_id": run.job_id,
        "site": run.site,
        "executor": run.executor,
        "started_at": run.started_at,
        "handle": run.handle,
        "host": run.host,
        "finished_at": run.finished_at,
        "exit_code": run.exit_code,
        "state": JobState(run.state).value,
        "out_path": run.out_path,
        "err_path": run.err_path,
        "reason": run.reason,
        "lease_until": run.lease_until,
    }


_ACCOUNTING_FIELDS = [f.name for f in dataclasses.fields(RunAccounting)]


def _accounting_values(acc: RunAccounting | None) -> dict[str, Any]:
    if acc is None:
        return dict.fromkeys(_ACCOUNTING_FIELDS)
    return {name: getattr(acc, name) for name in _ACCOUNTING_FIELDS}


def _run_from_row(m: RowMapping) -> Run:
    accounting = None
    if m["energy_j"] is not None:
        accounting = RunAccounting(**{name: m[name] for name in _ACCOUNTING_FIELDS})
    return Run(
        job_id=m["job_id"],
        site=m["site"],
        executor=m["executor"],
        started_at=m["started_at"],
        id=m["id"],
        handle=m["handle"],
        host=m["host"],
        finished_at=m["finished_at"],
        exit_code=m["exit_code"],
        state=JobState(m["state"]),
        out_path=m["out_path"],
        err_path=m["err_path"],
        reason=m["reason"],
        lease_until=m["lease_until"],
        accounting=accounting,
    )


class SqlRuns(SqlEngine):
    """The runs aggregate (the ``runs`` and ``run_intervals`` tables)."""

    def open_run_interval(self, run_id: int, at: datetime, handle: str | None = None) -> None:
        with self._tx(f"open an interval of run {run_id}") as conn:
            _open_interval(conn, run_id, at, handle)

    def set_interval_handle(self, run_id: int, handle: str) -> None:
        ri = t.run_intervals.c
        with self._tx(f"record the process of run {run_id}") as conn:
            conn.execute(
                update(t.run_intervals)
                .where(ri.run_id == run_id, ri.end.is_(None))
                .values(handle=handle)
            )

    def close_run_interval(self, run_id: int, at: datetime, how: str) -> bool:
        with self._tx(f"close an interval of run {run_id}") as conn:
            return _close_interval(conn, run_id, at, how)

    def pause_run(self, job_id: int, run_id: int, at: datetime, *, how: str | None) -> bool:
        c = t.jobs.c
        with self._tx(f"pause job {job_id}") as conn:
            n = conn.execute(
                update(t.jobs)
                .where(c.id == job_id, c.state == JobState.RUNNING.value)
                .values(state=JobState.SUSPENDED.value, updated_at=_now())
            ).rowcount
            if n != 1:
                return False
            if how is not None:
                _close_interval(conn, run_id, at, how)
        return True

    def resume_run(
        self, job_id: int, run_id: int, at: datetime, *, handle: str | None = None
    ) -> bool:
        c, ji = t.jobs.c, t.job_intervals.c
        # due: an interval is under way, or none is left ahead (the first interval not yet
        # ended has begun); read in the same statement as the state, so a re-plan that
        # moved the job's intervals is always respected
        mine = ji.job_id == c.id
        under_way = exists().where(mine, ji.start <= at, ji.end > at)
        ahead = exists().where(mine, ji.end > at)
        due = under_way | ~ahead
        with self._tx(f"resume job {job_id}") as conn:
            n = conn.execute(
                update(t.jobs)
                .where(c.id == job_id, c.state == JobState.SUSPENDED.value, due)
                .values(state=JobState.RUNNING.value, updated_at=_now())
            ).rowcount
            if n != 1:
                return False
            _open_interval(conn, run_id, at, handle)
        return True

    def run_intervals(self, run_id: int) -> list[RunInterval]:
        ri = t.run_intervals.c
        with self._tx(f"read the intervals of run {run_id}", write=False) as conn:
            rows = conn.execute(
                select(t.run_intervals).where(ri.run_id == run_id).order_by(ri.start, ri.id)
            ).all()
        return [RunInterval(**r._mapping) for r in rows]

    # -- runs -----------------------------------------------------------------------------
    def add_run(self, run: Run) -> Run:
        values = _run_values(run)
        values.update(_accounting_values(run.accounting))
        with self._child_tx(f"add a run of job {run.job_id}",
                            f"no job {run.job_id} to add a run to") as conn:
            new_id = conn.execute(insert(t.runs).returning(t.runs.c.id), values).scalar_one()
        return dataclasses.replace(run, id=new_id)

    def update_run(self, run: Run) -> None:
        if run.id is None:
            raise NotFound("cannot update a run that was never added (it has no id)")
        values = _run_values(run)
        del values["job_id"]
        with self._tx(f"update run {run.id}") as conn:
            n = conn.execute(update(t.runs).where(t.runs.c.id == run.id).values(values)).rowcount
        if n == 0:
            raise NotFound(f"no run {run.id}")

    def get_run(self, run_id: int) -> Run:
        with self._tx(f"read run {run_id}", write=False) as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no run {run_id}")
        return _run_from_row(row._mapping)

    def runs_for_job(self, job_id: int) -> list[Run]:
        c = t.runs.c
        with self._tx(f"read runs of job {job_id}", write=False) as conn:
            rows = conn.execute(
                select(t.runs).where(c.job_id == job_id).order_by(c.started_at, c.id)
            ).all()
        return [_run_from_row(r._mapping) for r in rows]

    def last_runs(self, job_ids: Iterable[int]) -> dict[int, Run]:
        ids = sorted(set(job_ids))
        c = t.runs.c
        out: dict[int, Run] = {}
        with self._tx("read the last runs of jobs", write=False) as conn:
            for k in range(0, len(ids), 500):  # bounded IN lists; rows in run order per job
                rows = conn.execute(
                    select(t.runs).where(c.job_id.in_(ids[k:k + 500]))
                    .order_by(c.job_id, c.started_at, c.id)
                ).all()
                for r in rows:
                    run = _run_from_row(r._mapping)
                    out[run.job_id] = run
        return out

    def open_runs(self, *, host: str | None = None) -> list[Run]:
        c = t.runs.c
        query = select(t.runs).where(c.finished_at.is_(None))
        if host is not None:
            query = query.where(c.host == host)
        with self._tx("list open runs", write=False) as conn:
            rows = conn.execute(query.order_by(c.id)).all()
        return [_run_from_row(r._mapping) for r in rows]

    def renew_leases(
        self, run_ids: Sequence[int], until: datetime | None, *, host: str | None = None
    ) -> list[int]:
        if not run_ids:
            return []
        c = t.runs.c
        stmt = update(t.runs).where(c.id.in_(list(run_ids)), c.finished_at.is_(None))
        if host is not None:
            stmt = stmt.where(c.host == host)
        with self._tx(f"renew the leases of {len(run_ids)} runs") as conn:
            renewed = conn.execute(stmt.values(lease_until=until).returning(c.id)).scalars()
            return sorted(int(i) for i in renewed)

    def expired_runs(self, now: datetime, *, sites: Iterable[str] | None = None) -> list[Run]:
        c = t.runs.c
        query = select(t.runs).where(
            c.finished_at.is_(None), c.lease_until.is_not(None), c.lease_until < now
        )
        if sites is not None:
            query = query.where(c.site.in_(list(sites)))
        with self._tx("list runs whose lease expired", write=False) as conn:
            rows = conn.execute(query.order_by(c.id)).all()
        return [_run_from_row(r._mapping) for r in rows]

    def _expired(self, run_id: int, now: datetime) -> Any:
        c = t.runs.c
        return update(t.runs).where(
            c.id == run_id, c.finished_at.is_(None), c.lease_until.is_not(None),
            c.lease_until < now,
        )

    def reclaim_run(self, run_id: int, now: datetime, *, reason: str) -> bool:
        stmt = self._expired(run_id, now).values(
            finished_at=now, state=JobState.LOST.value, reason=reason
        )
        with self._tx(f"reclaim run {run_id}") as conn:
            won = bool(conn.execute(stmt).rowcount == 1)
            if won:
                _close_interval(conn, run_id, now, "lost: " + reason)
            return won

    def take_over_run(
        self, run_id: int, now: datetime, *, host: str, lease_until: datetime
    ) -> bool:
        stmt = self._expired(run_id, now).values(host=host, lease_until=lease_until)
        with self._tx(f"take over run {run_id}") as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def close_run(self, run: Run) -> bool:
        if run.id is None:
            raise NotFound("cannot close a run that was never added (it has no id)")
        values = _run_values(run)
        del values["job_id"]
        c = t.runs.c
        with self._tx(f"close run {run.id}") as conn:
            n = conn.execute(
                update(t.runs).where(c.id == run.id, c.finished_at.is_(None)).values(values)
            ).rowcount
            if n == 0 and conn.execute(select(c.id).where(c.id == run.id)).first() is None:
                raise NotFound(f"no run {run.id}")
            if n == 1 and run.finished_at is not None:
                how = (f"exit {run.exit_code}" if run.exit_code is not None
                       else JobState(run.state).value)
                _close_interval(conn, run.id, run.finished_at, how)
        return bool(n == 1)

    def set_accounting(self, run_id: int, accounting: RunAccounting) -> None:
        with self._tx(f"store the accounting of run {run_id}") as conn:
            n = conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(_accounting_values(accounting))
            ).rowcount
        if n == 0:
            raise NotFound(f"no run {run_id}")
