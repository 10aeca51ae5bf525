"""MemoryStore and SqlStore answer alike: random sequences of calls (plans, claims, runs,
leases, pauses, sweeps, points, events), each made on both stores, must give equal answers
or the same kind of refusal, and leave both stores reading alike after every call.

The contract suite pins each rule with chosen cases; this walks between them (ids that
exist and ids that do not, states out of order, empty batches). ``updated_at`` is stamped
with the wall clock by both stores and is left out of the comparison."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intensity.model import IntensityPoint, Kind, Signal
from probes.model import Method, Sample
from scheduler.model import Event, Job, JobState, Plan, PlanEntry, Run, RunAccounting, Sweep
from scheduler.storage.base import JobStore, Totals
from scheduler.storage.memory import MemoryStore
from scheduler.storage.store import open_store

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)
STATES = list(JobState)

Call = tuple[str, tuple[Any, ...], dict[str, Any]]


def comparable(value: Any) -> Any:
    """``value`` without what the wall clock stamped."""
    if isinstance(value, Job):
        return dataclasses.replace(value, updated_at=None)
    if isinstance(value, Totals):
        return dataclasses.replace(value, last_planned_at=None)
    if isinstance(value, list | tuple):
        return type(value)(comparable(v) for v in value)
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    return value


class Walk:
    """Random calls over a store's ids (``jobs``, ``runs``, ``sweeps``: how many exist)."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.jobs = self.runs = self.sweeps = 0

    def when(self) -> datetime:
        return T0 + self.r.randint(-4, 8) * H / 2

    def job_id(self) -> int:
        return self.r.randint(1, self.jobs + 1)  # sometimes one that does not exist

    def run_id(self) -> int:
        return self.r.randint(1, self.runs + 1)

    def job(self, **kw: Any) -> Job:
        r = self.r
        values: dict[str, Any] = dict(
            name=r.choice("xyz"), argv=["a"], duration_s=3600, zone="GB",
            submitted_at=self.when(), earliest_start=T0, latest_start=T0 + 5 * H,
            deadline_at=None, site=r.choice("ab"), priority=r.randint(0, 2),
            state=r.choice(STATES), planned_start=r.choice([None, self.when()]),
            planned_site=r.choice([None, "a", "b"]), plan_source=r.choice([None, "p"]))
        values.update(kw)
        return Job(**values)

    def spans(self) -> tuple[tuple[datetime, datetime], ...]:
        start = self.when()
        return tuple((start + i * H, start + i * H + H / 2) for i in range(self.r.randint(0, 3)))

    def run(self, **kw: Any) -> Run:
        return Run(job_id=self.job_id(), site=self.r.choice("ab"), executor="local",
                   started_at=self.when(), host=self.r.choice(["h1", "h2"]),
                   lease_until=self.r.choice([None, self.when()]), **kw)

    def call(self) -> Call:
        r, when, some = self.r, self.when, self.r.sample
        calls: list[Callable[[], Call]] = [
            lambda: ("add_job", (self.job(),), dict(
                event=r.choice([None, (T0, "submitted", "m")]), intervals=self.spans())),
            lambda: ("add_jobs", ([self.job() for _ in range(r.randint(0, 3))],), {}),
            lambda: ("apply_plan", (Plan({i: PlanEntry(i, r.choice("ab"), when(), 1.0, 2.0, 3.0,
                                                       "x", self.spans())
                                          for i in {self.job_id() for _ in range(3)}}), when()), {}),
            lambda: ("transition", (self.job_id(), r.choice(STATES)), dict(
                expected=set(some(STATES, 3)), note=r.choice([None, "n"]))),
            lambda: ("claim_due", (when(),), dict(sites=r.choice([None, ["a"]]),
                                                  limit=r.randint(0, 4))),
            lambda: ("update_job", (self.job(id=self.job_id()),), dict(
                expected=r.choice([None, set(some(STATES, 3))]))),
            lambda: ("list_jobs", (r.choice([None, some(STATES, 3)]),), dict(
                since=r.choice([None, when()]), until=r.choice([None, when()]),
                sites=r.choice([None, ["a"]]), limit=r.choice([None, 0, 2]),
                newest=r.random() < 0.5, sweep_id=r.choice([None, 1]))),
            lambda: ("queue_view", (some(STATES, r.randint(0, 5)),), dict(
                limit=r.choice([None, 0, 2, 5]))),
            lambda: ("planned_starts", (), dict(after=when(), sites=r.choice([None, ["b"]]))),
            lambda: ("add_run", (self.run(),), {}),
            lambda: ("update_run", (self.run(id=self.run_id()),), {}),
            lambda: ("close_run", (self.run(id=self.run_id(), finished_at=r.choice([None, when()]),
                                            exit_code=r.choice([None, 0, 3]),
                                            state=r.choice(STATES)),), {}),
            lambda: ("renew_leases", ([self.run_id() for _ in range(r.randint(0, 3))],
                                      r.choice([None, when()])), dict(host=r.choice([None, "h1"]))),
            lambda: ("expired_runs", (when(),), dict(sites=r.choice([None, ["a"]]))),
            lambda: ("reclaim_run", (self.run_id(), when()), dict(reason="gone")),
            lambda: ("take_over_run", (self.run_id(), when()), dict(host="h3", lease_until=when())),
            lambda: ("set_accounting", (self.run_id(), RunAccounting(1.0, 2.0, 3.0, 4.0, "m", "k",
                                                                     "p")), {}),
            lambda: ("open_run_interval", (self.run_id(), when(), r.choice([None, "h"])), {}),
            lambda: ("set_interval_handle", (self.run_id(), "hh"), {}),
            lambda: ("close_run_interval", (self.run_id(), when(), "how"), {}),
            lambda: ("pause_run", (self.job_id(), self.run_id(), when()), dict(
                how=r.choice([None, "p"]))),
            lambda: ("resume_run", (self.job_id(), self.run_id(), when()), dict(
                handle=r.choice([None, "h"]))),
            lambda: ("replan_suspended", (self.job_id(), self.spans(), when()), dict(
                note=r.choice([None, "moved"]))),
            lambda: ("acquire_lease", (r.choice("pq"), r.choice("ab"), when(), when() + H), {}),
            lambda: ("release_lease", (r.choice("pq"), r.choice("ab")), {}),
            lambda: ("add_samples", (self.run_id(), [
                Sample(when(), when() + H, r.choice(["cpu", "gpu:0"]), 1.5, Method.RAPL)
                for _ in range(r.randint(0, 3))]), {}),
            lambda: ("add_points", ([
                IntensityPoint("GB", when(), when() + H, 1.0, r.choice(list(Kind)), r.choice("pq"),
                               Signal.AVERAGE, r.choice([None, T0]))
                for _ in range(r.randint(0, 3))],), {}),
            lambda: ("get_points", ("GB", when(), when() + 2 * H), dict(
                kind=r.choice([None, Kind.FORECAST]), provider=r.choice([None, "p"]))),
            lambda: ("add_event", (Event(self.job_id(), when(), r.choice("ab"), "m"),), {}),
            lambda: ("events_of_kind", ([self.job_id(), self.job_id()], r.choice(["a", "skipped"])), {}),
            lambda: ("events_since", (r.randint(0, 5),), dict(limit=r.randint(0, 3))),
            lambda: ("add_sweep_with_jobs", (Sweep(name="s", size=2, submitted_at=T0), [
                self.job(state=JobState.PENDING) for _ in range(r.randint(0, 2))]), {}),
            lambda: ("stop_sweep", (r.randint(1, self.sweeps + 1), when(), "why"), dict(
                skip_note=r.choice([None, "skipped"]))),
        ]
        return r.choice(calls)()


