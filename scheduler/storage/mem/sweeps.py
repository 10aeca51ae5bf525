"""Sweeps: a sweep added with its trials in one call, read, listed and stopped.

Part of :class:`~scheduler.storage.mem.store.MemoryStore` (see :mod:`scheduler.storage.mem.state`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime

from scheduler.domain.model import Event, Job, JobState, Sweep, sweep_ref
from scheduler.errors import NotFound, StorageError
from scheduler.storage.base import Span
from scheduler.storage.mem.jobs import _WAITING, MemoryJobs
from scheduler.storage.mem.state import _at, _not_null, _spans, _utc


class MemorySweeps(MemoryJobs):
    """Sweeps and their trials (jobs: the trials are written through :class:`MemoryJobs`)."""

    def add_sweep_with_jobs(
        self, sweep: Sweep, jobs: Sequence[Job], *,
        events: Sequence[tuple[datetime, str, str]] | None = None,
        intervals: Sequence[Sequence[Span]] | None = None,
    ) -> tuple[Sweep, list[Job]]:
        for given, name in ((events, "events"), (intervals, "interval lists")):
            if given is not None and len(given) != len(jobs):
                raise ValueError(f"{len(given)} {name} for {len(jobs)} trials")
        what = f"add sweep {sweep.name!r} of {len(jobs)} trials"
        stored = dataclasses.replace(sweep, submitted_at=_utc(sweep.submitted_at),
                                     deadline_at=_utc(sweep.deadline_at),
                                     stopped_at=_utc(sweep.stopped_at))
        _not_null("sweeps", stored, what)
        with self._lock:
            now = self._now()
            rows = [self._job_in(j, now, what) for j in jobs]
            spans = ([_spans(s, what) for s in intervals] if intervals is not None
                     else [[] for _ in rows])
            evs = [Event(job_id=0, at=_utc(at), kind=kind, message=message)
                   for at, kind, message in (events or ())]
            for ev in evs:
                _not_null("events", ev, what)
            self._check_ids(rows)
            if sweep.id is not None and sweep.id in self._sweeps:
                raise StorageError(f"could not {what} in the in-memory store: sweep id "
                                   f"{sweep.id} is taken")
            stored.id = self._ids.take("sweeps", sweep.id, self._sweeps.__contains__)
            self._sweeps[stored.id] = stored
            for row in rows:
                row.sweep_id = stored.id
            trials = self._insert_jobs(rows, spans)
            for trial, ev in zip(trials, evs, strict=False):
                self._insert_event(dataclasses.replace(ev, job_id=trial.id or 0))
            return dataclasses.replace(stored), trials

    def get_sweep(self, sweep_id: int) -> Sweep:
        with self._lock:
            found = self._sweeps.get(sweep_id)
            if found is None:
                raise NotFound(f"no sweep {sweep_ref(sweep_id)}: see `carbonshift queue` or "
                               "`carbonshift history`")
            return dataclasses.replace(found)

    def list_sweeps(self, ids: Iterable[int] | None = None) -> list[Sweep]:
        with self._lock:
            wanted = sorted(self._sweeps) if ids is None else sorted(set(ids) & set(self._sweeps))
            return [dataclasses.replace(self._sweeps[i]) for i in wanted]

    def stop_sweep(
        self, sweep_id: int, at: datetime, reason: str, *, skip_note: str | None = None
    ) -> list[int]:
        what = f"stop sweep {sweep_ref(sweep_id)}"
        with self._lock:
            sweep = self._sweeps.get(sweep_id)
            if sweep is None:
                raise NotFound(f"no sweep {sweep_ref(sweep_id)}: see `carbonshift queue`")
            at = _at(at)
            if sweep.stopped_at is None:
                _not_null("sweeps", {"stop_reason": reason}, what)
                sweep.stopped_at, sweep.stop_reason = at, reason
            if skip_note is None:
                return []
            waiting = [i for i, job in sorted(self._jobs.items())
                       if job.sweep_id == sweep_id and job.state in _WAITING]
            stamp = self._now()
            for i in waiting:
                job = self._jobs[i]
                job.state, job.note, job.updated_at = JobState.SKIPPED, skip_note, stamp
                self._insert_event(Event(i, at, "skipped", skip_note))
            return waiting


__all__ = ["MemorySweeps"]
