"""Interruptible jobs: split into runs on a min-chunk grid with at most N pauses."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.planner import PlanOptions, Profile, plan, split_plan
from tests.planner.helpers import T0, T0_S, PerSecond, forecast, grams, holds, job, secs, site

STEP = 1800


def runs_of(idx: tuple[int, ...]) -> int:
    return 1 + sum(1 for a, b in itertools.pairwise(idx) if b != a + 1)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 500_000), min_size=3, max_size=9),
    st.integers(2, 4),
    st.one_of(st.none(), st.integers(0, 2)),
    st.integers(0, STEP - 1),
)
def test_split_plan_matches_brute_force(values: list[int], n: int, max_pauses: int | None, offset: int) -> None:
    fc = forecast("Z", values, [STEP] * len(values))
    prof = Profile(fc)
    earliest = T0_S + offset  # the grid starts at the next step boundary
    finish_by = T0_S + STEP * len(values)
    res = split_plan(prof, n * STEP, earliest, finish_by, step_s=STEP, max_pauses=max_pauses)
    slots = len(values) - (1 if offset else 0)
    first = 1 if offset else 0
    options = [
        sum(values[first + i] * STEP for i in idx)
        for idx in itertools.combinations(range(slots), n)
        if max_pauses is None or runs_of(idx) <= max_pauses + 1
    ]
    if slots < n:
        assert res is None
        return
    assert res is not None
    cost, intervals = res
    assert cost == min(options)
    assert sum(b - a for a, b in intervals) == n * STEP
    assert max_pauses is None or len(intervals) <= max_pauses + 1
    assert all(b - a >= STEP for a, b in intervals)
    assert intervals[0][0] >= earliest and intervals[-1][1] <= finish_by


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 500_000), min_size=3, max_size=9),
    st.lists(st.tuples(st.integers(-3 * STEP, 12 * STEP), st.integers(STEP, 8 * STEP),
                       st.integers(601, 4 * STEP)), min_size=2, max_size=8),
    st.sampled_from([600, STEP]),
)
def test_a_shared_profile_splits_like_a_fresh_one(
    values: list[int], asks: list[tuple[int, int, int]], step: int,
) -> None:
    """The step costs a profile keeps (and widens) between splits change no answer."""
    fc = forecast("Z", values, [STEP] * len(values), offset_s=-STEP)
    shared = Profile(fc)
    for e, width, d in asks:
        a, b = T0_S + e, T0_S + e + width
        got = split_plan(shared, d, a, b, step_s=step, max_pauses=2)
        assert got == split_plan(Profile(fc), d, a, b, step_s=step, max_pauses=2)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 500_000), min_size=4, max_size=10),
    st.integers(1, 3),
    st.integers(0, 2),
    st.integers(1, 3),
)
def test_planned_splits_keep_every_rule(values: list[int], n: int, pauses: int, gpus: int) -> None:
    fc = forecast("Z", values, [STEP] * len(values))
    horizon = STEP * len(values)
    sites = {"a": site("a", "Z", gpus=3)}
    jobs = [
        job(i, n * STEP, 0, horizon - n * STEP, gpus=gpus, interruptible=True) for i in (1, 2, 3)
    ]
    opts = PlanOptions(slot_s=STEP, min_chunk_s=STEP, max_pauses=pauses)
    res = plan(jobs, {"Z": fc}, sites, T0, opts)
    use: dict[int, int] = {}
    ps = PerSecond(fc, T0_S - 3600, T0_S + horizon + 86400)
    for j in jobs:
        if j.id not in res.entries:
            continue
        e = res.entries[j.id]
        iv = secs(e.intervals)
        assert sum(b - a for a, b in iv) == j.duration_s
        assert len(iv) <= pauses + 1
        assert all(b - a >= STEP for a, b in iv)
        assert all(a2 >= b1 for (_, b1), (a2, _) in itertools.pairwise(iv))
        assert (e.start >= T0 and e.intervals[-1][1] <= j.deadline_at) or e.reason.startswith("overdue")
        assert abs(e.expected_g - grams(sum(ps.cost(a, b - a) for a, b in iv), j.power_w)) < 1e-9
        # stop mode (the default) keeps the GPUs through the pauses: the whole hull holds them
        for k in holds([(iv[0][0], iv[-1][1])], STEP):
            use[k] = use.get(k, 0) + j.gpus
    assert all(u <= 3 for u in use.values())


def _gap_case(mode: str | None) -> dict[int, list[tuple[int, int]]]:
    """One GPU; an interruptible GPU job whose best split leaves a clean-enough gap, and a
    one-hour GPU job that would like that gap."""
    import dataclasses

    fc = forecast("Z", [100_000, 500_000, 100_000, 900_000, 900_000, 900_000], [3600] * 6)
    a = dataclasses.replace(job(1, 2 * 3600, 0, 3600, gpus=1, interruptible=True, priority=1),
                            pause_mode=mode)
    b = job(2, 3600, 0, 3 * 3600, gpus=1)
    res = plan([a, b], {"Z": fc}, {"a": site("a", "Z", gpus=1)}, T0,
               PlanOptions(slot_s=STEP, min_chunk_s=3600, max_pauses=1))
    return {i: [(x - T0_S, y - T0_S) for x, y in secs(e.intervals)] for i, e in res.entries.items()}


def test_a_stop_mode_job_keeps_its_gpus_through_its_pauses() -> None:
    # checkpoint mode gives the GPU back between intervals: the other job runs in the gap
    got = _gap_case("checkpoint")
    assert got[1] == [(0, 3600), (7200, 10800)] and got[2] == [(3600, 7200)]
    # stop mode freezes the job with its GPU memory: nothing else may use the GPU in the
    # gap, so the other job waits for the end of the split job's last interval
    got = _gap_case("stop")
    assert got[1] == [(0, 3600), (7200, 10800)] and got[2] == [(10800, 14400)]


def test_split_skips_the_dirty_hours_and_beats_one_run() -> None:
    fc = forecast("Z", [100_000, 100_000, 900_000, 900_000, 100_000, 100_000], [3600] * 6)
    j = job(1, 4 * 3600, 0, 2 * 3600, site="a", interruptible=True)
    sites = {"a": site("a", "Z")}
    entry = plan([j], {"Z": fc}, sites, T0, PlanOptions(min_chunk_s=3600, max_pauses=1)).entries[1]
    assert [(a - T0, b - T0) for a, b in entry.intervals] == [
        (timedelta(0), timedelta(hours=2)), (timedelta(hours=4), timedelta(hours=6)),
    ]
    assert entry.reason == "split:2"
    whole = plan([job(1, 4 * 3600, 0, 2 * 3600, site="a")], {"Z": fc}, sites, T0).entries[1]
    assert entry.expected_g < whole.expected_g


def test_no_pause_allowed_means_one_run() -> None:
    fc = forecast("Z", [100_000, 900_000, 100_000, 900_000], [3600] * 4)
    j = job(1, 2 * 3600, 0, 2 * 3600, site="a", interruptible=True)
    entry = plan([j], {"Z": fc}, {"a": site("a", "Z")}, T0, PlanOptions(max_pauses=0)).entries[1]
    assert len(entry.intervals) == 1
