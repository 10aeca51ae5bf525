"""The agent's parts (:mod:`scheduler.agent`) driven directly, with a
:class:`~scheduler.executors.fake.FakeExecutor` and the in-memory store
(:class:`~scheduler.storage.memory.MemoryStore`): no processes, no files, no timers,
no threads but the background cancels. Time is two manual clocks: the scheduler's and the
lease clock (real UTC, moved on by hand past a lease)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.agent.leases import Leases, LeaseTerms
from scheduler.agent.parts import Parts, build_parts
from scheduler.agent.runs import Phase
from scheduler.clock import ManualClock
from scheduler.config import load_settings
from scheduler.contracts import JobStore
from scheduler.errors import StorageError
from scheduler.executors.fake import FakeExecutor, Script
from scheduler.measuring import probe_config
from scheduler.model import Job, JobState, Run
from scheduler.presence import Presence
from scheduler.storage.memory import MemoryStore

T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
LEASE_S = 6.0


class StepClock(ManualClock):
    """A manual clock whose future is as far away in real seconds as it reads (the stock
    one calls everything ahead "due in 10 ms", which would pause a run early)."""

    def real_delay_s(self, until: datetime) -> float:
        return max(0.0, (until - self.now()).total_seconds())


@pytest.fixture
def agent_store() -> Iterator[JobStore]:
    """The one store every test here uses: the in-memory one, as the design asks (no file)."""
    store = MemoryStore()
    try:
        yield store
    finally:
        store.close()


@dataclass
class Rig:
    """One agent's parts on ``store``, its executor a fake."""

    store: JobStore
    clock: StepClock
    lease_clock: ManualClock
    fake: FakeExecutor
    parts: Parts
    host: str
    lines: list[str] = field(default_factory=list)

    def said(self, word: str) -> bool:
        return any(word in line for line in self.lines)


@pytest.fixture
def rig(agent_store: JobStore, tmp_path: Path) -> Callable[..., Rig]:
    clock, lease_clock = StepClock(T0), ManualClock(datetime.now(UTC))
    settings = load_settings(env={"HOME": str(tmp_path)},
                             overrides={"data_dir": str(tmp_path / "data"), "lease_s": LEASE_S})

    def make(*, host: str = "agent-a", scripts: dict[int, Script] | None = None, **fake: Any) -> Rig:
        executor = FakeExecutor(clock, scripts=scripts, **fake)
        terms = LeaseTerms(host, LEASE_S, lease_clock.now)
        lines: list[str] = []
        parts = build_parts(
            agent_store, clock, settings, terms, sites=None, executors={"local": executor},
            sample_interval_s=1.0, probe=probe_config(settings), on_event=lines.append,
            site_book=dict, intensity=_no_intensity, trials=None, leadership=None,
            presence=Presence(agent_store, host, None, ttl_s=LEASE_S, now=lease_clock.now),
            stopping=threading.Event(), tick_s=0.1)
        return Rig(agent_store, clock, lease_clock, executor, parts, host, lines)

    return make


def _no_intensity() -> Any:
    raise AssertionError("a run without samples is not accounted")


def due_job(store: JobStore, *, deadline: datetime | None = None, duration_s: int = 600,
            pause_mode: str | None = None, intervals: list[tuple[datetime, datetime]] | None = None) -> int:
    job = store.add_job(Job(
        name="j", argv=["true"], duration_s=duration_s, zone="GB", submitted_at=T0 - timedelta(hours=1),
        earliest_start=T0 - timedelta(hours=1), latest_start=T0 + timedelta(hours=1), deadline_at=deadline,
        state=JobState.PLANNED, planned_start=T0 - timedelta(minutes=1), planned_site="local",
        interruptible=pause_mode is not None, pause_mode=pause_mode), intervals=intervals or ())
    assert job.id is not None
    return job.id


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """For what the agent does in a background thread (cancels)."""
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def past_the_lease(r: Rig, extra_s: float = 0.0) -> None:
    r.lease_clock.advance(LEASE_S + r.parts.leases.terms.timing.reclaim_after_s + 1.0 + extra_s)


