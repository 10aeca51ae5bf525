"""intensity.forecast: exact window arithmetic (against brute force) and the local forecaster."""

from __future__ import annotations

import itertools
import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intensity import forecast as fc
from intensity.forecast import (
    best_window,
    infer_resolution_s,
    local_forecast,
    regular_series,
    resample,
    window_mean_g_per_kwh,
)
from intensity.model import IntensityPoint, Kind, Source

T0 = datetime(2023, 1, 2, tzinfo=UTC)  # a Monday


def pt(start_min: int, end_min: int, value: float, zone: str = "Z") -> IntensityPoint:
    return IntensityPoint(
        zone=zone, start=T0 + timedelta(minutes=start_min), end=T0 + timedelta(minutes=end_min),
        intensity_g_per_kwh=value, kind=Kind.ACTUAL, provider="test",
    )


def hourly(values: list[float], start: datetime = T0, step_s: int = 3600) -> list[IntensityPoint]:
    return [
        IntensityPoint(
            zone="Z", start=start + timedelta(seconds=i * step_s),
            end=start + timedelta(seconds=(i + 1) * step_s), intensity_g_per_kwh=v,
            kind=Kind.ACTUAL, provider="test",
        )
        for i, v in enumerate(values)
    ]


# -- brute force on a minute grid ---------------------------------------------------------


def minute_values(points: list[IntensityPoint], lo: int, hi: int) -> list[float]:
    """The series minute by minute over [lo, hi) (uncovered minutes at the series mean)."""
    total = sum(p.duration_s for p in points)
    mean = sum(p.intensity_g_per_kwh * p.duration_s for p in points) / total
    out = []
    for m in range(lo, hi):
        t = T0 + timedelta(minutes=m)
        v = next((p.intensity_g_per_kwh for p in points if p.start <= t < p.end), mean)
        out.append(v)
    return out


@st.composite
def series(draw: st.DrawFn) -> list[IntensityPoint]:
    """Non-overlapping points on a minute grid, with random lengths and gaps."""
    n = draw(st.integers(1, 12))
    t = draw(st.integers(0, 30))
    pts = []
    for _ in range(n):
        t += draw(st.sampled_from([0, 0, 0, 5, 17]))  # mostly contiguous, sometimes a gap
        length = draw(st.integers(1, 90))
        value = draw(st.floats(0, 900, allow_nan=False, allow_infinity=False))
        pts.append(pt(t, t + length, value))
        t += length
    return pts


@settings(max_examples=100, deadline=None)
@given(pts=series(), a=st.integers(-20, 700), length=st.integers(1, 400))
def test_window_mean_matches_minute_brute_force(pts: list[IntensityPoint], a: int, length: int) -> None:
    got = window_mean_g_per_kwh(pts, T0 + timedelta(minutes=a), T0 + timedelta(minutes=a + length))
    vals = minute_values(pts, a, a + length)
    assert got == pytest.approx(sum(vals) / len(vals), rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(pts=series(), lo=st.integers(-10, 200), room=st.integers(1, 600), d=st.integers(1, 300))
def test_best_window_is_the_brute_force_optimum(
    pts: list[IntensityPoint], lo: int, room: int, d: int
) -> None:
    """The window is chosen as the planner chooses (intensities to 0.001 g/kWh, exact
    integer sums, the earliest of equal ones); its mean is the unrounded one."""
    d = min(d, room)
    earliest, latest_end = T0 + timedelta(minutes=lo), T0 + timedelta(minutes=lo + room)
    w = best_window(pts, d * 60, earliest, latest_end)
    # every boundary is on the minute grid, so the optimum is at a whole-minute start
    vals = minute_values(pts, lo, lo + room)
    milli = [round(v * 1000) for v in vals]
    sums = [sum(milli[s : s + d]) for s in range(room - d + 1)]
    first_best = sums.index(min(sums))
    assert w.start == earliest + timedelta(minutes=first_best)
    assert w.mean_g_per_kwh == pytest.approx(sum(vals[first_best : first_best + d]) / d, rel=1e-9, abs=1e-9)
    assert earliest <= w.start and w.end <= latest_end
    assert w.duration_s == d * 60
    # never more than the rounding above the least unrounded mean
    assert w.mean_g_per_kwh <= min(sum(vals[s : s + d]) / d for s in range(room - d + 1)) + 1e-3


def test_best_window_weights_partial_overlaps_exactly() -> None:
    # 0..60 min at 100, 60..120 at 0, 120..180 at 100: a 90-min job fits best at 15..105
    # or anywhere with 60 min of zeros inside; the earliest optimum starts at 0h15? No:
    # any start s in [30, 60] covers all 60 zero minutes; mean = 30*100/90 = 33.3
    pts = [pt(0, 60, 100), pt(60, 120, 0), pt(120, 180, 100)]
    w = best_window(pts, 90 * 60, T0, T0 + timedelta(minutes=180))
    assert w.start == T0 + timedelta(minutes=30)
    assert w.mean_g_per_kwh == pytest.approx(100 / 3)


def test_best_window_refuses_a_job_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        best_window([pt(0, 60, 1)], 7200, T0, T0 + timedelta(hours=1))


def test_window_mean_counts_gaps_at_the_series_mean() -> None:
    pts = [pt(0, 60, 100), pt(120, 180, 300)]  # mean 200, gap 60..120
    assert window_mean_g_per_kwh(pts, T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)) == 150


