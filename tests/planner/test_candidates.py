"""The planner's candidate starts and its range-minimum index, against plain definitions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Site
from scheduler.planner import Profile, _Candidates, _candidates, _Ledger
from tests.planner.helpers import T0_S, PerSecond, forecast


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-5, 5) | st.integers(-10**12, 10**12), min_size=1, max_size=300),
       st.lists(st.tuples(st.integers(0, 299), st.integers(1, 300)), min_size=1, max_size=12))
def test_least_is_the_earliest_minimum(costs: list[int], ranges: list[tuple[int, int]]) -> None:
    cands = _Candidates(list(range(len(costs))), costs)
    for a, b in ranges * 2:  # queried often enough to switch to the block index
        i, j = min(a, len(costs) - 1), min(max(b, a + 1), len(costs))
        if i >= j:
            continue
        sub = costs[i:j]
        assert cands.least(i, j) == (min(sub), i + sub.index(min(sub)))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 600_000), min_size=0, max_size=8),
    st.lists(st.integers(1, 900), min_size=8, max_size=8),
    st.integers(-600, 600),
    st.integers(1, 2000),
    st.one_of(st.none(), st.tuples(st.integers(-3000, 6000), st.integers(0, 6000))),
)
def test_candidates_are_boundaries_and_boundaries_minus_the_duration(
    values: list[int], lengths: list[int], offset: int, d: int, window: tuple[int, int] | None,
) -> None:
    fc = forecast("Z", values, lengths[: len(values)], offset)
    prof = Profile(fc)
    ps = PerSecond(fc, T0_S - 12_000, T0_S + 20_000) if values else None
    lo, hi = (None, None) if window is None else (T0_S + window[0], T0_S + window[0] + window[1])
    got = _candidates(prof, d, lo, hi)
    want = sorted(t for t in set(prof.b) | {t - d for t in prof.b}
                  if lo is None or hi is None or lo <= t <= hi)
    assert got.times == want
    assert ps is not None or not want
    if ps is not None:
        assert got.costs == [ps.cost(t, d) for t in want]
        spread = [T0_S + k * 97 - 3000 for k in range(160)]  # off every boundary too
        assert prof.costs(spread, d) == [ps.cost(t, d) for t in spread]


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
    """The bytes a search reads (capped at 255, over-commitment included) say exactly which
    slots cannot take a job, as the per-slot counts do."""
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
        assert list(got) == [int(w) for w in want]
        if n:
            assert led.free(a * slot, (a + n) * slot, g, c) == (not any(want))
