"""The JobStore contract, run against every backend (the plain-Python MemoryStore, in-memory
SQLite, SQLite file, PostgreSQL) through the parametrised ``store`` fixture of
tests/conftest.py.

A test that only one kind of backend can answer says so in its first line (``SQL only``:
processes sharing a database file or server; ``PostgreSQL only``: its column types); the
SQL store's own side doors (files, migrations, a full disk) are tested in test_open.py,
test_disk_full.py and test_lite.py."""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from intensity.model import IntensityPoint, Kind, Signal, Source
from probes.model import Method, Sample
from scheduler.errors import CarbonshiftError, NotFound
from scheduler.model import (
    Event,
    Job,
    JobState,
    Plan,
    PlanEntry,
    Policy,
    Run,
    RunAccounting,
    Site,
    Sweep,
)
from scheduler.storage.base import JobStore
from scheduler.storage.store import SqlStore, open_store

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def make_job(**kw: Any) -> Job:
    values: dict[str, Any] = {
        "name": "train",
        "argv": ["python", "train.py", "--epochs", "3"],
        "duration_s": 3600,
        "zone": "GB",
        "submitted_at": T0,
        "earliest_start": T0,
        "latest_start": T0 + 10 * H,
        "deadline_at": T0 + 11 * H,
    }
    values.update(kw)
    return Job(**values)


def planned(store: JobStore, n: int, start: datetime = T0, **kw: Any) -> list[int]:
    """Add ``n`` jobs and put them in ``planned`` at ``start``."""
    ids = store.add_jobs([make_job(name=f"j{i}", **kw) for i in range(n)])
    plan = Plan(
        entries={
            i: PlanEntry(i, kw.get("site", "local"), start, 1.0, 2.0, 100.0, "test")
            for i in ids
        }
    )
    assert store.apply_plan(plan, T0) == n
    return ids


# -- policies and sites -----------------------------------------------------------------


def test_policy_crud(store: JobStore) -> None:
    p = Policy("overnight", deadline_s=43200, deadline_at=T0, threshold_g_per_kwh=120.5,
               budget_g=900.0, interruptible=True, description="by the morning")
    store.put_policy(p)
    store.put_policy(Policy("asap", run_now=True))
    assert store.get_policy("overnight") == p
    assert [x.name for x in store.list_policies()] == ["asap", "overnight"]
    changed = Policy("overnight", max_delay_s=600)
    store.put_policy(changed)
    assert store.get_policy("overnight") == changed
    store.delete_policy("asap")
    with pytest.raises(NotFound, match="asap"):
        store.get_policy("asap")
    with pytest.raises(NotFound):
        store.delete_policy("asap")
    assert store.list_policies() == [changed]


def test_site_crud(store: JobStore) -> None:
    s = Site("lab", zone="DE", executor="slurm", gpus=8, cpus=64, pue=1.4,
             transfer_delay_s=600, transfer_energy_j=5e5)
    store.put_site(s)
    store.put_site(Site("home", zone="GB"))
    assert store.get_site("lab") == s
    assert [x.name for x in store.list_sites()] == ["home", "lab"]
    store.put_site(Site("lab", zone="FR"))
    assert store.get_site("lab").zone == "FR"
    store.delete_site("lab")
    with pytest.raises(NotFound, match="lab"):
        store.get_site("lab")
    with pytest.raises(NotFound):
        store.delete_site("lab")


# -- jobs ---------------------------------------------------------------------------------


def test_add_and_get_job_round_trips_every_field(store: JobStore) -> None:
    job = make_job(
        cwd="/data/run", env={"SEED": "1", "NAME": "é ünïcode"}, shell=True, power_w=312.5,
        gpus=2, cpus=8, site="lab", allowed_sites=["lab", "home"], owner="ada",
        policy_name="overnight", threshold_g_per_kwh=150.0, budget_g=800.0, run_now=True,
        interruptible=True, priority=3, note="first", plan_source="replay",
        transfer_delay_s=900, transfer_energy_j=2.5e5,
    )
    added = store.add_job(job)
    assert added.id is not None and added.id > 0
    assert added.updated_at is not None and added.updated_at.tzinfo is UTC
    assert job.id is None  # the argument is not modified
    got = store.get_job(added.id)
    assert got == added
    assert got.argv == job.argv and got.env == job.env and got.allowed_sites == ["lab", "home"]
    assert got.state is JobState.PENDING


def test_a_job_and_its_first_event_are_written_together_or_not_at_all(store: JobStore) -> None:
    added = store.add_job(make_job(name="ok"), event=(T0, "submitted", "planned at noon"))
    assert [(e.job_id, e.at, e.kind, e.message) for e in store.events_for_job(added.id or 0)] == [
        (added.id, T0, "submitted", "planned at noon")]
    # the event is refused (NOT NULL) after the job row went in: the job row goes too
    with pytest.raises(CarbonshiftError):
        store.add_job(make_job(name="half"), event=(T0, None, "no kind"))  # type: ignore[arg-type]
    # a naive time is refused before anything is written
    with pytest.raises(CarbonshiftError, match="naive"):
        store.add_job(make_job(name="naive"), event=(T0.replace(tzinfo=None), "submitted", ""))
    assert [j.name for j in store.list_jobs()] == ["ok"]
    store.add_job(make_job(name="after"))  # the store is still usable
    assert [j.name for j in store.list_jobs()] == ["ok", "after"]


