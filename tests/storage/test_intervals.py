"""The store's side of interruptible jobs, on every backend (in-memory SQLite, SQLite file,
PostgreSQL): planned intervals written with the job and with each plan, and the pause and
resume transitions won atomically with the run's intervals."""

from __future__ import annotations

import threading
from datetime import timedelta

from scheduler.model import JobState, Plan, PlanEntry, Run
from scheduler.storage.base import JobStore
from tests.storage.test_contract import T0, H, make_job

SPLIT = ((T0 + H, T0 + 2 * H), (T0 + 4 * H, T0 + 5 * H))


def _running(store: JobStore, **kw: object) -> tuple[int, int]:
    """An interruptible job claimed and launched: ``(job id, run id)``, first interval open."""
    job = store.add_job(make_job(interruptible=True, pause_mode="stop", **kw), intervals=SPLIT)
    assert job.id is not None
    assert store.apply_plan(Plan(entries={job.id: PlanEntry(job.id, "local", SPLIT[0][0], 1.0, 2.0,
                                                             100.0, "split:2", SPLIT)}), T0) == 1
    assert store.transition(job.id, JobState.RUNNING, expected={JobState.PLANNED})
    run = store.add_run(Run(job_id=job.id, site="local", executor="local", started_at=T0 + H))
    assert run.id is not None
    store.open_run_interval(run.id, T0 + H, "123:/x.exit.json")
    return job.id, run.id


def test_pause_settings_and_transfer_figures_round_trip(store: JobStore) -> None:
    job = store.add_job(make_job(interruptible=True, pause_mode="checkpoint", pause_signal="SIGUSR2",
                                 pause_grace_s=45.0, transfer_delay_s=1800, transfer_energy_j=1.8e6))
    got = store.get_job(job.id)  # type: ignore[arg-type]
    assert (got.pause_mode, got.pause_signal, got.pause_grace_s) == ("checkpoint", "SIGUSR2", 45.0)
    assert (got.transfer_delay_s, got.transfer_energy_j) == (1800, 1.8e6)
    assert store.list_jobs()[0] == got


def test_planned_intervals_are_stored_with_the_job(store: JobStore) -> None:
    one = store.add_job(make_job(), intervals=SPLIT)
    plain = store.add_job(make_job())
    ids = store.add_jobs([make_job(name="a"), make_job(name="b")], intervals=[(), SPLIT])
    got = store.planned_intervals([one.id, plain.id, *ids])  # type: ignore[list-item]
    assert got == {one.id: list(SPLIT), ids[1]: list(SPLIT)}
    assert store.planned_intervals([]) == {}


def test_a_plan_replaces_the_intervals_of_the_jobs_it_writes(store: JobStore) -> None:
    a = store.add_job(make_job(name="a"), intervals=SPLIT).id
    b = store.add_job(make_job(name="b")).id
    assert a is not None and b is not None
    other = ((T0 + 6 * H, T0 + 7 * H), (T0 + 8 * H, T0 + 9 * H), (T0 + 9 * H + timedelta(minutes=1), T0 + 10 * H))
    plan = Plan(entries={
        a: PlanEntry(a, "local", T0 + 3 * H, 1.0, 2.0, 100.0, "contiguous", ((T0 + 3 * H, T0 + 4 * H),)),
        b: PlanEntry(b, "local", other[0][0], 1.0, 2.0, 100.0, "split:3", other),
    })
    assert store.apply_plan(plan, T0) == 2
    assert store.planned_intervals([a, b]) == {b: list(other)}  # a runs in one go now
    # a running job is never re-planned: its intervals stay
    assert store.transition(b, JobState.RUNNING, expected={JobState.PLANNED})
    plan = Plan(entries={b: PlanEntry(b, "local", T0, 1.0, 2.0, 100.0, "split:2", SPLIT)})
    assert store.apply_plan(plan, T0) == 0
    assert store.planned_intervals([b]) == {b: list(other)}