# -- launching --------------------------------------------------------------------------------
def test_a_due_job_is_claimed_and_launched(rig: Callable[..., Rig]) -> None:
    r = rig()
    job_id = due_job(r.store)
    r.parts.launcher.launch_due()
    (spec,) = r.fake.launched
    assert spec.job.id == job_id and spec.env["CARBONSHIFT_JOB_ID"] == str(job_id)
    assert spec.out_path.endswith(f"job-{job_id}/run-{spec.run_id}.out")
    assert r.store.get_job(job_id).state is JobState.RUNNING
    (run,) = r.store.runs_for_job(job_id)
    assert run.handle == "fake-1" and run.host == "agent-a" and run.lease_until is not None
    assert list(r.parts.active) == [run.id] and r.said("started")
    r.parts.launcher.launch_due()  # claimed once: nothing launched twice
    assert len(r.fake.launched) == 1


def test_a_launch_the_engine_refuses_fails_the_job(rig: Callable[..., Rig]) -> None:
    r = rig(default=Script(fail_to_start="no such queue"))
    job_id = due_job(r.store)
    r.parts.launcher.launch_due()
    (run,) = r.store.runs_for_job(job_id)
    assert run.state is JobState.FAILED and run.reason == "launch failed: no such queue"
    assert r.store.get_job(job_id).state is JobState.FAILED and not r.parts.active


# -- finishing --------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "state"), [(0, JobState.SUCCEEDED), (3, JobState.FAILED)])
def test_a_run_that_exits_closes_its_job(rig: Callable[..., Rig], code: int, state: JobState) -> None:
    r = rig(default=Script(exit_code=code, duration_s=120))
    job_id = due_job(r.store)
    r.parts.launcher.launch_due()
    r.clock.advance(60)
    r.parts.follow()
    assert r.store.get_job(job_id).state is JobState.RUNNING and r.parts.active  # not yet
    r.clock.advance(61)
    r.parts.follow()
    (run,) = r.store.runs_for_job(job_id)
    assert (run.state, run.exit_code, run.finished_at) == (state, code, T0 + timedelta(seconds=121))
    assert r.store.get_job(job_id).state is state and not r.parts.active
    assert r.said(f"finished     job {job_id}: {state} (exit {code}) after 2m")


@pytest.mark.parametrize(("deadline", "state"), [(None, JobState.PENDING), (T0, JobState.LOST)])
def test_a_run_that_vanishes_is_requeued_while_its_deadline_allows(
        rig: Callable[..., Rig], deadline: datetime | None, state: JobState) -> None:
    r = rig(default=Script(duration_s=600, vanish_after_s=10))
    job_id = due_job(r.store, deadline=deadline)
    r.parts.launcher.launch_due()
    r.clock.advance(11)
    r.parts.follow()
    (run,) = r.store.runs_for_job(job_id)
    assert run.state is JobState.LOST and "vanished" in run.reason
    assert r.store.get_job(job_id).state is state
    assert r.said("requeued" if state is JobState.PENDING else "lost")


def test_a_cancelled_job_is_stopped_and_closed_as_cancelled(rig: Callable[..., Rig]) -> None:
    r = rig(default=Script(duration_s=600))
    job_id = due_job(r.store)
    r.parts.launcher.launch_due()
    assert r.store.transition(job_id, JobState.CANCELLED, expected={JobState.RUNNING})
    r.parts.follow()  # sees the cancel: stops the run in the background
    wait_for(lambda: r.fake.run_of("fake-1").cancelled)
    r.parts.follow()
    (run,) = r.store.runs_for_job(job_id)
    assert run.state is JobState.CANCELLED and r.store.get_job(job_id).state is JobState.CANCELLED


# -- pauses ---------------------------------------------------------------------------------
TWO_INTERVALS = [(T0 - timedelta(minutes=1), T0 + timedelta(minutes=10)),
                 (T0 + timedelta(minutes=30), T0 + timedelta(minutes=40))]


def test_a_stop_mode_run_is_stopped_between_its_intervals(rig: Callable[..., Rig]) -> None:
    r = rig(default=Script(duration_s=20 * 60))
    job_id = due_job(r.store, duration_s=20 * 60, pause_mode="stop", intervals=TWO_INTERVALS)
    r.parts.launcher.launch_due()
    (act,) = r.parts.active.values()
    r.clock.set(T0 + timedelta(minutes=10))
    r.parts.pauses.follow()
    assert act.phase is Phase.STOPPED and r.store.get_job(job_id).state is JobState.SUSPENDED
    assert r.fake.run_of("fake-1").suspends == 1
    r.clock.set(T0 + timedelta(minutes=30))
    r.parts.pauses.follow()
    assert act.phase is Phase.RUNNING and r.store.get_job(job_id).state is JobState.RUNNING
    r.clock.set(T0 + timedelta(minutes=39))  # 10 + 9 minutes run (paused time is not): not done
    r.parts.follow()
    assert r.parts.active
    r.clock.set(T0 + timedelta(minutes=40))
    r.parts.follow()
    assert r.store.get_job(job_id).state is JobState.SUCCEEDED
    assert [(iv.start, iv.end) for iv in r.store.run_intervals(act.run.id or 0)] == [
        (T0, T0 + timedelta(minutes=10)), (T0 + timedelta(minutes=30), T0 + timedelta(minutes=40))]