def test_every_job_field_has_a_column() -> None:
    import dataclasses

    from scheduler.storage.tables import jobs

    missing = {f.name for f in dataclasses.fields(Job)} - set(jobs.c.keys())
    assert not missing, f"Job fields with no column in jobs (add them and a migration): {missing}"


def test_add_jobs_returns_ids_in_order(store: JobStore) -> None:
    ids = store.add_jobs([make_job(name=f"n{i}") for i in range(5)])
    assert len(ids) == 5 and ids == sorted(ids) and len(set(ids)) == 5
    assert [store.get_job(i).name for i in ids] == [f"n{i}" for i in range(5)]
    assert store.add_jobs([]) == []


def test_missing_rows_raise_not_found(store: JobStore) -> None:
    with pytest.raises(NotFound, match="no job 999"):
        store.get_job(999)
    with pytest.raises(NotFound):
        store.update_job(make_job(id=999))
    with pytest.raises(NotFound):
        store.transition(999, JobState.RUNNING, expected={JobState.PLANNED})
    with pytest.raises(NotFound):
        store.get_run(999)
    with pytest.raises(NotFound):
        store.add_run(Run(job_id=999, site="local", executor="local", started_at=T0))
    with pytest.raises(NotFound):
        store.add_event(Event(job_id=999, at=T0, kind="x", message="y"))
    with pytest.raises(NotFound):
        store.set_accounting(999, RunAccounting(1, 1, 1, 1, "m", "actual", "p"))


def test_list_jobs_filters(store: JobStore) -> None:
    a = store.add_job(make_job(name="a", submitted_at=T0, site="home")).id
    b = store.add_job(make_job(name="b", submitted_at=T0 + H, site="home")).id
    c = store.add_job(make_job(name="c", submitted_at=T0 + 2 * H, site="lab")).id
    assert a and b and c
    store.apply_plan(Plan({b: PlanEntry(b, "lab", T0 + 3 * H, 1, 2, 3, "x")}), T0)
    store.transition(c, JobState.CANCELLED, expected={JobState.PENDING})

    def names(**kw: Any) -> list[str]:
        return [j.name for j in store.list_jobs(**kw)]

    assert names() == ["a", "b", "c"]
    assert names(states=[JobState.PENDING, JobState.PLANNED]) == ["a", "b"]
    assert names(states=[JobState.CANCELLED]) == ["c"]
    assert names(states=[]) == []
    assert names(since=T0 + H) == ["b", "c"]
    assert names(until=T0 + H) == ["a"]  # half-open [since, until)
    assert names(since=T0, until=T0 + 2 * H) == ["a", "b"]
    assert names(sites=["lab"]) == ["b", "c"]  # planned site, else the home site
    assert names(sites=["home"]) == ["a"]
    assert names(limit=2) == ["a", "b"]
    assert names(limit=2, newest=True) == ["b", "c"]  # the newest two, still by id
    assert names(newest=True) == ["a", "b", "c"]


#: name, state, planned start: added out of queue order
QUEUE_SPEC = [
    ("p-late", JobState.PLANNED, T0 + 5 * H), ("pend-1", JobState.PENDING, None),
    ("run-b", JobState.RUNNING, T0 - H), ("p-early", JobState.PLANNED, T0 + H),
    ("done", JobState.SUCCEEDED, T0 - 2 * H), ("susp", JobState.SUSPENDED, T0 - 3 * H),
    ("p-mid", JobState.PLANNED, T0 + 3 * H), ("pend-2", JobState.PENDING, None),
    ("run-a", JobState.RUNNING, T0 - 2 * H), ("p-early-2", JobState.PLANNED, T0 + H),
    ("pend-once-planned", JobState.PENDING, T0 + 2 * H), ("gone", JobState.CANCELLED, None),
]
QUEUE_ORDER = ["run-a", "run-b", "susp", "p-early", "p-early-2", "p-mid", "p-late",
               "pend-once-planned", "pend-1", "pend-2"]
WAITING_AND_RUNNING = [JobState.RUNNING, JobState.SUSPENDED, JobState.PLANNED, JobState.PENDING]


def add_queue(store: JobStore) -> None:
    store.add_jobs([make_job(name=n, state=s, planned_start=p) for n, s, p in QUEUE_SPEC])


def test_queue_view_orders_by_state_then_planned_start_and_counts_in_sql(store: JobStore) -> None:
    add_queue(store)
    jobs, counts = store.queue_view(WAITING_AND_RUNNING)
    assert [j.name for j in jobs] == QUEUE_ORDER
    assert counts == {"running": 2, "suspended": 1, "planned": 4, "pending": 3}
    assert jobs[0] == store.get_job(jobs[0].id or 0)  # whole jobs
    for limit in (1, 3, 4, 8, 10, 50):
        part, part_counts = store.queue_view(WAITING_AND_RUNNING, limit=limit)
        assert [j.name for j in part] == QUEUE_ORDER[:limit] and part_counts == counts
    everything, all_counts = store.queue_view([*WAITING_AND_RUNNING, JobState.SUCCEEDED, JobState.CANCELLED])
    assert [j.name for j in everything] == [*QUEUE_ORDER, "done", "gone"]
    assert sum(all_counts.values()) == len(QUEUE_SPEC)
    assert store.queue_view([JobState.LOST]) == ([], {})


