"""Leases on every backend: the planner lease, run leases, reclaiming and taking over runs.

Same contract as ``test_contract.py`` (every backend of the ``store`` fixture): these methods are
what lets several agents share one queue (``scheduler/leader.py``, ``scheduler/dispatch.py``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.model import Job, JobState, Run
from scheduler.storage.base import JobStore
from scheduler.storage.memory import MemoryStore
from scheduler.storage.store import open_store

T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def make_job() -> Job:
    return Job(name="j", argv=["true"], duration_s=60, zone="GB", submitted_at=T0,
               earliest_start=T0, latest_start=T0, deadline_at=None)


def open_run(store: JobStore, *, host: str = "alpha", lease_until: datetime | None = T0 + 10 * S,
             site: str = "home") -> Run:
    jid = store.add_job(make_job()).id
    assert jid is not None
    return store.add_run(Run(job_id=jid, site=site, executor="local", started_at=T0,
                             host=host, lease_until=lease_until))


# -- the planner lease ----------------------------------------------------------------------


def test_lease_taken_renewed_refused_and_taken_over(store: JobStore) -> None:
    assert store.get_lease("planner") is None
    first = store.acquire_lease("planner", "a", T0, T0 + 10 * S)
    assert first is not None and (first.holder, first.term, first.until) == ("a", 1, T0 + 10 * S)
    # another holder is refused while the lease is live, even at its last instant
    assert store.acquire_lease("planner", "b", T0 + 10 * S, T0 + 20 * S) is None
    # the holder renews: same term, later end
    renewed = store.acquire_lease("planner", "a", T0 + 5 * S, T0 + 15 * S)
    assert renewed is not None and (renewed.term, renewed.until) == (1, T0 + 15 * S)
    assert renewed.acquired_at == T0
    # once it has ended, another takes it, with the next term
    taken = store.acquire_lease("planner", "b", T0 + 16 * S, T0 + 26 * S)
    assert taken is not None and (taken.holder, taken.term) == ("b", 2)
    # the old holder is refused now: it must notice it lost the lease
    assert store.acquire_lease("planner", "a", T0 + 17 * S, T0 + 27 * S) is None
    stored = store.get_lease("planner")
    assert stored is not None and (stored.holder, stored.term, stored.until) == ("b", 2, T0 + 26 * S)
    # leases are independent by name
    other = store.acquire_lease("agent:x", "a", T0 + 17 * S, T0 + 27 * S)
    assert other is not None and other.term == 1


def test_released_lease_is_free_at_once(store: JobStore) -> None:
    assert store.acquire_lease("planner", "a", T0, T0 + 60 * S) is not None
    assert not store.release_lease("planner", "b")  # not b's to release
    assert store.acquire_lease("planner", "b", T0 + S, T0 + 61 * S) is None
    assert store.release_lease("planner", "a")
    taken = store.acquire_lease("planner", "b", T0 + S, T0 + 61 * S)
    assert taken is not None and (taken.holder, taken.term) == ("b", 2)


def test_leases_by_name_prefix(store: JobStore) -> None:
    for name in ("agent:b", "planner", "agent:a", "agent_x", "agentX"):
        assert store.acquire_lease(name, "h", T0, T0 + S) is not None
    assert store.release_lease("agent:a", "h")
    assert [x.name for x in store.leases()] == ["agent:a", "agent:b", "agentX", "agent_x", "planner"]
    assert [x.name for x in store.leases("agent:")] == ["agent:a", "agent:b"]  # expired, released too
    assert [x.name for x in store.leases("agent_")] == ["agent_x"]  # no wildcard in a prefix
    assert store.leases("nobody") == []
    released = store.get_lease("agent:a")
    assert released is not None and released.until < T0  # ended long before any now


@pytest.mark.parametrize(
    "backend", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_one_winner_among_concurrent_takers(
    request: pytest.FixtureRequest, sqlite_url: str, backend: str
) -> None:
    """Six stores on one database (SQL), or six threads on one MemoryStore."""
    stores: list[JobStore]
    if backend == "memory":
        stores = [MemoryStore()] * 6
    else:
        url = sqlite_url if backend == "sqlite" else request.getfixturevalue("pg_url")
        stores = [open_store(url) for _ in range(6)]
    try:
        for round_ in range(3):
            now = T0 + round_ * 100 * S  # each round starts after the last lease ended
            barrier = threading.Barrier(len(stores))
            won: list[str] = []

            def take(i: int, s: JobStore, now: datetime = now,
                     barrier: threading.Barrier = barrier, won: list[str] = won) -> None:
                barrier.wait()
                name = f"agent-{now.minute}-{i}"  # new holders each round: a takeover
                if s.acquire_lease("planner", name, now, now + 50 * S) is not None:
                    won.append(name)

            threads = [threading.Thread(target=take, args=(i, s)) for i, s in enumerate(stores)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert len(won) == 1, won
            lease = stores[0].get_lease("planner")
            assert lease is not None and lease.holder == won[0] and lease.term == round_ + 1
    finally:
        for s in stores:
            s.close()


# -- run leases -----------------------------------------------------------------------------


def test_renew_only_open_runs_of_the_holder(store: JobStore) -> None:
    mine = open_run(store, host="alpha")
    theirs = open_run(store, host="beta")
    closed = open_run(store, host="alpha")
    assert closed.id is not None and mine.id is not None and theirs.id is not None
    closed.finished_at, closed.state = T0 + S, JobState.SUCCEEDED
    assert store.close_run(closed)
    ids = [mine.id, theirs.id, closed.id]
    assert store.renew_leases(ids, T0 + 60 * S, host="alpha") == [mine.id]
    assert store.get_run(mine.id).lease_until == T0 + 60 * S
    assert store.get_run(theirs.id).lease_until == T0 + 10 * S
    assert store.renew_leases(ids, T0 + 70 * S) == sorted([mine.id, theirs.id])
    assert store.renew_leases([], T0) == []


def test_expired_runs_and_atomic_reclaim(store: JobStore) -> None:
    live = open_run(store, lease_until=T0 + 30 * S)
    dead = open_run(store, lease_until=T0 + 5 * S, site="lab")
    parked = open_run(store, lease_until=None)
    assert live.id and dead.id and parked.id
    now = T0 + 10 * S
    assert [r.id for r in store.expired_runs(now)] == [dead.id]
    assert [r.id for r in store.expired_runs(now, sites=["lab"])] == [dead.id]
    assert store.expired_runs(now, sites=["home"]) == []
    assert not store.reclaim_run(live.id, now, reason="x")  # lease still live
    assert not store.reclaim_run(parked.id, now, reason="x")  # parked: never reclaimed
    assert store.reclaim_run(dead.id, now, reason="agent alpha stopped renewing")
    assert not store.reclaim_run(dead.id, now, reason="again")  # only once
    got = store.get_run(dead.id)
    assert (got.state, got.finished_at, got.reason) == (
        JobState.LOST, now, "agent alpha stopped renewing")
    assert store.expired_runs(now) == []
    # a renewal after the reclaim does not bring the run back
    assert store.renew_leases([dead.id], now + 30 * S, host="alpha") == []


def test_a_lease_ending_now_has_not_expired(store: JobStore) -> None:
    run = open_run(store, lease_until=T0 + 5 * S)
    assert run.id is not None
    assert store.expired_runs(T0 + 5 * S) == []
    assert not store.reclaim_run(run.id, T0 + 5 * S, reason="x")
    assert not store.take_over_run(run.id, T0 + 5 * S, host="beta", lease_until=T0 + 60 * S)
    assert [r.id for r in store.expired_runs(T0 + 6 * S)] == [run.id]


def test_take_over_an_expired_run(store: JobStore) -> None:
    run = open_run(store, host="alpha", lease_until=T0 + 5 * S)
    assert run.id is not None
    assert not store.take_over_run(run.id, T0 + S, host="beta", lease_until=T0 + 60 * S)
    assert store.take_over_run(run.id, T0 + 6 * S, host="beta", lease_until=T0 + 60 * S)
    assert not store.take_over_run(run.id, T0 + 7 * S, host="gamma", lease_until=T0 + 60 * S)
    got = store.get_run(run.id)
    assert (got.host, got.lease_until, got.finished_at) == ("beta", T0 + 60 * S, None)
    # the old holder's heartbeat no longer renews it
    assert store.renew_leases([run.id], T0 + 90 * S, host="alpha") == []


def test_close_run_only_once(store: JobStore) -> None:
    run = open_run(store)
    assert run.id is not None
    run.finished_at, run.state, run.exit_code = T0 + S, JobState.SUCCEEDED, 0
    assert store.close_run(run)
    late = store.get_run(run.id)
    late.finished_at, late.state, late.reason = T0 + 2 * S, JobState.LOST, "late"
    assert not store.close_run(late)
    got = store.get_run(run.id)
    assert (got.state, got.exit_code, got.finished_at) == (JobState.SUCCEEDED, 0, T0 + S)


def test_update_job_with_expected_states(store: JobStore) -> None:
    job = store.add_job(make_job())
    assert job.id is not None
    assert store.transition(job.id, JobState.RUNNING, expected={JobState.PENDING})
    job.state, job.note = JobState.PLANNED, "re-planned"
    # a re-plan must not write `planned` over a job that was claimed meanwhile
    assert not store.update_job(job, expected={JobState.PENDING, JobState.PLANNED})
    assert store.get_job(job.id).state is JobState.RUNNING
    assert store.update_job(job, expected={JobState.RUNNING})
    assert store.get_job(job.id).state is JobState.PLANNED


def test_planned_starts_lists_future_planned_jobs(store: JobStore) -> None:
    from scheduler.model import Plan, PlanEntry

    ids = [store.add_job(make_job()).id or 0 for _ in range(4)]
    plan = Plan(entries={
        ids[0]: PlanEntry(ids[0], "home", T0 + 10 * S, 1.0, 1.0, 100.0, "x"),
        ids[1]: PlanEntry(ids[1], "lab", T0 + 20 * S, 1.0, 1.0, 100.0, "x"),
        ids[2]: PlanEntry(ids[2], "home", T0 - 5 * S, 1.0, 1.0, 100.0, "x"),  # due already
    })
    assert store.apply_plan(plan, T0) == 3
    assert store.planned_starts(after=T0) == {ids[0]: T0 + 10 * S, ids[1]: T0 + 20 * S}
    assert store.planned_starts(after=T0, sites=["lab"]) == {ids[1]: T0 + 20 * S}
    assert store.transition(ids[0], JobState.RUNNING, expected={JobState.PLANNED})
    assert store.planned_starts(after=T0) == {ids[1]: T0 + 20 * S}