def test_a_checkpointing_run_exits_at_its_pause_and_is_launched_again(rig: Callable[..., Rig]) -> None:
    r = rig(default=Script(duration_s=20 * 60), can_ask=True)
    job_id = due_job(r.store, duration_s=20 * 60, pause_mode="checkpoint", intervals=TWO_INTERVALS)
    r.parts.launcher.launch_due()
    (act,) = r.parts.active.values()
    r.clock.set(T0 + timedelta(minutes=10))
    r.parts.pauses.follow()
    assert act.phase is Phase.ASKED and r.fake.run_of("fake-1").asked  # its pause signal
    r.parts.follow()  # it exited as asked: paused without a process
    assert act.phase is Phase.CHECKPOINTED and r.store.get_job(job_id).state is JobState.SUSPENDED
    r.clock.set(T0 + timedelta(minutes=30))
    r.parts.pauses.follow()
    assert act.phase is Phase.RUNNING and [s.run_id for s in r.fake.launched] == [act.run.id] * 2
    r.clock.set(T0 + timedelta(minutes=39))
    r.parts.follow()
    assert r.parts.active
    r.clock.set(T0 + timedelta(minutes=40))  # 10 + 10 minutes over its two launches
    r.parts.follow()
    assert r.store.get_job(job_id).state is JobState.SUCCEEDED


# -- leases -----------------------------------------------------------------------------------
def test_a_run_whose_lease_ran_out_is_reclaimed_by_another_agent_and_fenced_here(
        rig: Callable[..., Rig]) -> None:
    a, b = rig(host="agent-a", default=Script(duration_s=3600)), rig(host="agent-b")
    job_id = due_job(a.store)
    a.parts.launcher.launch_due()
    past_the_lease(a)  # agent a renewed nothing meanwhile (hung)
    b.parts.recovery.reclaim_expired()
    (run,) = b.store.runs_for_job(job_id)
    assert run.state is JobState.LOST and "agent agent-a stopped renewing" in run.reason
    assert b.store.get_job(job_id).state is JobState.PENDING and b.said("requeued")
    # agent a wakes up: its renewal is refused, so it stops its copy of the job
    a.parts.follow()
    wait_for(lambda: a.fake.run_of("fake-1").cancelled)
    assert not a.parts.active and a.said("lease lost")


def test_an_engine_side_run_whose_agent_died_is_taken_over(rig: Callable[..., Rig]) -> None:
    a = rig(host="agent-a", default=Script(duration_s=3600), host_bound=False)
    b = rig(host="agent-b", host_bound=False)
    job_id = due_job(a.store)
    a.parts.launcher.launch_due()
    past_the_lease(a)
    b.fake.runs.update(a.fake.runs)  # the engine is shared: b's view of it knows the job
    b.parts.recovery.reclaim_expired()
    (run,) = b.store.runs_for_job(job_id)
    assert run.state is JobState.RUNNING and run.host == "agent-b" and b.said("taken over")
    assert list(b.parts.active) == [run.id] and b.fake.run_of("fake-1").adopted == 1