def test_apply_plan_never_touches_running_or_finished_jobs(store: JobStore) -> None:
    pending, waiting, running, done = store.add_jobs([make_job(name=n) for n in "pwrd"])
    store.apply_plan(Plan({waiting: PlanEntry(waiting, "home", T0, 5, 6, 7, "x")}), T0)
    store.apply_plan(Plan({running: PlanEntry(running, "home", T0, 5, 6, 7, "x")}), T0)
    assert store.transition(running, JobState.RUNNING, expected={JobState.PLANNED})
    assert store.transition(done, JobState.SUCCEEDED, expected={JobState.PENDING})
    before_running = store.get_job(running)
    later = T0 + 5 * H
    plan = Plan({i: PlanEntry(i, "lab", later, 10.0, 20.0, 90.0, "cleaner")
                 for i in (pending, waiting, running, done)})
    assert store.apply_plan(plan, T0 + H) == 2
    for i in (pending, waiting):
        job = store.get_job(i)
        assert job.state is JobState.PLANNED
        assert (job.planned_site, job.planned_start, job.expected_g, job.run_now_g) == (
            "lab", later, 10.0, 20.0)
        assert job.updated_at == T0 + H
    assert store.get_job(running) == before_running
    assert store.get_job(done).state is JobState.SUCCEEDED
    assert store.get_job(done).planned_start is None
    assert store.apply_plan(Plan(), T0) == 0


def test_update_job_writes_mutable_fields(store: JobStore) -> None:
    job = store.add_job(make_job())
    job.state = JobState.SUSPENDED
    job.note = "paused for a dirty hour"
    job.attempts = 4
    job.planned_start = T0 + 2 * H
    job.planned_site = "lab"
    job.expected_g = 12.5
    job.plan_source = "cache"
    store.update_job(job)
    got = store.get_job(job.id or 0)
    assert (got.state, got.note, got.attempts, got.planned_start, got.planned_site,
            got.expected_g, got.plan_source) == (
        JobState.SUSPENDED, "paused for a dirty hour", 4, T0 + 2 * H, "lab", 12.5, "cache")


def test_transition_is_a_conditional_claim(store: JobStore) -> None:
    (jid,) = planned(store, 1)
    assert not store.transition(jid, JobState.SUCCEEDED, expected={JobState.RUNNING})
    assert store.get_job(jid).state is JobState.PLANNED
    assert store.transition(jid, JobState.RUNNING, expected={JobState.PLANNED}, note="go")
    job = store.get_job(jid)
    assert (job.state, job.note, job.attempts) == (JobState.RUNNING, "go", 1)
    assert not store.transition(jid, JobState.RUNNING, expected={JobState.PLANNED})
    assert store.transition(jid, JobState.SUCCEEDED, expected=[JobState.RUNNING])
    job = store.get_job(jid)
    assert (job.state, job.note, job.attempts) == (JobState.SUCCEEDED, "go", 1)


def _race_threads(n: int, target: Any) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(k: int) -> None:
        barrier.wait()
        try:
            results[k] = target()
        except BaseException as exc:  # reported by the assertion below
            results[k] = exc

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not [r for r in results if isinstance(r, BaseException)], results
    return results


def test_transition_has_one_winner_among_threads(store: JobStore) -> None:
    for jid in planned(store, 3):
        wins = _race_threads(
            8, lambda jid=jid: store.transition(jid, JobState.RUNNING, expected={JobState.PLANNED})
        )
        assert sorted(wins) == [False] * 7 + [True]
        assert store.get_job(jid).attempts == 1


def test_claim_due(store: JobStore) -> None:
    late = planned(store, 2, start=T0 + 2 * H)
    early = planned(store, 3, start=T0)
    other = planned(store, 1, start=T0, site="lab")
    pending = store.add_job(make_job()).id
    assert store.claim_due(T0 - H) == []
    got = store.claim_due(T0 + H, sites=["local"], limit=2)
    assert [j.id for j in got] == early[:2]
    assert all(j.state is JobState.RUNNING and j.attempts == 1 for j in got)
    got = store.claim_due(T0 + H, limit=10)
    assert sorted(j.id or 0 for j in got) == sorted([early[2], *other])
    assert store.claim_due(T0 + H) == []
    got = store.claim_due(T0 + 2 * H)
    assert [j.id for j in got] == late
    assert store.get_job(pending or 0).state is JobState.PENDING
    assert store.list_jobs(states=[JobState.PLANNED]) == []


def test_claim_due_takes_the_earliest_start_then_the_highest_priority(store: JobStore) -> None:
    low, high, later_high = (store.add_job(make_job(name=n, priority=p)).id or 0
                             for n, p in (("low", 0), ("high", 5), ("later", 9)))
    plan = {low: T0, high: T0, later_high: T0 + H}
    store.apply_plan(Plan({i: PlanEntry(i, "local", at, 1, 2, 3, "x") for i, at in plan.items()}), T0)
    assert [j.id for j in store.claim_due(T0 + H, limit=1)] == [high]
    assert [j.id for j in store.claim_due(T0 + H)] == [low, later_high]


