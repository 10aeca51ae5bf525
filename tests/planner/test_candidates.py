"""Planner internals against plain definitions: candidate starts and costs, the vectorised
best start against the one-by-one reference, the ledger's blocked slots against its counts,
and plans against one forecast object that answer like plans against a fresh copy."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from intensity.model import Forecast
from scheduler.model import Site
from scheduler.planner import (
    PlanOptions,
    Profile,
    _Candidates,
    _candidates,
    _Ledger,
    best_start,
    best_starts,
    plan,
)
from tests.planner.helpers import T0, T0_S, PerSecond, forecast, job


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-5, 5) | st.integers(-10**12, 10**12), min_size=1, max_size=300),
       st.lists(st.tuples(st.integers(0, 299), st.integers(1, 300)), min_size=1, max_size=12))
def test_least_is_the_earliest_minimum(costs: list[int], ranges: list[tuple[int, int]]) -> None:
    cands = _Candidates(np.arange(len(costs)), np.array(costs, dtype=np.int64))
    for a, b in ranges:
        i, j = min(a, len(costs) - 1), min(max(b, a + 1), len(costs))
        if i >= j:
            continue
        sub = costs[i:j]
        assert cands.least(i, j) == (min(sub), i + sub.index(min(sub)))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 600) | st.integers(0, 600_000), min_size=1, max_size=10),
    st.lists(st.integers(1, 3600), min_size=10, max_size=10),
    st.integers(1, 20_000),
    st.lists(st.tuples(st.integers(-8000, 30_000), st.integers(-600, 30_000)), min_size=1, max_size=40),
)
def test_best_starts_for_many_windows_equal_best_start_one_by_one(
    values: list[int], lengths: list[int], d: int, windows: list[tuple[int, int]],
) -> None:
    """The vectorised search (numpy, a group of windows of one duration) names the same
    earliest least start and cost as the plain reference, window by window (ties, windows
    before, across and past the forecast, empty ranges, latest before earliest)."""
    prof = Profile(forecast("Z", values, lengths[: len(values)]))
    es = [T0_S + e for e, _ in windows]
    ls = [T0_S + e + w for e, w in windows]
    starts, costs = best_starts(_candidates(prof, d), prof, d, es, ls)
    want = [best_start(prof, d, e, l_)[:2] for e, l_ in zip(es, ls, strict=True)]
    assert list(zip(starts.tolist(), costs.tolist(), strict=True)) == want


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 600_000), min_size=0, max_size=8),
    st.lists(st.integers(1, 900), min_size=8, max_size=8),
    st.integers(-600, 600),
    st.integers(1, 2000),
)
def test_candidates_are_boundaries_and_boundaries_minus_the_duration(
    values: list[int], lengths: list[int], offset: int, d: int,
) -> None:
    fc = forecast("Z", values, lengths[: len(values)], offset)
    prof = Profile(fc)
    got = _candidates(prof, d)
    want = sorted(set(prof.b) | {t - d for t in prof.b})
    assert got.times.tolist() == want
    if values:
        ps = PerSecond(fc, T0_S - 12_000, T0_S + 20_000)
        assert got.costs.tolist() == [ps.cost(t, d) for t in want]
        spread = [T0_S + k * 97 - 3000 for k in range(160)]  # off every boundary too
        assert prof.costs(spread, d).tolist() == [ps.cost(t, d) for t in spread]
        assert [prof.cost(t, d) for t in spread] == [ps.cost(t, d) for t in spread]


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([0, 3, 200, 300]), st.sampled_from([0, 4, 256, 1000]),
    st.lists(st.tuples(st.integers(0, 40), st.integers(1, 12), st.integers(0, 310),
                       st.integers(0, 300), st.sampled_from([1, 1, -1])), max_size=12),
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 30),
                       st.sampled_from([0, 1, 2, 3, 255, 256]) | st.integers(0, 400),
                       st.integers(0, 4) | st.integers(0, 1100)), min_size=1, max_size=6),
)
def test_ledger_blocked_slots_match_the_counts(
    gpus: int, cpus: int, takes: list[tuple[int, int, int, int, int]],
    asks: list[tuple[int, int, int, int]],
) -> None:
    """The blocked slots a search reads (over-commitment included) say exactly which slots
    cannot take a job, as the per-slot counts do."""
    slot = 300
    led = _Ledger(Site("s", "Z", gpus=gpus, cpus=cpus), slot, 0)
    for k, n, g, c, sign in takes:
        led.take(k * slot, (k + n) * slot, g, c, sign)
    for a, n, g, c in asks:
        got = led.blocked(a, a + n, g, c)
        want = [
            (gpus > 0 and g > 0 and led.gpu_used[k] + g > gpus)
            or (cpus > 0 and c > 0 and led.cpu_used[k] + c > cpus)
            for k in range(a, a + n)
        ]
        assert got.tolist() == want
        if n:
            assert led.free(a * slot, (a + n) * slot, g, c) == (not any(want))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(10_000, 500_000), min_size=2, max_size=10),
    st.lists(st.tuples(st.sampled_from([600, 1500, 3600]), st.integers(-3600, 7200),
                       st.integers(0, 14_400), st.booleans()), min_size=1, max_size=8),
    st.lists(st.integers(-7200, 10_800), min_size=2, max_size=4),
    st.sampled_from([0, 1, 2]),
)
def test_plans_sharing_a_forecast_plan_like_fresh_ones(
    values: list[int], jobs: list[tuple[int, int, int, bool]], nows: list[int], gpus: int,
) -> None:
    """A plan against a forecast already planned with (other jobs, another ``now``) answers
    like one against a fresh copy of it: nothing is kept between plans."""
    fc = forecast("Z", values, [1800] * len(values), offset_s=-1800)
    sites = {"a": Site("a", "Z", gpus=gpus)}
    for k, now_off in enumerate(nows):
        now = T0 + timedelta(seconds=now_off)
        js = [job(i + 1, d, e, e + w, gpus=1, interruptible=split)
              for i, (d, e, w, split) in enumerate(jobs[k % len(jobs):] + jobs[:k % len(jobs)])]
        shared = plan(js, {"Z": fc}, sites, now, PlanOptions(slot_s=900, min_chunk_s=900))
        fresh_fc = Forecast("Z", tuple(fc.points))
        fresh = plan(js, {"Z": fresh_fc}, sites, now, PlanOptions(slot_s=900, min_chunk_s=900))
        assert shared == fresh


def test_a_plan_of_a_few_jobs_without_managed_capacity_does_not_import_numpy() -> None:
    """numpy is imported on first use: planning a submit on a quiet queue (what the CLI's
    `submit` does) stays in plain Python; a queue with a group of windows large enough
    loads it."""
    probe = """
import sys
from scheduler.model import Site
from scheduler.planner import VECTOR_MIN, plan
from tests.planner.helpers import T0, forecast, job
fc = forecast("Z", [100_000, 50_000, 70_000] * 10, [1800] * 30)
sites = {"local": Site("local", "Z")}
few = plan([job(i + 1, 3600, 0, 20_000) for i in range(5)], {"Z": fc}, sites, T0)
loaded = "numpy" in sys.modules
many = plan([job(i + 1, 3600, 0, 20_000) for i in range(VECTOR_MIN)], {"Z": fc}, sites, T0)
assert {e.start for e in few.entries.values()} == {e.start for e in many.entries.values()}
print(loaded, "numpy" in sys.modules)
"""
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True,
                       timeout=60, env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]
