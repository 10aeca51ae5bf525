"""One job, no capacity: the plan is the exact earliest optimum over every whole second."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Site
from scheduler.planner import plan
from tests.planner.helpers import T0, T0_S, PerSecond, forecast, grams, isclose, job

SITES = {"a": Site(name="a", zone="Z")}


@st.composite
def instance(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(1, 6))
    values = draw(st.lists(st.integers(0, 600_000), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(1, 400), min_size=n, max_size=n))
    offset = draw(st.integers(-300, 300))
    duration = draw(st.integers(1, 700))
    earliest = draw(st.integers(0, 500))
    width = draw(st.integers(0, 900))
    threshold = draw(st.one_of(st.none(), st.integers(1, 600_000)))
    return values, lengths, offset, duration, earliest, earliest + width, threshold


@settings(max_examples=150, deadline=None)
@given(instance())
def test_single_job_matches_brute_force_over_every_second(case: tuple) -> None:
    values, lengths, offset, d, e, latest, threshold = case
    fc = forecast("Z", values, lengths, offset)
    j = job(1, d, e, latest)
    if threshold is not None:
        j.threshold_g_per_kwh = threshold / 1000
    entry = plan([j], {"Z": fc}, SITES, T0).entries[1]

    ps = PerSecond(fc, T0_S - 2000, T0_S + 4000)
    starts = range(T0_S + e, T0_S + latest + 1)
    costs = [ps.cost(s, d) for s in starts]
    if threshold is not None and any(c < threshold * d for c in costs):
        best_i = next(i for i, c in enumerate(costs) if c < threshold * d)
    else:
        best_i = min(range(len(costs)), key=lambda i: (costs[i], i))  # earliest tie
    assert int(entry.start.timestamp()) == starts[best_i]
    assert isclose(entry.expected_g, grams(costs[best_i], j.power_w))
    assert isclose(entry.run_now_g, grams(costs[0], j.power_w))
    assert len(entry.intervals) == 1
    assert entry.intervals[0][1] == entry.start + (entry.intervals[0][1] - entry.intervals[0][0])


def test_no_forecast_runs_at_earliest() -> None:
    j = job(1, 3600, 60, 7200)
    entry = plan([j], {}, SITES, T0).entries[1]
    assert entry.start == j.earliest_start
    assert entry.reason == "no-forecast"


def test_run_now_ignores_cleaner_later_windows() -> None:
    fc = forecast("Z", [500_000, 10_000], [3600, 3600])
    j = job(1, 3600, 0, 3600)
    j.run_now = True
    entry = plan([j], {"Z": fc}, SITES, T0).entries[1]
    assert entry.start == T0 and entry.reason == "run-now"