def test_claim_due_threads_never_share_a_job(store: JobStore) -> None:
    ids = planned(store, 24)

    def drain() -> list[int]:
        mine: list[int] = []
        while batch := store.claim_due(T0 + H, limit=3):
            mine.extend(j.id or 0 for j in batch)
        return mine

    claimed = [i for part in _race_threads(4, drain) for i in part]
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def _process_worker(url: str, job_id: int, barrier: Any, out: Any) -> None:
    store = open_store(url)
    try:
        barrier.wait(60)
        won = store.transition(job_id, JobState.RUNNING, expected={JobState.PLANNED})
        barrier.wait(60)
        claimed: list[int] = []
        while batch := store.claim_due(T0 + H, limit=2):
            claimed.extend(j.id or 0 for j in batch)
        out.put((won, claimed))
    except BaseException as exc:
        out.put((exc.__class__.__name__, str(exc)))
    finally:
        store.close()


def test_claims_have_one_winner_among_processes(store: JobStore) -> None:
    """SQL only: processes sharing one database file or server."""
    if not isinstance(store, SqlStore) or store.url == "sqlite://":
        pytest.skip("an in-memory database is private to one process")
    contested, *due = planned(store, 13)
    n = 4
    # forkserver: children start clean (no inherited database handles) but share one
    # interpreter that already imported the store, so they start in milliseconds
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["scheduler.storage.store", "tests.storage.test_contract"])
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(store.url, contested, barrier, out))
             for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(isinstance(r[0], bool) for r in results), results
    assert sorted(r[0] for r in results) == [False] * (n - 1) + [True]
    claimed = [i for _, part in results for i in part]
    assert sorted(claimed) == sorted(due)
    assert store.get_job(contested).attempts == 1


# -- runs and samples -----------------------------------------------------------------------


def test_runs(store: JobStore) -> None:
    jid = store.add_job(make_job()).id or 0
    r1 = store.add_run(Run(job_id=jid, site="home", executor="local", started_at=T0,
                           host="alpha", handle="pid:1"))
    r2 = store.add_run(Run(job_id=jid, site="lab", executor="slurm", started_at=T0 + H,
                           host="beta", lease_until=T0 + 2 * H))
    assert r1.id and r2.id and r1.id != r2.id
    assert store.get_run(r1.id) == r1
    assert [r.id for r in store.runs_for_job(jid)] == [r1.id, r2.id]
    assert {r.id for r in store.open_runs()} == {r1.id, r2.id}
    assert [r.id for r in store.open_runs(host="beta")] == [r2.id]
    r1.finished_at = T0 + 30 * timedelta(minutes=1)
    r1.exit_code = 3
    r1.state = JobState.FAILED
    r1.reason = "exit 3"
    r1.out_path, r1.err_path = "/logs/1.out", "/logs/1.err"
    store.update_run(r1)
    assert store.get_run(r1.id) == r1
    assert [r.id for r in store.open_runs()] == [r2.id]
    store.renew_leases([r2.id], T0 + 5 * H)
    store.renew_leases([], T0)
    assert store.get_run(r2.id).lease_until == T0 + 5 * H
    assert store.get_run(r2.id).accounting is None
    acc = RunAccounting(energy_j=3.6e6, facility_energy_j=5.04e6, emissions_g=210.0,
                        counterfactual_g=300.0, energy_method="nvml_energy_counter",
                        intensity_kind="actual", intensity_provider="ukgrid", pue=1.4,
                        measured_share=0.9, actual_share=0.75)
    store.set_accounting(r2.id, acc)
    got = store.get_run(r2.id).accounting
    assert got == acc and got.saved_g == pytest.approx(90.0)
    assert store.runs_for_job(jid + 100) == []


def test_samples(store: JobStore) -> None:
    jid = store.add_job(make_job()).id or 0
    run_id = store.add_run(Run(job_id=jid, site="home", executor="local", started_at=T0)).id
    assert run_id
    m = timedelta(minutes=1)
    samples = [
        Sample(T0 + m, T0 + 2 * m, "gpu:0", 1500.0, Method.NVML_ENERGY_COUNTER),
        Sample(T0, T0 + m, "cpu", 900.5, Method.CPU_TIME_ESTIMATE, estimated=True,
               note="cpu time x 10 W"),
        Sample(T0, T0 + m, "gpu:0", 1400.0, Method.NVML_ENERGY_COUNTER),
    ]
    store.add_samples(run_id, samples)
    store.add_samples(run_id, [])
    got = store.samples_for_run(run_id)
    assert [s.start for s in got] == [T0, T0, T0 + m]
    assert sorted(got, key=lambda s: (s.start, s.device)) == sorted(
        samples, key=lambda s: (s.start, s.device))
    assert got[0].method is Method.CPU_TIME_ESTIMATE and got[0].estimated
    assert store.samples_for_run(run_id + 1) == []
    with pytest.raises(NotFound):
        store.add_samples(run_id + 1, samples[:1])


# -- intensity ------------------------------------------------------------------------------


