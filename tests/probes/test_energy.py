"""The pure arithmetic: counter deltas with wrap-around, trapezoids, shares."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.energy import (
    clamped_increment,
    counter_delta,
    share,
    split_by_weights,
    trapezoid_energy_j,
)


def test_counter_delta_plain_increase() -> None:
    assert counter_delta(1_000.0, 4_500.0, 10_000.0) == 3_500.0


def test_counter_delta_wraps_at_max_range() -> None:
    # 9_000 -> max 10_000 -> 0 -> 500: 1_000 + 500
    assert counter_delta(9_000.0, 500.0, 10_000.0) == 1_500.0


def test_counter_delta_decrease_without_range_is_a_reset_not_negative() -> None:
    assert counter_delta(9_000.0, 500.0) == 0.0


@settings(deadline=None)
@given(
    max_range=st.floats(1.0, 1e12),
    a=st.floats(0.0, 1.0),
    b=st.floats(0.0, 1.0),
)
def test_counter_delta_is_within_one_range(max_range: float, a: float, b: float) -> None:
    prev, cur = a * max_range, b * max_range
    d = counter_delta(prev, cur, max_range)
    assert 0.0 <= d <= max_range
    # either no wrap, or exactly one trip round the counter
    lap = prev + d - cur
    assert lap == pytest.approx(0.0, abs=1e-6 * max_range) or lap == pytest.approx(max_range)


def test_trapezoid_energy_of_a_ramp_and_a_constant() -> None:
    assert trapezoid_energy_j([(0.0, 100.0), (2.0, 100.0)]) == 200.0
    assert trapezoid_energy_j([(0.0, 0.0), (1.0, 100.0), (3.0, 100.0)]) == 50.0 + 200.0


def test_trapezoid_ignores_non_increasing_time_and_short_input() -> None:
    assert trapezoid_energy_j([(1.0, 50.0), (1.0, 70.0), (0.5, 70.0)]) == 0.0
    assert trapezoid_energy_j([(1.0, 50.0)]) == 0.0
    assert trapezoid_energy_j([]) == 0.0


def test_share_is_clamped() -> None:
    assert share(1.0, 4.0) == 0.25
    assert share(5.0, 4.0) == 1.0
    assert share(1.0, 0.0) == 0.0
    assert share(-1.0, 4.0) == 0.0


def test_clamped_increment_and_split() -> None:
    assert clamped_increment(5.0, 3.0) == 0.0
    assert clamped_increment(3.0, 5.0) == 2.0
    assert split_by_weights(10.0, [1.0, 3.0]) == [2.5, 7.5]
    assert split_by_weights(10.0, [0.0, 0.0]) == [5.0, 5.0]
    assert split_by_weights(10.0, []) == []