def test_resample_to_a_coarser_grid_is_time_weighted() -> None:
    pts = [pt(0, 30, 100), pt(30, 60, 200), pt(60, 90, 300)]
    out = resample(pts, 3600)
    assert [p.intensity_g_per_kwh for p in out] == [150, 300]  # second hour half covered
    assert out[0].start == T0 and out[0].end == T0 + timedelta(hours=1)


def test_resample_leaves_a_gap_as_a_gap() -> None:
    out = resample([pt(0, 60, 1), pt(180, 240, 2)], 3600)
    assert [p.start for p in out] == [T0, T0 + timedelta(hours=3)]


def test_regular_series_fills_gaps_from_the_day_before() -> None:
    values = [float(h) for h in range(24)] * 2
    pts = hourly(values)
    del pts[30]  # 06:00 on day two
    t0, y = regular_series(pts, 3600)
    assert t0 == T0.timestamp() and len(y) == 48 and y[30] == 6.0


def test_infer_resolution() -> None:
    assert infer_resolution_s(hourly([1, 2, 3], step_s=1800)) == 1800


# -- the local forecaster ------------------------------------------------------------------


def synthetic(days: int, step_s: int = 3600, noise: float = 0.0) -> list[float]:
    """A daily curve, lower at weekends, with a slow multi-day level swing."""
    out = []
    per_day = 86400 // step_s
    for i in range(days * per_day):
        h = (i % per_day) * 24 / per_day
        day = i // per_day
        weekend = 0.8 if day % 7 in (5, 6) else 1.0
        level = 300 + 60 * math.sin(2 * math.pi * day / 9)
        wiggle = noise * math.sin(i * 12.9898) * 43758.5453 % 1 if noise else 0.0
        out.append(weekend * level + 80 * math.sin(2 * math.pi * (h - 6) / 24) + wiggle)
    return out


def test_local_forecast_contract() -> None:
    pts = hourly(synthetic(28))
    now = pts[-1].end + timedelta(minutes=20)  # mid-hour
    out = local_forecast("Z", pts, now, 48 * 3600)
    assert out[0].start <= now < out[0].end
    assert out[-1].end >= now + timedelta(hours=48)
    assert all(b.start == a.end for a, b in itertools.pairwise(out))
    assert all(p.duration_s == 3600 for p in out)
    assert {(p.kind, p.source, p.provider, p.issued_at) for p in out} == {
        (Kind.FORECAST, Source.LOCAL, "local", now)
    }
    assert all(p.intensity_g_per_kwh >= 0 for p in out)


def test_local_forecast_keeps_the_history_resolution() -> None:
    pts = hourly(synthetic(20, step_s=1800), step_s=1800)
    out = local_forecast("Z", pts, pts[-1].end, 6 * 3600)
    assert len(out) == 12 and all(p.duration_s == 1800 for p in out)


def test_local_forecast_never_reads_the_future() -> None:
    values = synthetic(35)
    pts = hourly(values)
    now = pts[28 * 24].start
    past_only = local_forecast("Z", pts[: 28 * 24], now, 24 * 3600)
    fc.clear_cache()
    tampered = pts[: 28 * 24] + hourly([9999.0] * 24 * 7, start=now)
    with_future = local_forecast("Z", tampered, now, 24 * 3600)
    assert [p.intensity_g_per_kwh for p in past_only] == [p.intensity_g_per_kwh for p in with_future]


def test_local_forecast_beats_persistence_on_a_seasonal_series() -> None:
    values = synthetic(60, noise=20.0)
    pts = hourly(values)
    errs_model, errs_persist = [], []
    for day in range(40, 58, 3):
        n = day * 24 + 7
        out = local_forecast("Z", pts[n - 28 * 24 : n], pts[n].start, 25 * 3600)
        target = out[24]  # 24 h ahead
        actual = values[n + 24]
        errs_model.append(abs(target.intensity_g_per_kwh - actual))
        errs_persist.append(abs(values[n - 1] - actual))
    assert sum(errs_model) < 0.85 * sum(errs_persist)


def test_local_forecast_short_history_falls_back_to_the_profile() -> None:
    values = [100.0 + (50 if 8 <= h < 20 else 0) for h in range(24)] * 3
    pts = hourly(values)
    out = local_forecast("Z", pts, pts[-1].end, 24 * 3600)
    # a clean repeating day: the forecast reproduces it closely after the first hours
    assert out[12].intensity_g_per_kwh == pytest.approx(150, abs=1)
    assert out[23].intensity_g_per_kwh == pytest.approx(100, abs=1)