def point(start: datetime, value: float, kind: Kind = Kind.FORECAST, *,
          issued_at: datetime | None = None, provider: str = "ukgrid", zone: str = "GB",
          signal: Signal = Signal.AVERAGE) -> IntensityPoint:
    return IntensityPoint(zone, start, start + timedelta(minutes=30), value, kind, provider,
                          signal, issued_at, Source.PROVIDER, False)


def test_points_dedup_and_vintages_side_by_side(store: JobStore) -> None:
    hh = timedelta(minutes=30)
    first = [point(T0 + k * hh, 100 + k, issued_at=T0 - H) for k in range(4)]
    assert store.add_points(first) == 4
    assert store.add_points(first) == 0  # same vintage again: skipped
    second = [point(T0 + k * hh, 200 + k, issued_at=T0) for k in range(2)]
    actuals = [point(T0 + k * hh, 150 + k, Kind.ACTUAL) for k in range(2)]
    marginal = [point(T0, 400, signal=Signal.MARGINAL, issued_at=T0)]
    assert store.add_points([*second, *actuals, *marginal, actuals[0]]) == 5
    # actuals have no issued_at: NULL must not defeat the uniqueness
    assert store.add_points(actuals) == 0
    got = store.get_points("GB", T0, T0 + H)
    assert len(got) == 2 + 2 + 2 + 1  # both vintages, the actuals, the marginal: all kept
    assert [(p.start, p.issued_at) for p in got] == sorted(
        [(p.start, p.issued_at) for p in got], key=lambda x: (x[0], x[1] or datetime.min.replace(tzinfo=UTC)))
    assert {p.intensity_g_per_kwh for p in got if p.start == T0} == {100, 200, 150, 400}
    assert [p.intensity_g_per_kwh for p in store.get_points("GB", T0, T0 + H, kind=Kind.ACTUAL)] == [150, 151]
    assert store.get_points("GB", T0, T0 + H, provider="other") == []
    assert store.get_points("FR", T0, T0 + H) == []
    # overlap of [start, end): a point ending exactly at start is out, one starting inside is in
    assert {p.start for p in store.get_points("GB", T0 + hh, T0 + hh + timedelta(seconds=1))} == {T0 + hh}
    fetched = next(p for p in got if p.issued_at == T0 - H)
    assert fetched == first[0]
    assert store.add_points([]) == 0


def test_last_fetch_moves_even_when_nothing_is_new(store: JobStore) -> None:
    assert store.last_fetch("GB", "ukgrid", Kind.FORECAST) is None
    p = [point(T0, 100, issued_at=T0)]
    store.add_points(p)
    first = store.last_fetch("GB", "ukgrid", Kind.FORECAST)
    assert first is not None and first.tzinfo is UTC
    store.add_points(p)
    second = store.last_fetch("GB", "ukgrid", Kind.FORECAST)
    assert second is not None and second >= first
    assert store.last_fetch("GB", "ukgrid", Kind.ACTUAL) is None
    assert store.last_fetch("GB", "other", Kind.FORECAST) is None


def test_provider_failures_are_remembered_per_zone_and_provider(store: JobStore) -> None:
    assert store.provider_failed_at("GB", "ukgrid") is None
    store.note_provider_failure("GB", "ukgrid", T0)
    store.note_provider_failure("GB", "ukgrid", T0 + H)  # the latest failure wins
    got = store.provider_failed_at("GB", "ukgrid")
    assert got == T0 + H and got is not None and got.tzinfo is UTC
    assert store.provider_failed_at("DE", "ukgrid") is None
    assert store.provider_failed_at("GB", "other") is None
    # beside the fetch times, without disturbing them
    assert store.last_fetch("GB", "ukgrid", Kind.FORECAST) is None
    assert store.get_points("GB", T0 - H, T0 + 2 * H) == []


# -- events ---------------------------------------------------------------------------------


def test_events(store: JobStore) -> None:
    a = store.add_job(make_job()).id or 0
    b = store.add_job(make_job()).id or 0
    for k, (jid, kind) in enumerate([(a, "submitted"), (b, "submitted"), (a, "planned"),
                                     (a, "started")]):
        store.add_event(Event(job_id=jid, at=T0 + k * H, kind=kind, message=f"m{k}"))
    evs = store.events_for_job(a)
    assert [e.kind for e in evs] == ["submitted", "planned", "started"]
    assert evs[1].at == T0 + 2 * H and evs[1].message == "m2" and evs[1].id
    everything = store.events_since(0)
    assert len(everything) == 4
    ids = [e.id or 0 for e in everything]
    assert ids == sorted(ids)
    assert [e.kind for e in store.events_since(ids[1], limit=1)] == ["planned"]
    assert store.events_since(ids[-1]) == []
    # one kind for many jobs at once, oldest first per job; jobs without one are absent
    store.add_event(Event(job_id=b, at=T0 + 5 * H, kind="planned", message="m5"))
    store.add_event(Event(job_id=a, at=T0 + 6 * H, kind="planned", message="m6"))
    planned = store.events_of_kind([b, a, a, 999_999], "planned")
    assert {j: [e.message for e in evs] for j, evs in planned.items()} == {a: ["m2", "m6"], b: ["m5"]}
    assert store.events_of_kind([], "planned") == {}