def answer(store: JobStore, call: Call) -> Any:
    name, args, kw = call
    try:
        return "ok", comparable(getattr(store, name)(*args, **kw))
    except Exception as exc:  # the kind of refusal is what must agree
        return "refused", type(exc).__name__


def reads(store: JobStore, walk: Walk) -> Any:
    jobs = [j.id or 0 for j in store.list_jobs()]
    runs = list(range(1, walk.runs + 2))
    return comparable([
        store.list_jobs(), store.totals(), store.open_runs(), store.list_sweeps(), store.leases(),
        store.planned_intervals(jobs), store.last_runs(jobs), store.device_energy(runs),
        store.events_since(0), [(store.run_intervals(i), store.samples_for_run(i)) for i in runs],
    ])


@pytest.mark.parametrize("seed", range(4))
def test_memory_and_sql_stores_answer_alike(seed: int) -> None:
    memory, sql = MemoryStore(), open_store("sqlite://")
    walk = Walk(seed)
    try:
        for step in range(120):
            call = walk.call()
            assert answer(memory, call) == answer(sql, call), f"step {step}: {call}"
            if step % 10 == 9 or call[0].startswith("add"):
                assert reads(memory, walk) == reads(sql, walk), f"after step {step}: {call}"
            walk.jobs = len(sql.list_jobs())
            walk.runs = max((r.id or 0 for j in range(1, walk.jobs + 1)
                             for r in sql.runs_for_job(j)), default=0)
            walk.sweeps = len(sql.list_sweeps())
        assert reads(memory, walk) == reads(sql, walk)
    finally:
        sql.close()