class _RefusingStore:
    """The store, but the database refuses lease renewals (an outage)."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def renew_leases(self, *args: Any, **kwargs: Any) -> list[int]:
        raise StorageError("database is locked")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_an_agent_that_cannot_renew_fences_its_local_runs(rig: Callable[..., Rig]) -> None:
    r = rig(default=Script(duration_s=3600))
    due_job(r.store)
    r.parts.launcher.launch_due()
    p = r.parts
    leases = Leases(_RefusingStore(r.store), p.leases.terms, p.active, p.events, p.metering,  # type: ignore[arg-type]
                    leadership=None, presence=Presence(r.store, r.host, None, ttl_s=LEASE_S, now=r.lease_clock.now))
    leases.renew()  # refused, but not for long: nothing fenced
    assert not r.fake.run_of("fake-1").cancelled and not r.said("fenced")
    r.lease_clock.advance(LEASE_S)  # most of a lease without a renewal: stop before others reclaim
    leases.renew()
    wait_for(lambda: r.fake.run_of("fake-1").cancelled)
    assert r.said("fenced") and next(iter(p.active.values())).cancel_sent


# -- recovery ---------------------------------------------------------------------------------
def test_a_claim_that_never_started_is_planned_again_once_a_lease_old(rig: Callable[..., Rig]) -> None:
    r = rig()
    job_id = due_job(r.store)
    assert r.store.transition(job_id, JobState.RUNNING, expected={JobState.PLANNED})  # its agent died
    r.parts.recovery.recover()
    assert r.store.get_job(job_id).state is JobState.RUNNING  # maybe a launch in flight
    past_the_lease(r)
    r.parts.recovery.recover()
    assert r.store.get_job(job_id).state is JobState.PLANNED and r.said("never started")


def test_a_new_claim_after_an_ended_run_is_planned_again_not_closed(rig: Callable[..., Rig]) -> None:
    """The one sweep counts claims: a retried job whose last claim never started is planned
    again, not closed with its earlier run's outcome (recovery used to close it)."""
    r = rig()
    job_id = due_job(r.store)
    assert r.store.transition(job_id, JobState.RUNNING, expected={JobState.PLANNED})
    r.store.add_run(Run(job_id=job_id, site="local", executor="local", started_at=T0, host="agent-a",
                        state=JobState.FAILED, finished_at=T0 + timedelta(minutes=1), exit_code=1))
    assert r.store.transition(job_id, JobState.PLANNED, expected={JobState.RUNNING})  # retried
    assert r.store.transition(job_id, JobState.RUNNING, expected={JobState.PLANNED})  # claimed again
    past_the_lease(r)
    r.parts.recovery.recover()
    assert r.store.get_job(job_id).state is JobState.PLANNED


def test_a_run_that_ended_before_its_agent_closed_the_job_closes_it(rig: Callable[..., Rig]) -> None:
    r = rig()
    job_id = due_job(r.store)
    assert r.store.transition(job_id, JobState.RUNNING, expected={JobState.PLANNED})
    r.store.add_run(Run(job_id=job_id, site="local", executor="local", started_at=T0, host="agent-a",
                        state=JobState.SUCCEEDED, finished_at=T0 + timedelta(minutes=1), exit_code=0))
    past_the_lease(r)
    r.parts.recovery.reclaim_expired()  # the periodic sweep is the same one
    assert r.store.get_job(job_id).state is JobState.SUCCEEDED and r.said("job closed")


def test_a_live_run_left_by_this_agents_earlier_life_is_adopted(rig: Callable[..., Rig]) -> None:
    first = rig(default=Script(duration_s=300))
    job_id = due_job(first.store)
    first.parts.launcher.launch_due()
    first.parts.leases.park()  # stopped cleanly
    again = rig(default=Script(duration_s=300))
    again.fake.runs.update(first.fake.runs)  # the same engine: the run still lives
    again.parts.recovery.recover()
    assert len(again.parts.active) == 1 and again.said("adopted")
    again.clock.advance(301)
    again.parts.follow()
    assert again.store.get_job(job_id).state is JobState.SUCCEEDED


# -- shape --------------------------------------------------------------------------------------
def test_the_parts_receive_collaborators_and_import_one_way() -> None:
    """Only the loop (the composition) and the sweeps adapter know the App; the parts'
    imports of each other form no circle."""
    import ast

    agent = Path(__file__).resolve().parents[2] / "scheduler" / "agent"
    uses: dict[str, set[str]] = {}
    for path in agent.glob("*.py"):
        names = {n.module or "" for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(n, ast.ImportFrom)}
        if path.stem not in ("loop", "trials"):
            assert "scheduler.app" not in names, path.name
        uses[path.stem] = {n.rsplit(".", 1)[1] for n in names if n.startswith("scheduler.agent.")}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name not in done:
            for used in uses.get(name, ()):
                visit(used, (*path, name))
            done.add(name)

    for name in uses:
        visit(name, ())
    assert {"loop", "timers", "leases", "recovery", "launcher", "pauses", "outcome", "metering", "runs"} <= done
