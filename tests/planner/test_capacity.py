"""The whole queue with capacity: hypothesis against a brute-force joint optimum."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Job, JobState, Site
from scheduler.planner import PlanOptions, plan
from tests.planner.helpers import (
    T0,
    T0_S,
    PerSecond,
    forecast,
    grams,
    holds,
    isclose,
    job,
    secs,
    site,
)

SLOT = 900
OPTS = PlanOptions(slot_s=SLOT)


@st.composite
def instance(draw: st.DrawFn, max_jobs: int = 3, max_sites: int = 2) -> tuple:
    n_sites = draw(st.integers(1, max_sites))
    zones = ["Z1", "Z2"][:n_sites]
    fcs = {
        z: forecast(z, draw(st.lists(st.integers(10_000, 500_000), min_size=8, max_size=8)), [SLOT] * 8)
        for z in zones
    }
    sites = {
        f"s{i}": site(
            f"s{i}", zones[i], gpus=draw(st.integers(1, 3)), pue=draw(st.sampled_from([1.0, 1.25])),
            delay_s=draw(st.sampled_from([0, 0, SLOT])), energy_j=draw(st.sampled_from([0.0, 2e6])),
        )
        for i in range(n_sites)
    }
    jobs = []
    for jid in range(1, draw(st.integers(2, max_jobs)) + 1):
        d = SLOT * draw(st.integers(1, 3))
        e = SLOT * draw(st.integers(0, 3))
        w = SLOT * draw(st.integers(0, 4))
        home = draw(st.sampled_from(sorted(sites)))
        allowed = sorted(sites) if draw(st.booleans()) else []
        jobs.append(job(jid, d, e, e + w, site=home, allowed=allowed,
                        gpus=draw(st.integers(1, 2)), power_w=draw(st.sampled_from([500.0, 1500.0])),
                        priority=draw(st.integers(0, 1))))
    return fcs, sites, jobs


def options_of(j: Job, fcs: dict, sites: dict[str, Site], step: int) -> list[tuple[float, str, int]]:
    """Every (grams, site, start) the job could take, starts on a ``step`` grid."""
    out = []
    home = sites[j.site]
    fill_home = round(fcs[home.zone].mean_g_per_kwh() * 1000) / 1000
    for name in dict.fromkeys([j.site, *j.allowed_sites]):
        s = sites[name]
        moved = name != j.site
        e = int(j.earliest_start.timestamp()) + (s.transfer_delay_s if moved else 0)
        latest = int(j.latest_start.timestamp())
        ps = PerSecond(fcs[s.zone], T0_S - 4 * 3600, T0_S + 12 * 3600)
        extra = s.transfer_energy_j / 3.6e6 * fill_home if moved else 0.0
        for start in range(e, latest + 1, step):
            out.append((grams(ps.cost(start, j.duration_s), j.power_w, s.pue) + extra, name, start))
    return out


def brute_force(jobs: list[Job], fcs: dict, sites: dict[str, Site], step: int) -> float | None:
    """Least total grams over every joint placement that respects capacity (None: none)."""
    opts = [sorted(options_of(j, fcs, sites, step)) for j in jobs]
    use: Counter[tuple[str, int]] = Counter()
    best = [float("inf")]

    def dfs(i: int, acc: float) -> None:
        if acc >= best[0]:
            return
        if i == len(jobs):
            best[0] = acc
            return
        j = jobs[i]
        for g, name, start in opts[i]:
            slots = holds([(start, start + j.duration_s)], SLOT)
            if all(use[(name, k)] + j.gpus <= sites[name].gpus for k in slots):
                for k in slots:
                    use[(name, k)] += j.gpus
                dfs(i + 1, acc + g)
                for k in slots:
                    use[(name, k)] -= j.gpus

    dfs(0, 0.0)
    return None if best[0] == float("inf") else best[0]


def check_capacity(jobs: list[Job], entries: dict, sites: dict[str, Site]) -> None:
    use: Counter[tuple[str, int]] = Counter()
    for j in jobs:
        e = entries[j.id]
        for k in holds(secs(e.intervals), SLOT):
            use[(e.site, k)] += j.gpus
    for (name, _), n in use.items():
        assert n <= sites[name].gpus, f"site {name} over-committed: {n} > {sites[name].gpus}"


@settings(max_examples=60, deadline=None)
@given(instance())
def test_capacity_deadlines_and_near_optimum(case: tuple) -> None:
    fcs, sites, jobs = case
    result = plan(jobs, fcs, sites, T0, OPTS)
    never = {j.id for j in jobs
             if all(j.gpus > sites[s].gpus for s in dict.fromkeys([j.site, *j.allowed_sites]))}
    assert set(result.unplanned) == never  # such a job is refused at submit
    assert set(result.entries) == {j.id for j in jobs} - never, "every accepted job is planned"
    jobs = [j for j in jobs if j.id not in never]
    check_capacity(jobs, result.entries, sites)
    best = brute_force(jobs, fcs, sites, SLOT // 3)
    if best is None:
        return  # no plan meets every deadline; the planner still places everyone (overdue)
    for j in jobs:
        e = result.entries[j.id]
        assert e.intervals[-1][1] <= j.deadline_at, "no deadline violation when one is avoidable"
        assert e.start >= j.earliest_start
    total = sum(result.entries[j.id].expected_g for j in jobs)
    assert total >= best - 1e-9
    assert total <= best * 1.02 + 1e-9


@settings(max_examples=40, deadline=None)
@given(instance())
def test_exact_single_job_optimum_when_capacity_does_not_bind(case: tuple) -> None:
    fcs, sites, jobs = case
    jobs = [j for j in jobs if j.id in plan([j], fcs, sites, T0, OPTS).entries]
    alone = {j.id: plan([j], fcs, sites, T0, OPTS).entries[j.id] for j in jobs}
    use: Counter[tuple[str, int]] = Counter()
    for j in jobs:
        for k in holds(secs(alone[j.id].intervals), SLOT):
            use[(alone[j.id].site, k)] += j.gpus
    binds = any(n > sites[name].gpus for (name, _), n in use.items())
    together = plan(jobs, fcs, sites, T0, OPTS).entries
    if not binds:
        assert together == alone
    unmanaged = {n: Site(s.name, s.zone, pue=s.pue, transfer_delay_s=s.transfer_delay_s,
                         transfer_energy_j=s.transfer_energy_j) for n, s in sites.items()}
    free = plan(jobs, fcs, unmanaged, T0, OPTS).entries
    for j in jobs:
        one = plan([j], fcs, unmanaged, T0, OPTS).entries[j.id]
        assert free[j.id] == one


def test_capacity_spreads_jobs_instead_of_piling_into_the_cleanest_hour() -> None:
    fcs = {"Z": forecast("Z", [400_000, 50_000, 300_000, 200_000], [3600] * 4)}
    sites = {"a": site("a", "Z", gpus=2)}
    jobs = [job(i, 3600, 0, 3 * 3600, gpus=1, zone="Z") for i in range(1, 5)]
    entries = plan(jobs, fcs, sites, T0, PlanOptions(slot_s=3600)).entries
    starts = Counter(int((e.start - T0).total_seconds()) // 3600 for e in entries.values())
    assert starts == {1: 2, 3: 2}


def test_higher_priority_and_tighter_deadline_are_protected() -> None:
    fcs = {"Z": forecast("Z", [100_000, 400_000, 500_000], [3600] * 3)}
    sites = {"a": site("a", "Z", gpus=1)}
    low = job(1, 3600, 0, 2 * 3600, gpus=1, priority=0)
    high = job(2, 3600, 0, 2 * 3600, gpus=1, priority=5)
    entries = plan([low, high], fcs, sites, T0, PlanOptions(slot_s=3600, exact_max_jobs=0)).entries
    assert entries[2].start == T0
    assert entries[1].start == T0 + timedelta(hours=1)
    tight = job(3, 3600, 0, 0, gpus=1)  # must start now
    loose = job(4, 3600, 0, 2 * 3600, gpus=1)
    entries = plan([loose, tight], fcs, sites, T0, PlanOptions(slot_s=3600, exact_max_jobs=0)).entries
    assert entries[3].start == T0 and entries[3].intervals[-1][1] <= tight.deadline_at
    assert entries[4].start == T0 + timedelta(hours=1)


def test_running_jobs_hold_capacity_until_their_expected_end() -> None:
    fcs = {"Z": forecast("Z", [100_000, 400_000, 300_000], [3600] * 3)}
    sites = {"a": site("a", "Z", gpus=1)}
    running = job(1, 2 * 3600, 0, 0, gpus=1)
    running.state = JobState.RUNNING
    running.planned_start = T0 - timedelta(minutes=30)
    waiting = job(2, 3600, 0, 2 * 3600, gpus=1)
    entries = plan([running, waiting], fcs, sites, T0, PlanOptions(slot_s=900)).entries
    assert 1 not in entries
    assert entries[2].start >= T0 + timedelta(minutes=90)


def test_a_new_job_cannot_push_out_a_committed_one() -> None:
    fcs = {"Z": forecast("Z", [100_000, 400_000], [3600] * 2)}
    sites = {"a": site("a", "Z", gpus=1)}
    old = job(1, 3600, 0, 0, gpus=1)
    new = job(2, 3600, 0, 0, gpus=1, priority=100)
    res = plan([new, old], fcs, sites, T0,
               PlanOptions(slot_s=900, committed=frozenset({1}), allow_overdue=False))
    assert res.entries[1].start == T0
    assert 2 in res.unplanned and 2 not in res.entries
    assert res.earliest_finish[2] == T0 + timedelta(hours=2)
    assert "earliest finish" in res.unplanned[2]


def test_overdue_when_nothing_fits_and_overdue_allowed() -> None:
    fcs = {"Z": forecast("Z", [100_000, 400_000], [3600] * 2)}
    sites = {"a": site("a", "Z", gpus=1)}
    jobs = [job(1, 3600, 0, 0, gpus=1), job(2, 3600, 0, 0, gpus=1)]
    entries = plan(jobs, fcs, sites, T0, PlanOptions(slot_s=900)).entries
    assert {e.start for e in entries.values()} == {T0, T0 + timedelta(hours=1)}
    assert any(e.reason.startswith("overdue") for e in entries.values())


def test_a_job_bigger_than_every_site_is_refused_when_overdue_is_not_allowed() -> None:
    fcs = {"Z": forecast("Z", [100_000], [3600])}
    sites = {"a": site("a", "Z", gpus=2)}
    res = plan([job(1, 600, 0, 600, gpus=4)], fcs, sites, T0, PlanOptions(allow_overdue=False))
    assert "can ever hold" in res.unplanned[1]
    res = plan([job(1, 600, 0, 600, gpus=4)], fcs, sites, T0)
    assert 1 in res.unplanned and not res.entries


def test_cpu_capacity_is_respected_too() -> None:
    fcs = {"Z": forecast("Z", [100_000, 400_000, 300_000], [3600] * 3)}
    sites = {"a": site("a", "Z", cpus=4)}
    jobs = [job(i, 3600, 0, 2 * 3600, cpus=3) for i in (1, 2)]
    entries = plan(jobs, fcs, sites, T0, PlanOptions(slot_s=3600)).entries
    assert entries[1].start != entries[2].start


def test_hysteresis_keeps_a_current_placement_that_saves_too_little() -> None:
    fcs = {"Z": forecast("Z", [200_000, 195_000, 100_000], [3600] * 3)}
    sites = {"a": site("a", "Z")}
    j = job(1, 3600, 0, 2 * 3600)
    cur = {1: ("a", T0)}
    kept = plan([j], fcs, sites, T0, PlanOptions(hysteresis_pct=60, current=cur)).entries[1]
    assert kept.start == T0 and kept.reason == "kept"
    moved = plan([j], fcs, sites, T0, PlanOptions(hysteresis_pct=10, current=cur)).entries[1]
    assert moved.start == T0 + timedelta(hours=2)
    assert isclose(moved.expected_g, grams(100_000 * 3600, j.power_w))


def test_a_kept_placement_keeps_its_capacity() -> None:
    fcs = {"Z": forecast("Z", [300_000, 295_000, 100_000], [3600] * 3)}
    sites = {"a": site("a", "Z", gpus=1)}
    kept = job(1, 3600, 0, 2 * 3600, gpus=1)
    other = job(2, 3600, 0, 2 * 3600, gpus=1, priority=9)
    # job 1 sits at 01:00 and a move would save less than 90%: it stays there, holding the
    # one GPU, so job 2 goes elsewhere
    opts = PlanOptions(slot_s=3600, current={1: ("a", T0 + timedelta(hours=1))}, hysteresis_pct=90)
    entries = plan([kept, other], fcs, sites, T0, opts).entries
    assert entries[1].reason == "kept" and entries[1].start == T0 + timedelta(hours=1)
    assert entries[2].start != entries[1].start
    check_capacity([kept, other], entries, sites)


def test_a_replan_never_pushes_an_accepted_job_past_its_deadline() -> None:
    """(Queues too big for the joint search.) Greedy order (latest start, then longest
    first) would give the 2 h job the cheap
    hours 01-03 and leave the 1 h job, due at 03:00, nowhere to go. The plan in force
    (1 h job at 01:00, 2 h job at 02:00) fits both: the re-plan keeps it."""
    fcs = {"Z": forecast("Z", [400_000, 100_000, 100_000, 300_000], [3600] * 4)}
    sites = {"a": site("a", "Z", gpus=1)}
    short = job(1, 3600, 3600, 2 * 3600, gpus=1)  # 01:00-03:00
    long = job(2, 2 * 3600, 0, 2 * 3600, gpus=1)  # 00:00-04:00
    greedy = plan([short, long], fcs, sites, T0, PlanOptions(slot_s=900, exact_max_jobs=0))
    assert greedy.entries[2].start == T0 + timedelta(hours=1)  # the greedy choice...
    assert greedy.entries[1].intervals[-1][1] > short.deadline_at  # ...misses, unaccepted
    in_force = {1: ("a", T0 + timedelta(hours=1)), 2: ("a", T0 + timedelta(hours=2))}
    for opts in (PlanOptions(slot_s=900, exact_max_jobs=0, current=in_force),
                 PlanOptions(slot_s=900, exact_max_jobs=0, committed=frozenset({1, 2}), current=in_force)):
        res = plan([short, long], fcs, sites, T0, opts)
        assert res.entries[1].start == T0 + timedelta(hours=1)
        assert res.entries[2].start == T0 + timedelta(hours=2)
        assert all(e.intervals[-1][1] <= j.deadline_at for j, e in
                   ((short, res.entries[1]), (long, res.entries[2])))
        assert res.entries[1].reason.startswith("kept")
    # a new job is planned around the kept ones, not at their expense
    new = job(3, 3600, 0, 3 * 3600, gpus=1)
    res = plan([short, long, new], fcs, sites, T0, PlanOptions(slot_s=900, exact_max_jobs=0, current=in_force))
    assert res.entries[1].start == T0 + timedelta(hours=1)
    assert res.entries[2].start == T0 + timedelta(hours=2)
    assert res.entries[3].start == T0