def test_pause_and_resume_are_conditional_and_keep_the_run_intervals(store: JobStore) -> None:
    job_id, run_id = _running(store)
    attempts = store.get_job(job_id).attempts
    assert store.pause_run(job_id, run_id, T0 + 2 * H, how="paused: SIGSTOP")
    assert not store.pause_run(job_id, run_id, T0 + 2 * H, how="again")
    job = store.get_job(job_id)
    assert job.state is JobState.SUSPENDED and job.planned_start == T0 + H  # its plan's start
    (iv,) = store.run_intervals(run_id)
    assert (iv.start, iv.end, iv.how, iv.handle) == (T0 + H, T0 + 2 * H, "paused: SIGSTOP", "123:/x.exit.json")
    # not before the next interval (4 H), but at once when none is left ahead
    assert not store.resume_run(job_id, run_id, T0 + 3 * H)
    assert store.resume_run(job_id, run_id, T0 + 4 * H, handle="456:/x.exit.json")
    assert not store.resume_run(job_id, run_id, T0 + 4 * H)
    job = store.get_job(job_id)
    assert job.state is JobState.RUNNING and job.attempts == attempts  # not a new attempt
    store.set_interval_handle(run_id, "789:/x.exit.json")
    run = store.get_run(run_id)
    run.finished_at, run.exit_code, run.state = T0 + 5 * H, 0, JobState.SUCCEEDED
    assert store.close_run(run)
    ivs = store.run_intervals(run_id)
    assert [(i.start, i.end, i.how) for i in ivs] == [
        (T0 + H, T0 + 2 * H, "paused: SIGSTOP"), (T0 + 4 * H, T0 + 5 * H, "exit 0")]
    assert ivs[1].handle == "789:/x.exit.json"


def test_a_checkpointing_pause_leaves_the_interval_open_until_the_exit(store: JobStore) -> None:
    job_id, run_id = _running(store)
    assert store.pause_run(job_id, run_id, T0 + 2 * H, how=None)
    assert store.run_intervals(run_id)[0].end is None
    assert store.close_run_interval(run_id, T0 + 2 * H + timedelta(seconds=30), "checkpointed: exit 0")
    assert not store.close_run_interval(run_id, T0 + 3 * H, "twice")
    assert store.run_intervals(run_id)[0].how == "checkpointed: exit 0"


def test_a_cancel_wins_against_a_pause_or_a_resume(store: JobStore) -> None:
    job_id, run_id = _running(store)
    assert store.transition(job_id, JobState.CANCELLED, expected={JobState.RUNNING})
    assert not store.pause_run(job_id, run_id, T0 + 2 * H, how="paused")
    assert store.run_intervals(run_id)[0].end is None  # untouched
    job_id, run_id = _running(store, name="second")
    assert store.pause_run(job_id, run_id, T0 + 2 * H, how="paused")
    assert store.transition(job_id, JobState.CANCELLED, expected={JobState.SUSPENDED})
    assert not store.resume_run(job_id, run_id, T0 + 4 * H)
    assert len(store.run_intervals(run_id)) == 1


def test_one_resume_wins_among_threads(store: JobStore) -> None:
    job_id, run_id = _running(store)
    assert store.pause_run(job_id, run_id, T0 + 2 * H, how="paused")
    wins: list[bool] = []
    barrier = threading.Barrier(6)

    def go() -> None:
        barrier.wait()
        wins.append(store.resume_run(job_id, run_id, T0 + 4 * H))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wins.count(True) == 1
    assert len(store.run_intervals(run_id)) == 2


def test_a_suspended_job_is_replanned_only_while_suspended(store: JobStore) -> None:
    job_id, run_id = _running(store)
    later = ((T0 + 6 * H, T0 + 7 * H),)
    assert not store.replan_suspended(job_id, later, T0 + 2 * H)  # still running
    assert store.pause_run(job_id, run_id, T0 + 2 * H, how="paused")
    assert store.replan_suspended(job_id, later, T0 + 2 * H, note="moved")
    assert store.get_job(job_id).note == "moved"
    assert store.planned_intervals([job_id]) == {job_id: list(later)}
    assert not store.resume_run(job_id, run_id, T0 + 4 * H)  # the old resumption is gone
    assert store.resume_run(job_id, run_id, T0 + 6 * H + timedelta(minutes=5))  # under way


def test_a_paused_job_with_no_interval_ahead_may_resume_at_once(store: JobStore) -> None:
    job_id, run_id = _running(store)
    assert store.pause_run(job_id, run_id, T0 + 2 * H, how="paused")
    assert store.resume_run(job_id, run_id, T0 + 6 * H)  # both intervals are past


def test_a_resumption_is_due_from_an_intervals_first_instant(store: JobStore) -> None:
    job_id, run_id = _running(store)
    assert store.pause_run(job_id, run_id, T0 + 2 * H, how="paused")
    assert not store.resume_run(job_id, run_id, SPLIT[1][0] - timedelta(microseconds=1))
    assert store.resume_run(job_id, run_id, SPLIT[1][0])  # [start, end): under way
    job_id, run_id = _running(store, name="second")
    assert store.pause_run(job_id, run_id, T0 + 2 * H, how="paused")
    assert store.resume_run(job_id, run_id, SPLIT[1][1])  # the last one has ended: none ahead
