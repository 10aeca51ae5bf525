"""The planner's range-minimum index answers like ``min`` and ``list.index``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.planner import _Candidates


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
