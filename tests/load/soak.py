"""Soak: a simulated week of the scheduler under random faults.

``python -m tests.load.soak --days 7 --jobs 5000`` (also run by ``test_soak.py``).

The real queue, planner, store (an SQLite file), intensity chain (a replayed real trace)
and daemon run on a :class:`~scheduler.clock.ManualClock` moved in steps. Jobs do not
start real processes: :class:`SimExecutor` is an in-memory executor whose "processes" run
for a simulated time (50-100 % of the job's estimate). Real processes cost ~0.1 s of
supervisor start-up each on this machine: 5,000 of them would not fit a CI minute.

Faults, injected at random steps:

- ``daemon_kill``: the daemon is dropped without stopping (no detach, no flush) and a new
  one recovers from the database, as after SIGKILL; the "processes" live on.
- ``job_kill``: a running job's process vanishes without an exit record (its host died).
- ``provider_outage``: every intensity provider fails (for a few simulated hours).
- ``db_lock``: another writer holds the SQLite lock for longer than the busy timeout.
- ``clock_jump``: the clock jumps forward (up to 45 min) or back (up to 20 min).

Figures: jobs, simulated days, lost, double starts (a job started while a run of it
still lived, or after it had succeeded), deadline misses caused by the scheduler (a job
untouched by any fault that finished after its deadline), faults by kind.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from intensity.errors import ProviderUnavailable
from scheduler.app import App
from scheduler.clock import ManualClock
from scheduler.config import load_settings
from scheduler.dispatch import Daemon
from scheduler.errors import StorageError
from scheduler.executors.base import Executor, ExitStatus, Handle, LaunchSpec
from scheduler.model import TERMINAL_STATES, JobState, Policy, Site
from scheduler.queue import SubmitRequest
from scheduler.storage.store import open_store

ORIGIN = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@dataclass
class Proc:
    job_id: int
    start: datetime
    end: datetime
    state: str = "running"  # running | done | killed | cancelled


class SimExecutor(Executor):
    """In-memory "processes" that run for a simulated time on the soak's clock."""

    name = "local"

    def __init__(self, clock: ManualClock, rng: random.Random) -> None:
        self.clock = clock
        self.rng = rng
        self.procs: dict[str, Proc] = {}
        self.starts: Counter[int] = Counter()
        self.double_starts: list[int] = []
        self._ids = itertools.count(1)

    def live(self, job_id: int) -> bool:
        return any(p.job_id == job_id and p.state == "running" for p in self.procs.values())

    def launch(self, spec: LaunchSpec) -> Handle:
        job = spec.job
        assert job.id is not None
        now = self.clock.now()
        if self.live(job.id):
            self.double_starts.append(job.id)
        self.starts[job.id] += 1
        handle = f"sim-{next(self._ids)}"
        actual = job.duration_s * self.rng.uniform(0.5, 1.0)
        self.procs[handle] = Proc(job.id, now, now + timedelta(seconds=actual))
        return Handle(handle=handle)

    def poll(self, handle: Handle) -> ExitStatus | None:
        p = self.procs[handle.handle]
        if p.state == "killed":
            return ExitStatus(None, JobState.LOST.value, "process is gone and left no exit record (injected)")
        if p.state == "cancelled":
            return ExitStatus(143, JobState.FAILED.value, "cancelled")
        if p.state == "done" or self.clock.now() >= p.end:
            p.state = "done"
            return ExitStatus(0, JobState.SUCCEEDED.value, "")
        return None

    def alive(self, handle: Handle) -> bool:
        p = self.procs.get(handle.handle)
        return p is not None and p.state == "running" and self.clock.now() < p.end

    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        p = self.procs[handle.handle]
        if p.state == "running":
            p.state = "cancelled"

    def energy(self, handle: Handle) -> None:
        return None

    def kill_one(self) -> int | None:
        running = [p for p in self.procs.values() if p.state == "running" and self.clock.now() < p.end]
        if not running:
            return None
        p = self.rng.choice(running)
        p.state = "killed"
        return p.job_id


class FailingProvider:
    """Stands in for every provider during an outage."""

    name = "outage"

    def serves(self, zone: str) -> bool:
        return True

    def zones(self) -> list[str]:
        return []

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[Any]:
        raise ProviderUnavailable("outage: connection refused (injected)")

    def history(self, zone: str, start: datetime, end: datetime) -> list[Any]:
        raise ProviderUnavailable("outage: connection refused (injected)")


@dataclass
class Figures:
    jobs: int = 0
    simulated_days: float = 0.0
    real_s: float = 0.0
    succeeded: int = 0
    lost: int = 0
    lost_after_kill_no_time_left: int = 0
    not_finished: int = 0
    double_starts: int = 0
    deadline_misses_scheduler: int = 0
    deadline_misses_after_fault: int = 0
    requeued_after_kill: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    ticks: int = 0
    storage_errors_ridden_out: int = 0
    missed: list[str] = field(default_factory=list)