def test_local_forecast_with_less_than_a_day_reverts_toward_the_mean() -> None:
    pts = hourly([100.0, 100.0, 100.0, 400.0])
    out = local_forecast("Z", pts, pts[-1].end, 48 * 3600)
    assert out[0].intensity_g_per_kwh > out[-1].intensity_g_per_kwh
    assert out[-1].intensity_g_per_kwh == pytest.approx(175, abs=5)


def test_local_forecast_without_history_is_empty() -> None:
    assert local_forecast("Z", [], T0, 3600) == []
    assert local_forecast("Z", hourly([1.0, 2.0]), T0, 3600) == []  # all of it after now


def test_local_forecast_is_fast_when_warm_and_fit_once_per_block() -> None:
    pts = hourly(synthetic(28))
    fc.clear_cache()
    now = pts[-1].end
    t = time.perf_counter()
    first = local_forecast("Z", pts, now, 48 * 3600)
    cold_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(10):
        again = local_forecast("Z", pts, now, 48 * 3600)
    warm_s = (time.perf_counter() - t) / 10
    assert again == first
    assert len(fc._coef_cache) == 1
    assert cold_s < 2.0 and warm_s < 0.1


def test_weights_defined_for_every_lead_past_the_last_anchor() -> None:
    """Regression: leads between 71 and 72 h fell off the anchor table (IndexError)."""
    from intensity.forecast import _ANCHOR_H, _weights_for

    anchors = [[float(i)] * fc._N_FEATURES for i in range(len(_ANCHOR_H))]
    for tenth in range(0, 2000):
        lead = tenth / 10.0
        w = _weights_for(anchors, lead)
        assert len(w) == fc._N_FEATURES


def test_local_forecast_learns_the_weekend_from_months_of_history() -> None:
    """The weekday terms: from Friday midnight, Saturday is forecast at its own (lower)
    level, not at Friday's and not at the seven-day profile's."""
    values = synthetic(120, noise=10.0)
    pts = hourly(values)
    n = 110 * 24  # day 110 is a Saturday (T0 is a Monday)
    assert (T0 + timedelta(hours=n)).weekday() == 5
    out = local_forecast("Z", pts[:n], pts[n].start, 24 * 3600)
    actual = values[n : n + 24]
    model = sum(abs(p.intensity_g_per_kwh - a) for p, a in zip(out, actual, strict=True)) / 24
    friday = sum(abs(values[n - 24 + h] - a) for h, a in enumerate(actual)) / 24
    profile = sum(
        abs(sum(values[n + h - 24 * d] for d in range(1, 8)) / 7 - a) for h, a in enumerate(actual)
    ) / 24
    assert model < 0.35 * friday and model < 0.5 * profile, (model, friday, profile)


def test_planning_curve_is_the_profile_shape_at_the_smoothed_level() -> None:
    from intensity.forecast import _level_on_profile

    profile = [100.0 + 50 * math.sin(i / 3) for i in range(30)]
    # a constant deviation passes through exactly: the profile's shape, moved
    assert _level_on_profile([p + 30 for p in profile], profile, 6) == pytest.approx(
        [p + 30 for p in profile])
    # one hour's deviation is spread over the hours within the window, never amplified
    spike = [p + (60.0 if i == 10 else 0.0) for i, p in enumerate(profile)]
    out = _level_on_profile(spike, profile, 6)
    moved = [o - p for o, p in zip(out, profile, strict=True)]
    assert [i for i, m in enumerate(moved) if abs(m) > 1e-9] == list(range(5, 17))
    assert moved[10] == pytest.approx(60 / 12) and max(moved) <= 60 / 11 + 1e-9


def test_planning_forecast_ranks_hours_by_the_profile_and_follows_a_level_shift() -> None:
    from intensity.forecast import planning_forecast

    values = synthetic(120, noise=10.0)
    n = 100 * 24
    shifted = values[:n - 36] + [v + 120 for v in values[n - 36 : n]]  # a dirty regime now
    pts = hourly(shifted)
    now = pts[-1].end
    plan = planning_forecast("Z", pts, now, 24 * 3600)
    point = local_forecast("Z", pts, now, 24 * 3600)
    profile = [sum(shifted[n + h - 24 * d] for d in range(1, 8)) / 7 for h in range(24)]
    level = [p.intensity_g_per_kwh - q for p, q in zip(plan, profile, strict=True)]
    assert min(level) > 20  # the regime raises the whole day, not only the next hours
    assert max(level) - min(level) < 0.5 * (max(profile) - min(profile))  # shape kept
    assert [p.start for p in plan] == [p.start for p in point]
