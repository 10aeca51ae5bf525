"""Planner and simulation speed (issues 2 and 5).

Run with ``python -m pytest tests/benchmarks/test_bench_planner.py --benchmark-enable``;
without ``--benchmark-enable`` each benchmark runs once on a smaller instance, as a test.

* (a) 10,000 pending jobs, one site, a 48 h forecast at 5-minute resolution: at most 1 s.
* (b) 10,000 jobs across 10 sites (5 zones) with GPU capacity, each allowed on its home
  site and two others (30 min transfer delay), 10% interruptible: at most 2 s. Capacity
  is sized so that it binds for many jobs (about 40% leave their unconstrained optimum).
* (c) ``simulate`` of one year of hourly data with 5,000 jobs (1-8 h, 24 h deadlines),
  run-now + carbon-aware + oracle: at most 60 s. The carbon-aware planner sees the
  perfect forecast here (planner and engine cost); the local forecaster's own cost is in
  ``bench_forecaster.py``.

Durations are whole quarter-hours (users write ``3h``, ``90m``): the planner memoises its
candidate costs per (zone, duration).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from intensity.model import Forecast, IntensityPoint, Kind
from scheduler.model import Job, Site
from scheduler.planner import PlanOptions, plan
from scheduler.simulate import TraceIndex, compare, generate_workload

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _forecast(zone: str, n: int, step_s: int, seed: int) -> Forecast:
    rng = random.Random(seed)
    base = rng.uniform(100, 400)
    per_day = 86400 / step_s
    pts = [
        IntensityPoint(
            zone, NOW + timedelta(seconds=i * step_s), NOW + timedelta(seconds=(i + 1) * step_s),
            max(5.0, base + 120 * math.sin(2 * math.pi * (i / per_day + rng.random() * 0.02))
                + rng.uniform(-25, 25)),
            Kind.FORECAST, "bench",
        )
        for i in range(n)
    ]
    return Forecast(zone, tuple(pts))


def _jobs(n: int, sites: list[str], seed: int, *, gpus: bool, relocate: bool) -> list[Job]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        d = rng.randrange(1800, 8 * 3600 + 1, 900)
        e = NOW + timedelta(seconds=rng.randrange(0, 4 * 3600, 60))
        latest = e + timedelta(seconds=rng.randrange(3600, 24 * 3600, 60))
        home = rng.choice(sites)
        allowed = [home, *rng.sample(sites, 2)] if relocate else []
        out.append(Job(
            name=f"j{i}", argv=["x"], duration_s=d, zone="Z0", submitted_at=NOW, earliest_start=e,
            latest_start=latest, deadline_at=latest + timedelta(seconds=d), id=i + 1,
            power_w=rng.uniform(100, 2000), gpus=rng.choice([1, 1, 1, 2]) if gpus else 0,
            site=home, allowed_sites=allowed, interruptible=relocate and i % 10 == 0,
            threshold_g_per_kwh=150.0 if not relocate and i % 20 == 0 else None,
        ))
    return out


def _scale(benchmark: object, full: int, small: int) -> int:
    return small if getattr(benchmark, "disabled", True) else full


def test_plan_10k_jobs_one_site(benchmark) -> None:  # type: ignore[no-untyped-def]
    n = _scale(benchmark, 10_000, 1_000)
    fcs = {"Z0": _forecast("Z0", 576, 300, 1)}
    sites = {"local": Site("local", "Z0")}
    jobs = _jobs(n, ["local"], 2, gpus=False, relocate=False)
    result = benchmark.pedantic(plan, args=(jobs, fcs, sites, NOW), rounds=5, iterations=1)
    assert len(result.entries) == n
    assert all(e.expected_g <= e.run_now_g + 1e-9 for e in result.entries.values()
               if e.reason == "min-emissions")


def test_plan_10k_jobs_ten_sites_with_capacity(benchmark) -> None:  # type: ignore[no-untyped-def]
    n = _scale(benchmark, 10_000, 1_000)
    zones = [f"Z{i}" for i in range(5)]
    fcs = {z: _forecast(z, 576, 300, 10 + i) for i, z in enumerate(zones)}
    gpus = 400 * n // 10_000
    sites = {f"s{i}": Site(f"s{i}", zones[i % 5], gpus=gpus, pue=1.1 + 0.02 * i,
                           transfer_delay_s=1800, transfer_energy_j=0.2 * 3.6e6) for i in range(10)}
    jobs = _jobs(n, sorted(sites), 3, gpus=True, relocate=True)
    opts = PlanOptions(slot_s=300)
    result = benchmark.pedantic(plan, args=(jobs, fcs, sites, NOW, opts), rounds=3, iterations=1)
    assert len(result.entries) == n
    use: dict[tuple[str, int], int] = {}
    by_id = {j.id: j for j in jobs}
    for e in result.entries.values():
        for a, b in e.intervals:
            for k in range(int(a.timestamp()) // 300, -(-int(b.timestamp()) // 300)):
                use[(e.site, k)] = use.get((e.site, k), 0) + by_id[e.job_id].gpus
    assert max(use.values()) <= gpus
    displaced = sum(":capacity" in e.reason for e in result.entries.values())
    assert displaced > n // 10  # capacity really binds
    late = sum(e.intervals[-1][1] > by_id[e.job_id].deadline_at for e in result.entries.values())
    assert late <= n // 100


def _year_trace() -> list[IntensityPoint]:
    rng = random.Random(7)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    level = 300.0
    pts = []
    for h in range(365 * 24):
        level = min(600.0, max(50.0, level + rng.gauss(0, 15)))
        v = max(10.0, level + 100 * math.sin(2 * math.pi * (h % 24) / 24) + rng.gauss(0, 20))
        t = start + timedelta(hours=h)
        pts.append(IntensityPoint("YEAR", t, t + timedelta(hours=1), v, Kind.ACTUAL, "bench"))
    return pts


def test_simulate_a_year_with_5000_jobs(benchmark) -> None:  # type: ignore[no-untyped-def]
    n = _scale(benchmark, 5_000, 300)
    pts = _year_trace()
    idx = {"YEAR": TraceIndex(pts)}
    sites = {"site": Site("site", "YEAR", gpus=16)}
    wl = generate_workload(n, ["site"], pts[0].start + timedelta(days=28), pts[-1].end, seed=1,
                           gpus=1, interruptible_share=0.3)

    def run() -> object:
        return compare(wl, sites, idx, forecast="perfect", options=PlanOptions(slot_s=900), profile=False)

    c = benchmark.pedantic(run, rounds=1, iterations=1)
    s = c.summary()
    assert s["jobs"] == n
    assert s["carbon_aware_g"] == pytest.approx(s["oracle_g"])
    assert s["carbon_aware_g"] < s["run_now_g"]