def _retimed_trace(path: Path, start: datetime, days: int) -> Path:
    """The shipped trace's values, repeated to cover ``days`` from ``start`` (hourly)."""
    import csv

    from intensity.providers.replay import SHIPPED_TRACE

    with SHIPPED_TRACE.open(encoding="utf-8") as f:
        values = [row["Carbon Intensity gCO₂eq/kWh (LCA)"] for row in csv.DictReader(f)]
    with path.open("w", encoding="utf-8") as f:
        f.write("time,intensity_g_per_kwh\n")
        for i in range(days * 24):
            t = start + timedelta(hours=i)
            f.write(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{values[i % len(values)]}\n")
    return path


def run_soak(
    workdir: Path, *, days: float = 7.0, jobs: int = 5000, step_s: int = 600, seed: int = 1,
    fault_rate: float = 0.02, log: Any = None,
) -> Figures:
    rng = random.Random(seed)
    t_real = time.monotonic()
    trace = _retimed_trace(workdir / "trace.csv", ORIGIN - timedelta(days=2), int(days) + 6)
    settings = load_settings(
        env={"HOME": str(workdir)},
        overrides={"db": f"sqlite:///{workdir / 'soak.db'}", "data_dir": str(workdir / "data"),
                   "default_zone": "TRACE", "replan_interval_s": 3600.0, "lease_s": 3600.0},
    )
    settings = replace(settings, intensity={**settings.intensity, "providers": ["replay"], "trace": str(trace)})
    clock = ManualClock(ORIGIN)
    app = App(settings, env={"PATH": "/usr/bin:/bin"}, clock=clock)
    app._store = open_store(settings.db, busy_timeout_s=0.2)
    # capacity is not what this soak is about: room for every job at once
    app.store.put_site(Site(name="local", zone="TRACE", executor="local", cpus=100_000))
    executor = SimExecutor(clock, rng)
    events: list[str] = []
    sink = (lambda line: events.append(line)) if log is None else log

    def new_daemon() -> Daemon:
        d = Daemon(app, executors={"local": executor}, tick_s=0.0, on_event=sink, sample_interval_s=1.0)
        d.recover()
        return d

    daemon = new_daemon()
    figs = Figures()
    faults: Counter[str] = Counter()
    touched: set[int] = set()  # jobs a fault may excuse (killed, or running during a jump)
    end = ORIGIN + timedelta(days=days)
    steps = int((end - ORIGIN).total_seconds() // step_s)
    per_step = jobs / steps
    submitted = 0
    outage_until: datetime | None = None
    real_providers = list(app.intensity.providers)
    lock: sqlite3.Connection | None = None
    lock_ticks = 0
    for step in range(steps):
        now = clock.now()
        # arrivals: a Poisson-ish number of jobs, varied policies
        want = min(jobs, round((step + 1) * per_step))
        reqs: list[SubmitRequest] = []
        while submitted + len(reqs) < want:
            dur = rng.choice([300, 600, 1200, 1800, 3600, 7200, 10800])
            slack = rng.choice([0, 1800, 3600, 4 * 3600, 8 * 3600, 12 * 3600, 20 * 3600])
            pol = Policy(name="(flags)", deadline_s=dur + slack if slack else None, run_now=not slack)
            if slack and rng.random() < 0.1:  # a threshold with --now is refused
                pol = replace(pol, threshold_g_per_kwh=rng.choice([150.0, 250.0]))
            reqs.append(SubmitRequest(argv=["true"], duration_s=dur, name=f"soak-{submitted + len(reqs)}",
                                      overrides=pol, cwd=str(workdir), submitter_env={"PATH": "/usr/bin"}))
        if reqs and lock is None:
            app.queue.submit_many(reqs, now=now)
            submitted += len(reqs)
        # faults
        if rng.random() < fault_rate:
            kind = rng.choice(["daemon_kill", "job_kill", "provider_outage", "db_lock", "clock_jump"])
            if kind == "daemon_kill":
                daemon = new_daemon()  # the old one is dropped as it stands: no detach, no flush
            elif kind == "job_kill":
                victim = executor.kill_one()
                if victim is None:
                    kind = ""
                else:
                    touched.add(victim)
            elif kind == "provider_outage" and outage_until is None:
                app.intensity.providers = [FailingProvider()]  # type: ignore[list-item]
                app.queue._forecasts.clear()
                outage_until = now + timedelta(hours=rng.uniform(1, 6))
            elif kind == "db_lock" and lock is None:
                lock = sqlite3.connect(workdir / "soak.db", isolation_level=None, timeout=5)
                lock.execute("BEGIN IMMEDIATE")
                lock_ticks = rng.randint(1, 3)
                # launches due while the database is locked are late through no fault of
                # the scheduler's: their deadlines are excused
                due = now + timedelta(seconds=(lock_ticks + 1) * step_s)
                touched.update(j.id for j in app.store.list_jobs([JobState.PLANNED])
                               if j.id is not None and j.planned_start is not None and j.planned_start <= due)
                # and the ends of running jobs are noticed (and recorded) late
                touched.update(p.job_id for p in executor.procs.values() if p.state == "running")
            elif kind == "clock_jump":
                jump = rng.choice([rng.uniform(60, 2700), -rng.uniform(60, 1200)])
                touched.update(p.job_id for p in executor.procs.values() if p.state == "running")
                touched.update(j.id for j in app.store.list_jobs([JobState.PLANNED]) if j.id is not None)
                clock.advance(jump)
            else:
                kind = ""
            if kind:
                faults[kind] += 1
        if outage_until is not None and clock.now() >= outage_until:
            app.intensity.providers = real_providers
            app.queue._forecasts.clear()
            outage_until = None
        # One step is many of the daemon's one-second ticks: tick again while jobs are due
        # (launch_due claims a batch per tick within a real-time budget)
        for _ in range(50):
            try:
                daemon.tick()
            except StorageError:
                figs.storage_errors_ridden_out += 1  # what run_forever does: say so, retry
                break
            figs.ticks += 1
            planned = app.store.list_jobs([JobState.PLANNED])
            if not any(j.planned_start is not None and j.planned_start <= clock.now() for j in planned):
                break
        if lock is not None:
            lock_ticks -= 1
            if lock_ticks <= 0:
                lock.execute("COMMIT")
                lock.close()
                lock = None
        clock.advance(step_s)
    # drain: let everything finish (no new jobs, no faults)
    if lock is not None:
        lock.execute("COMMIT")
        lock.close()
    app.intensity.providers = real_providers
    for _ in range(int(3 * 86400 // step_s)):
        daemon.tick()
        if not app.store.list_jobs([JobState.PENDING, JobState.PLANNED, JobState.RUNNING], limit=1):
            break
        clock.advance(step_s)
    daemon.tick()
    # figures
    figs.jobs = submitted
    figs.simulated_days = (clock.now() - ORIGIN).total_seconds() / 86400
    killed_jobs = {p.job_id for p in executor.procs.values() if p.state == "killed"}
    for job in app.store.list_jobs():
        assert job.id is not None
        if job.state is JobState.SUCCEEDED:
            figs.succeeded += 1
        elif job.state is JobState.LOST:
            # a killed run is requeued while its deadline allows; otherwise reported lost
            if job.id in killed_jobs and job.deadline_at is not None:
                figs.lost_after_kill_no_time_left += 1
            else:
                figs.lost += 1
        elif job.state not in TERMINAL_STATES:
            figs.not_finished += 1
        runs = app.store.runs_for_job(job.id)
        if job.id in killed_jobs and len(runs) > 1:
            figs.requeued_after_kill += 1
        if job.state is JobState.SUCCEEDED and job.deadline_at is not None:
            finished = runs[-1].finished_at
            assert finished is not None
            # the daemon notices an exit at its next tick: allow one step
            if finished > job.deadline_at + timedelta(seconds=step_s):
                if job.id in touched:
                    figs.deadline_misses_after_fault += 1
                else:
                    figs.deadline_misses_scheduler += 1
                    figs.missed.append(
                        f"job {job.id}: submitted {job.submitted_at:%d %H:%M}, planned {job.planned_start:%d %H:%M}, "
                        f"runs {[(f'{r.started_at:%d %H:%M}', f'{r.finished_at:%d %H:%M}' if r.finished_at else None, r.state.value) for r in runs]}, "
                        f"deadline {job.deadline_at:%d %H:%M}, duration {job.duration_s} s"
                    )
        # a start after success is a double start too
        if job.state is JobState.SUCCEEDED and executor.starts[job.id] > len(runs):
            figs.double_starts += 1
    figs.double_starts += len(executor.double_starts)
    figs.faults = dict(faults)
    figs.real_s = time.monotonic() - t_real
    app.close()
    return figs


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.disable(logging.WARNING)  # the injected outages would log a warning per forecast
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--step", type=int, default=600, help="simulated seconds per tick")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.02, help="chance of a fault per tick")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        figs = run_soak(Path(args.dir or tmp), days=args.days, jobs=args.jobs, step_s=args.step,
                        seed=args.seed, fault_rate=args.fault_rate)
    print(json.dumps(figs.__dict__, indent=2))
    ok = figs.lost == 0 and figs.double_starts == 0 and figs.deadline_misses_scheduler == 0 and figs.not_finished == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
