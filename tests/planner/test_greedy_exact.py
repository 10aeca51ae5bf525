"""The greedy capacity search is exact per job: hypothesis against a per-second search.

With the joint branch-and-bound off, the planner places jobs one by one (higher priority,
then earlier latest start, then longer, then lower id) and gives each the lowest-emission
start, over every whole second of its window on every allowed site, that fits the GPU and
CPU left by the jobs placed before it. Ties go to the earliest start, then the home site.
Forecast breakpoints, durations and bounds here are deliberately off the slot grid, so the
candidate starts (breakpoints, slot boundaries, each minus the duration) are all exercised.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Job, Site
from scheduler.planner import PlanOptions, expected_grams, plan
from tests.planner.helpers import T0, T0_S, PerSecond, forecast, job, site

SLOT = 600
OPTS = PlanOptions(slot_s=SLOT, exact_max_jobs=0)


@st.composite
def instance(draw: st.DrawFn) -> tuple:
    n_sites = draw(st.integers(1, 3))
    zones = ["Z1", "Z2"][: min(n_sites, 2)]
    fcs = {}
    for z in zones:
        n = draw(st.integers(2, 8))
        fcs[z] = forecast(
            z, draw(st.lists(st.integers(10_000, 500_000), min_size=n, max_size=n)),
            draw(st.lists(st.integers(60, 1500), min_size=n, max_size=n)),
            draw(st.integers(-600, 600)),
        )
    sites = {
        f"s{i}": site(
            f"s{i}", zones[i % len(zones)], gpus=draw(st.integers(0, 3)),
            cpus=draw(st.sampled_from([0, 0, 2, 4])), pue=draw(st.sampled_from([1.0, 1.25])),
            delay_s=draw(st.sampled_from([0, 0, 300, SLOT])),
            energy_j=draw(st.sampled_from([0.0, 2e6])),
        )
        for i in range(n_sites)
    }
    jobs = []
    for jid in range(1, draw(st.integers(1, 6)) + 1):
        e = draw(st.integers(0, 1800))
        home = draw(st.sampled_from(sorted(sites)))
        allowed = draw(st.lists(st.sampled_from(sorted(sites)), max_size=3))
        jobs.append(job(
            jid, draw(st.integers(1, 2400)), e, e + draw(st.integers(0, 3600)), site=home,
            allowed=[home, *allowed] if allowed else [], gpus=draw(st.integers(0, 2)),
            cpus=draw(st.integers(0, 2)), power_w=draw(st.sampled_from([500.0, 1500.0])),
            priority=draw(st.integers(0, 1)),
        ))
    return fcs, sites, jobs


def _slots(start: int, end: int) -> range:
    return range(start // SLOT, -(-end // SLOT))


def _fits(use: Counter, s: Site, j: Job, start: int) -> bool:
    for k in _slots(start, start + j.duration_s):
        g, c = use[(s.name, k, "g")], use[(s.name, k, "c")]
        if s.gpus > 0 and j.gpus > 0 and g + j.gpus > s.gpus:
            return False
        if s.cpus > 0 and j.cpus > 0 and c + j.cpus > s.cpus:
            return False
    return True


def _best(j: Job, fcs: dict, sites: dict[str, Site], use: Counter) -> tuple[str, int] | None:
    """(site, start) by least grams, then earliest start, then home first; None: no fit."""
    home = sites[j.site]
    fill_home = round(fcs[home.zone].mean_g_per_kwh() * 1000) / 1000
    latest = int(j.latest_start.timestamp())
    found: tuple[float, int, int, str] | None = None
    for rank, name in enumerate(dict.fromkeys([j.site, *j.allowed_sites])):
        s = sites[name]
        moved = rank > 0
        e = int(j.earliest_start.timestamp()) + (s.transfer_delay_s if moved else 0)
        if e > latest and moved:
            continue
        ps = PerSecond(fcs[s.zone], T0_S - 4 * 3600, T0_S + 12 * 3600)
        fit = [(ps.cost(t, j.duration_s), t) for t in range(e, max(e, latest) + 1)
               if _fits(use, s, j, t)]
        if not fit:
            continue
        cost, start = min(fit)  # least integer cost, earliest start
        g = expected_grams(cost, j.power_w, s.pue)
        g += s.transfer_energy_j / 3.6e6 * fill_home if moved else 0.0
        if found is None or (g, start, rank) < found[:3]:
            found = (g, start, rank, name)
    return None if found is None else (found[3], found[1])


@settings(max_examples=150, deadline=None)
@given(instance())
def test_each_job_gets_the_exact_best_fit_given_the_jobs_before_it(case: tuple) -> None:
    fcs, sites, jobs = case
    result = plan(jobs, fcs, sites, T0, OPTS)
    use: Counter = Counter()
    order = sorted(jobs, key=lambda j: (-j.priority, j.latest_start, -j.duration_s, j.id))
    for j in order:
        want = _best(j, fcs, sites, use)
        if want is None:  # nothing fits in its window: overdue or refused
            if j.id not in result.entries:
                assert j.id in result.unplanned
                continue
            entry = result.entries[j.id]
            assert entry.reason.startswith("overdue")
            name, start = entry.site, int(entry.start.timestamp())
        else:
            entry = result.entries[j.id]
            name, start = entry.site, int(entry.start.timestamp())
            assert (name, start) == want, (j, entry)
        for k in _slots(start, start + j.duration_s):
            use[(name, k, "g")] += j.gpus
            use[(name, k, "c")] += j.cpus