# -- time -----------------------------------------------------------------------------------


def test_datetimes_come_back_aware_utc(store: JobStore) -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2026, 5, 1, 14, 0, 0, 123456, tzinfo=paris)
    jid = store.add_job(make_job(submitted_at=local, earliest_start=local,
                                 latest_start=local + H, deadline_at=None)).id or 0
    job = store.get_job(jid)
    assert job.submitted_at == local and job.submitted_at.tzinfo is UTC
    assert job.submitted_at == datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert job.deadline_at is None
    assert [j.id for j in store.list_jobs(since=local, until=local + timedelta(microseconds=1))] == [jid]


def test_naive_datetimes_are_rejected(store: JobStore) -> None:
    naive = datetime(2026, 5, 1, 12, 0)
    with pytest.raises(ValueError, match="naive") as info:
        store.add_job(make_job(submitted_at=naive))
    assert isinstance(info.value, CarbonshiftError)
    assert store.list_jobs() == []
    with pytest.raises(ValueError, match="naive"):
        store.get_points("GB", naive, naive + H)
    with pytest.raises(ValueError, match="naive"):
        store.claim_due(naive)
    with pytest.raises(ValueError, match="naive"):
        store.add_points([point(T0, 1.0, issued_at=naive)])


# -- long values: no column cuts or refuses a long text (PostgreSQL enforced VARCHAR(n)) ------

LONG = 10_000


def long_text(tag: str) -> str:
    return (tag + "-" + "x" * LONG)[:LONG]


def test_long_names_commands_and_plan_sources_round_trip(store: JobStore) -> None:
    store.put_policy(Policy(long_text("policy"), deadline_s=3600, description=long_text("d")))
    store.put_site(Site(long_text("site"), zone=long_text("zone"), executor=long_text("exec")))
    job = make_job(
        name=long_text("name"), argv=["python", long_text("arg")], cwd="/" + long_text("cwd"),
        zone=long_text("zone"), site=long_text("site"), owner=long_text("owner"),
        policy_name=long_text("policy"), plan_source=long_text("fallback"),
        allowed_sites=[long_text("site")], note=long_text("note"), pause_signal="SIGUSR1",
    )
    added = store.add_job(job, event=(T0, long_text("kind"), long_text("message")))
    assert added.id is not None
    assert store.get_job(added.id) == added
    assert store.get_policy(long_text("policy")).description == long_text("d")
    assert store.get_site(long_text("site")).executor == long_text("exec")
    assert [e.kind for e in store.events_for_job(added.id)] == [long_text("kind")]
    plan = Plan(entries={added.id: PlanEntry(added.id, long_text("planned"), T0, 1.0, 2.0,
                                             100.0, long_text("source"))})
    assert store.apply_plan(plan, T0) == 1
    got = store.get_job(added.id)
    assert got.planned_site == long_text("planned")
    got.plan_source = long_text("source")
    assert store.update_job(got)
    assert store.get_job(added.id).plan_source == long_text("source")


def test_long_handles_hosts_and_provenance_round_trip(store: JobStore) -> None:
    jid = store.add_job(make_job()).id or 0
    run = store.add_run(Run(job_id=jid, site=long_text("site"), executor=long_text("exec"),
                            started_at=T0, host=long_text("host"), handle=long_text("handle"),
                            out_path=long_text("out"), err_path=long_text("err")))
    assert run.id is not None
    assert store.get_run(run.id) == run
    accounting = RunAccounting(1.0, 1.0, 0.5, 0.6, long_text("method"), long_text("kind"),
                               long_text("provider"))
    store.set_accounting(run.id, accounting)
    assert store.get_run(run.id).accounting == accounting
    store.open_run_interval(run.id, T0, handle=long_text("interval"))
    store.set_interval_handle(run.id, long_text("interval2"))
    assert [i.handle for i in store.run_intervals(run.id)] == [long_text("interval2")]
    store.add_samples(run.id, [Sample(T0, T0 + H, long_text("device"), 5.0,
                                      Method.CPU_TIME_ESTIMATE, note=long_text("note"))])
    assert [s.device for s in store.samples_for_run(run.id)] == [long_text("device")]
    lease = store.acquire_lease(long_text("lease"), long_text("holder"), T0, T0 + H)
    assert lease is not None and store.get_lease(long_text("lease")) == lease


def test_long_zones_and_providers_of_intensity_points_round_trip(store: JobStore) -> None:
    zone, provider = long_text("zone"), long_text("provider")
    point = IntensityPoint(zone, T0, T0 + H, 120.0, Kind.FORECAST, provider, Signal.AVERAGE,
                           T0, Source.PROVIDER, False)
    assert store.add_points([point]) == 1
    assert store.get_points(zone, T0, T0 + H) == [point]
    assert store.last_fetch(zone, provider, Kind.FORECAST) is not None
    store.note_provider_failure(zone, provider, T0)
    assert store.provider_failed_at(zone, provider) == T0


