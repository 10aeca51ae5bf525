"""Runs, with their intervals and pauses: add, update, close, run leases with
expiry (renew, reclaim, take over) and accounting.

Part of :class:`~scheduler.storage.mem.store.MemoryStore` (see :mod:`scheduler.storage.mem.state`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime

from scheduler.domain.model import JobState, Run, RunAccounting, RunInterval
from scheduler.errors import NotFound, StorageError
from scheduler.storage.mem.state import MemoryState, _at, _not_null, _run_out, _utc


class MemoryRuns(MemoryState):
    """Runs of jobs, their run leases, intervals and pauses."""

    @staticmethod
    def _run_in(run: Run, what: str) -> Run:
        stored = dataclasses.replace(run, started_at=_utc(run.started_at),
                                     finished_at=_utc(run.finished_at),
                                     lease_until=_utc(run.lease_until), state=JobState(run.state))
        _not_null("runs", stored, what)
        return stored

    def _run(self, run_id: int) -> Run:
        found = self._runs.get(run_id)
        if found is None:
            raise NotFound(f"no run {run_id}")
        return found

    def add_run(self, run: Run) -> Run:
        stored = self._run_in(run, f"add a run of job {run.job_id}")
        with self._lock:
            if run.job_id not in self._jobs:
                raise NotFound(f"no job {run.job_id} to add a run to")
            stored.id = self._ids.take("runs", run.id, self._runs.__contains__)
            self._runs[stored.id] = stored
            return _run_out(stored)

    def update_run(self, run: Run) -> None:
        if run.id is None:
            raise NotFound("cannot update a run that was never added (it has no id)")
        stored = self._run_in(run, f"update run {run.id}")
        with self._lock:
            self._write_run(self._run(run.id), stored)

    @staticmethod
    def _write_run(into: Run, values: Run) -> None:
        """What :meth:`update_run` and :meth:`close_run` write: all but job and accounting."""
        for name in ("site", "executor", "started_at", "handle", "host", "finished_at",
                     "exit_code", "state", "out_path", "err_path", "reason", "lease_until"):
            setattr(into, name, getattr(values, name))

    def get_run(self, run_id: int) -> Run:
        with self._lock:
            return _run_out(self._run(run_id))

    def runs_for_job(self, job_id: int) -> list[Run]:
        with self._lock:
            return [_run_out(r) for r in sorted(
                (r for r in self._runs.values() if r.job_id == job_id), key=_run_order)]

    def last_runs(self, job_ids: Iterable[int]) -> dict[int, Run]:
        wanted = set(job_ids)
        with self._lock:
            out: dict[int, Run] = {}
            for run in sorted((r for r in self._runs.values() if r.job_id in wanted),
                              key=_run_order):
                out[run.job_id] = run
            return {job_id: _run_out(run) for job_id, run in sorted(out.items())}

    def open_runs(self, *, host: str | None = None) -> list[Run]:
        with self._lock:
            return [_run_out(r) for _, r in sorted(self._runs.items())
                    if r.finished_at is None and (host is None or r.host == host)]

    def renew_leases(
        self, run_ids: Sequence[int], until: datetime | None, *, host: str | None = None
    ) -> list[int]:
        if not run_ids:
            return []
        until = _utc(until)
        with self._lock:
            renewed = sorted(
                i for i in set(run_ids)
                if (run := self._runs.get(i)) is not None and run.finished_at is None
                and (host is None or run.host == host)
            )
            for i in renewed:
                self._runs[i].lease_until = until
            return renewed

    def _expired(self, run_id: int, now: datetime) -> Run | None:
        run = self._runs.get(run_id)
        if (run is None or run.finished_at is not None or run.lease_until is None
                or not run.lease_until < now):
            return None
        return run

    def expired_runs(self, now: datetime, *, sites: Iterable[str] | None = None) -> list[Run]:
        now = _at(now)
        where = None if sites is None else set(sites)
        with self._lock:
            return [_run_out(r) for i, r in sorted(self._runs.items())
                    if self._expired(i, now) is not None and (where is None or r.site in where)]

    def reclaim_run(self, run_id: int, now: datetime, *, reason: str) -> bool:
        now = _at(now)
        how = "lost: " + reason
        _not_null("runs", {"reason": reason}, f"reclaim run {run_id}")
        with self._lock:
            run = self._expired(run_id, now)
            if run is None:
                return False
            run.finished_at, run.state, run.reason = now, JobState.LOST, reason
            self._close_interval(run_id, now, how)
            return True

    def take_over_run(
        self, run_id: int, now: datetime, *, host: str, lease_until: datetime
    ) -> bool:
        now, until = _at(now), _utc(lease_until)
        _not_null("runs", {"host": host}, f"take over run {run_id}")
        with self._lock:
            run = self._expired(run_id, now)
            if run is None:
                return False
            run.host, run.lease_until = host, until
            return True

    def close_run(self, run: Run) -> bool:
        if run.id is None:
            raise NotFound("cannot close a run that was never added (it has no id)")
        values = self._run_in(run, f"close run {run.id}")
        with self._lock:
            stored = self._run(run.id)
            if stored.finished_at is not None:
                return False
            self._write_run(stored, values)
            if values.finished_at is not None:
                how = (f"exit {run.exit_code}" if run.exit_code is not None
                       else JobState(run.state).value)
                self._close_interval(run.id, values.finished_at, how)
            return True

    def set_accounting(self, run_id: int, accounting: RunAccounting) -> None:
        with self._lock:
            self._run(run_id).accounting = accounting

    def _open_interval(self, run_id: int, at: datetime, handle: str | None) -> None:
        if run_id not in self._runs:
            raise StorageError(f"could not open an interval of run {run_id} in the in-memory "
                               "store: no such run")
        iid = self._ids.take("run_intervals", None, lambda _: False)
        self._run_intervals[run_id].append(RunInterval(run_id, at, None, handle, "", iid))

    def _close_interval(self, run_id: int, at: datetime, how: str) -> bool:
        """End the open interval of a run (there is at most one)."""
        ivs = self._run_intervals.get(run_id, [])
        closed = False
        for k, iv in enumerate(ivs):
            if iv.end is None:
                ivs[k], closed = dataclasses.replace(iv, end=at, how=how), True
        return closed

    def open_run_interval(self, run_id: int, at: datetime, handle: str | None = None) -> None:
        at = _at(at)
        with self._lock:
            self._open_interval(run_id, at, handle)

    def set_interval_handle(self, run_id: int, handle: str) -> None:
        with self._lock:
            ivs = self._run_intervals.get(run_id, [])
            for k, iv in enumerate(ivs):
                if iv.end is None:
                    ivs[k] = dataclasses.replace(iv, handle=handle)

    def close_run_interval(self, run_id: int, at: datetime, how: str) -> bool:
        at = _at(at)
        _not_null("run_intervals", {"how": how}, f"close an interval of run {run_id}")
        with self._lock:
            return self._close_interval(run_id, at, how)

    def pause_run(self, job_id: int, run_id: int, at: datetime, *, how: str | None) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state is not JobState.RUNNING:
                return False
            if how is not None:
                self._close_interval(run_id, _at(at), how)
            job.state, job.updated_at = JobState.SUSPENDED, self._now()
            return True

    def resume_run(
        self, job_id: int, run_id: int, at: datetime, *, handle: str | None = None
    ) -> bool:
        at = _at(at)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state is not JobState.SUSPENDED:
                return False
            spans = self._job_intervals.get(job_id, [])
            under_way = any(a <= at < b for a, b in spans)
            ahead = any(b > at for _, b in spans)
            if not (under_way or not ahead):
                return False
            self._open_interval(run_id, at, handle)
            job.state, job.updated_at = JobState.RUNNING, self._now()
            return True

    def run_intervals(self, run_id: int) -> list[RunInterval]:
        with self._lock:
            return sorted(self._run_intervals.get(run_id, []), key=lambda iv: (iv.start, iv.id))


def _run_order(run: Run) -> tuple[datetime, int]:
    return run.started_at, run.id or 0


__all__ = ["MemoryRuns"]