def test_a_value_the_database_refuses_is_not_reported_as_unreachable(store: JobStore) -> None:
    """PostgreSQL only: its INTEGER is 32 bits (SQLite and memory keep any integer)."""
    from scheduler.errors import DatabaseUnreachable, StorageError

    if not isinstance(store, SqlStore) or store.dialect != "postgresql":
        pytest.skip("SQLite and memory keep any integer; PostgreSQL's INTEGER is 32 bits")
    with pytest.raises(StorageError) as info:
        store.add_job(make_job(gpus=2**40))
    assert not isinstance(info.value, DatabaseUnreachable)
    message = str(info.value)
    assert "refused a value" in message and "out of range" in message, message
    assert "connection" not in message and "\n" not in message
    assert store.add_job(make_job()).id  # the store is still usable


def test_last_runs_agree_with_runs_for_job_and_totals_with_the_runs(store: JobStore) -> None:
    # the bulk reads history, /metrics and the CodeCarbon export use, against the plain ones
    ids = [store.add_job(make_job()).id or 0 for _ in range(3)]
    runs = {}
    for k, jid in enumerate(ids[:2]):
        for n in range(k + 2):  # job 0: two runs, job 1: three; job 2: none
            runs[jid] = store.add_run(Run(job_id=jid, site=f"s{k}", executor="local",
                                          started_at=T0 + n * H, host="h"))
    last = store.last_runs([*ids, 10_000])
    assert set(last) == set(ids[:2])
    for jid in ids[:2]:
        assert last[jid] == store.runs_for_job(jid)[-1] == runs[jid]
    acc = RunAccounting(energy_j=7.2e6, facility_energy_j=7.2e6, emissions_g=100.0,
                        counterfactual_g=160.0, energy_method="rapl", intensity_kind="actual",
                        intensity_provider="p")
    store.set_accounting(runs[ids[0]].id or 0, acc)
    totals = store.totals()
    assert totals.jobs_by_state.get("pending") == 3
    assert set(totals.sites) == {"s0"}
    s0 = totals.sites["s0"]
    assert (s0.runs, s0.energy_j, s0.emissions_g, s0.counterfactual_g) == (1, 7.2e6, 100.0, 160.0)
    rid = runs[ids[0]].id or 0
    store.add_samples(rid, [Sample(T0, T0 + H, "cpu", 10.0, Method.RAPL),
                            Sample(T0 + H, T0 + 2 * H, "cpu", 5.0, Method.RAPL),
                            Sample(T0, T0 + H, "gpu:0", 1.5, Method.NVML_ENERGY_COUNTER)])
    assert store.device_energy([rid, 99_999]) == {rid: {"cpu": 15.0, "gpu:0": 1.5}, 99_999: {}}


# -- sweeps -----------------------------------------------------------------------------


def test_a_sweep_and_its_trials_are_stored_together(store: JobStore) -> None:
    sweep = Sweep(name="lr-search", size=3, submitted_at=T0, deadline_at=T0 + 11 * H,
                  max_concurrent=2, budget_g=5000.0, owner="ada")
    trials = [make_job(name=f"lr-search[{i}]", array_index=i, sweep_limit=2) for i in range(3)]
    events = [(T0, "submitted", f"trial {i}") for i in range(3)]
    spans = [(), ((T0, T0 + H), (T0 + 2 * H, T0 + 3 * H)), ()]
    stored, jobs = store.add_sweep_with_jobs(sweep, trials, events=events, intervals=spans)
    assert stored.id is not None and stored == dataclasses.replace(sweep, id=stored.id)
    assert store.get_sweep(stored.id) == stored
    assert [j.sweep_id for j in jobs] == [stored.id] * 3
    assert [j.array_index for j in jobs] == [0, 1, 2]
    for j in jobs:
        assert j.id is not None
        back = store.get_job(j.id)
        assert (back.sweep_id, back.array_index, back.sweep_limit) == (stored.id, j.array_index, 2)
        assert [e.message for e in store.events_for_job(j.id)] == [f"trial {j.array_index}"]
    assert store.planned_intervals([j.id or 0 for j in jobs]) == {jobs[1].id: list(spans[1])}
    store.add_job(make_job(name="alone"))
    assert [j.id for j in store.list_jobs(sweep_id=stored.id)] == [j.id for j in jobs]
    assert store.list_jobs(sweep_id=stored.id + 1) == []
    other, _ = store.add_sweep_with_jobs(Sweep(name="b", size=0, submitted_at=T0), [])
    assert [s.id for s in store.list_sweeps()] == [stored.id, other.id]
    assert store.list_sweeps([other.id or 0, 99_999]) == [other]
    with pytest.raises(NotFound, match="s99999"):
        store.get_sweep(99_999)


def test_a_refused_trial_leaves_no_sweep_behind(store: JobStore) -> None:
    bad = make_job(name="bad", submitted_at=datetime(2026, 5, 1, 12))  # naive: refused
    with pytest.raises(CarbonshiftError):
        store.add_sweep_with_jobs(Sweep(name="half", size=2, submitted_at=T0),
                                  [make_job(name="good"), bad])
    assert store.list_sweeps() == []
    assert store.list_jobs() == []


def test_stopping_a_sweep_skips_its_waiting_trials_once(store: JobStore) -> None:
    sweep, jobs = store.add_sweep_with_jobs(
        Sweep(name="s", size=4, submitted_at=T0), [make_job(array_index=i) for i in range(4)])
    assert sweep.id is not None
    ids = [j.id or 0 for j in jobs]
    assert store.transition(ids[0], JobState.RUNNING, expected={JobState.PENDING})
    assert store.transition(ids[1], JobState.SUCCEEDED, expected={JobState.PENDING})
    store.apply_plan(Plan(entries={ids[3]: PlanEntry(ids[3], "local", T0, 1.0, 2.0, 100.0, "t")}), T0)
    # a stop without skipping only records the stop
    assert store.stop_sweep(sweep.id, T0, "sweep budget") == []
    assert store.get_job(ids[2]).state is JobState.PENDING
    skipped = store.stop_sweep(sweep.id, T0 + H, "sweep stopped", skip_note="skipped: sweep stopped")
    assert skipped == [ids[2], ids[3]]
    stopped = store.get_sweep(sweep.id)
    assert (stopped.stopped_at, stopped.stop_reason) == (T0, "sweep budget")  # the first stop's
    states = [store.get_job(i).state for i in ids]
    assert states == [JobState.RUNNING, JobState.SUCCEEDED, JobState.SKIPPED, JobState.SKIPPED]
    assert store.get_job(ids[2]).note == "skipped: sweep stopped"
    assert store.events_for_job(ids[3])[-1].kind == "skipped"
    assert store.stop_sweep(sweep.id, T0, "again", skip_note="x") == []
    assert store.list_jobs([JobState.SKIPPED], sweep_id=sweep.id) == [
        store.get_job(ids[2]), store.get_job(ids[3])]
    assert store.totals().jobs_by_state.get("skipped") == 2
    with pytest.raises(NotFound, match="s77"):
        store.stop_sweep(77, T0, "x")


# -- the store as a whole -----------------------------------------------------------------


def test_admin_reports_on_the_store(store: JobStore) -> None:
    from scheduler.storage.store import HEAD_REVISION

    assert store.revision() == HEAD_REVISION
    steps: list[tuple[int, int, str]] = []
    assert store.upgrade(lambda done, total, rev: steps.append((done, total, rev))) == HEAD_REVISION
    assert steps == []  # nothing to apply
    assert store.integrity_problems() == []
    assert store.file_lost() is None
    assert store.count_jobs_by_state() == {}
    planned(store, 2)
    store.add_job(make_job())
    assert store.count_jobs_by_state() == store.totals().jobs_by_state == {"planned": 2, "pending": 1}


def test_what_callers_hold_is_not_what_is_stored(store: JobStore) -> None:
    """Mutating a job, run or sweep passed in or handed back changes nothing stored."""
    job = make_job(env={"A": "1"}, allowed_sites=["lab"])
    added = store.add_job(job)
    assert added.id is not None
    job.argv.append("--in")
    job.env["B"] = "2"
    job.allowed_sites.append("home")
    added.argv.append("--out")
    added.note = "not written"
    listed = store.list_jobs()[0]
    listed.argv.clear()
    got = store.get_job(added.id)
    assert (got.argv, got.env, got.allowed_sites, got.note) == (
        ["python", "train.py", "--epochs", "3"], {"A": "1"}, ["lab"], "")
    run = store.add_run(Run(job_id=added.id, site="home", executor="local", started_at=T0))
    assert run.id is not None
    run.host = "elsewhere"
    store.get_run(run.id).reason = "not written"
    assert (store.get_run(run.id).host, store.get_run(run.id).reason) == ("", "")
    sweep, trials = store.add_sweep_with_jobs(Sweep(name="s", size=1, submitted_at=T0), [make_job()])
    assert sweep.id is not None
    sweep.stop_reason, trials[0].name = "not written", "renamed"
    assert store.get_sweep(sweep.id).stop_reason == ""
    assert store.get_job(trials[0].id or 0).name == "train"


# -- where the SQL store disagreed with its contract until the memory store showed it
# -- (NOT NULL reported as a missing row, PostgreSQL reusing a given id, naive lease times) --


def test_an_empty_column_is_not_reported_as_a_missing_row(store: JobStore) -> None:
    jid = store.add_job(make_job()).id or 0
    for attempt in (
        lambda: store.add_run(Run(job_id=jid, site=None, executor="local", started_at=T0)),  # type: ignore[arg-type]
        lambda: store.add_event(Event(job_id=jid, at=T0, kind=None, message="m")),  # type: ignore[arg-type]
    ):
        with pytest.raises(CarbonshiftError) as info:
            attempt()
        assert not isinstance(info.value, NotFound), info.value


def test_an_id_given_is_never_given_again(store: JobStore) -> None:
    given = store.add_job(make_job(id=5))
    assert given.id == 5
    others = [store.add_job(make_job()).id for _ in range(5)]
    assert 5 not in others and len(set(others)) == 5


def test_a_naive_lease_time_is_refused(store: JobStore) -> None:
    naive = T0.replace(tzinfo=None)
    assert store.acquire_lease("planner", "a", T0, T0 + H) is not None
    for holder in ("a", "b"):  # a renewal, a takeover
        with pytest.raises(ValueError, match="naive") as info:
            store.acquire_lease("planner", holder, naive, T0 + 2 * H)
        assert isinstance(info.value, CarbonshiftError)
