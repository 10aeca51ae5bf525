"""The error model by lead (intensity.uncertainty) against plain references."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intensity.model import IntensityPoint, Kind
from intensity.uncertainty import (
    MODES,
    adjust,
    adjust_points,
    fit_error_model,
    pairs_from_vintages,
    quantile,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = 3600

ratio_lists = st.lists(st.floats(0.2, 5.0, allow_nan=False), min_size=1, max_size=40)


@given(ratio_lists, st.floats(0.0, 1.0))
def test_quantile_is_numpys_linear_quantile(values: list[float], q: float) -> None:
    assert quantile(sorted(values), q) == pytest.approx(float(np.quantile(values, q)), rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 30 * H), st.floats(1.0, 900.0), st.floats(0.0, 900.0)),
                min_size=0, max_size=120))
def test_each_bucket_holds_the_mean_and_quantiles_of_its_own_ratios(
    pairs: list[tuple[float, float, float]],
) -> None:
    edges_h = (0, 3, 12)
    model = fit_error_model(pairs, edges_h=edges_h, quantiles=(0.25, 0.5, 0.9), min_pairs=5)
    groups: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for lead, f, a in pairs:
        groups[0 if lead < 3 * H else 1 if lead < 12 * H else 2].append(a / f)
    enough = [i for i, rs in groups.items() if len(rs) >= 5]
    if not enough:
        assert model.buckets == ()
        return
    assert [b.lo_s for b in model.buckets] == [0, 3 * H, 12 * H]
    for i, b in enumerate(model.buckets):
        # own statistics when the bucket has enough pairs, else the nearest one's (nearer lead first)
        src = i if i in enough else min(enough, key=lambda k: (abs(k - i), k))
        rs = groups[src]
        assert b.n == len(rs)
        assert b.mean_ratio == pytest.approx(float(np.mean(rs)))
        for q, r in b.quantiles:
            assert r == pytest.approx(float(np.quantile(rs, q)))


def test_pairs_out_of_range_are_left_out_and_a_thin_bucket_borrows_from_the_nearest() -> None:
    pairs = [(-60.0, 100.0, 50.0), (600.0, 0.0, 50.0), (600.0, 100.0, float("nan"))]
    pairs += [(30.0 * 60, 100.0, 110.0)] * 8 + [(5.0 * H, 100.0, 80.0)] * 8 + [(2.5 * H, 100.0, 10.0)] * 2
    model = fit_error_model(pairs, edges_h=(0, 1, 2, 4), min_pairs=8)
    # buckets [0,1) and [4,...) have enough; [1,2) is next to the first, [2,4) to the last
    assert [round(b.mean_ratio, 6) for b in model.buckets] == [1.1, 1.1, 0.8, 0.8]
    assert model.factor(-600, "bias") == pytest.approx(1.1)  # before the first edge: the first bucket
    assert model.factor(50 * H, "bias") == pytest.approx(0.8)  # past the last edge: the last bucket


def test_modes_scale_the_point_forecast_by_the_ratio_at_its_lead() -> None:
    near = [(0.5 * H, 100.0, 100.0 * r) for r in (0.9, 1.0, 1.0, 1.1) * 3]
    far = [(10.0 * H, 100.0, 100.0 * r) for r in (0.9, 1.2, 1.4, 1.5) * 3]
    model = fit_error_model(near + far, edges_h=(0, 6), min_pairs=4)
    values, leads = [200.0, 200.0], [1800.0, 12 * H]
    assert adjust(values, leads, model, "off") == values
    assert adjust(values, leads, None, "quantile") == values
    assert adjust(values, leads, model, "bias") == pytest.approx(
        [200 * np.mean([0.9, 1.0, 1.0, 1.1]), 200 * np.mean([0.9, 1.2, 1.4, 1.5])])
    q75 = [float(np.quantile([0.9, 1.0, 1.0, 1.1] * 3, 0.75)), float(np.quantile([0.9, 1.2, 1.4, 1.5] * 3, 0.75))]
    assert adjust(values, leads, model, "quantile", q=0.75) == pytest.approx([200 * q75[0], 200 * q75[1]])
    with pytest.raises(ValueError, match="off, bias, quantile"):
        adjust(values, leads, model, "pessimistic")
    assert set(MODES) == {"off", "bias", "quantile"}


def _pt(start: datetime, value: float, kind: Kind, issued: datetime | None = None) -> IntensityPoint:
    return IntensityPoint("Z", start, start + timedelta(hours=1), value, kind, "p", issued_at=issued)


def test_pairs_come_only_from_what_was_known_at_the_decision() -> None:
    acts = [_pt(T0 + timedelta(hours=i), 100.0 + i, Kind.ACTUAL) for i in range(10)]
    fcs = [_pt(T0 + timedelta(hours=i), 90.0, Kind.FORECAST, issued=T0) for i in range(10)]
    late = [_pt(T0 + timedelta(hours=6), 50.0, Kind.FORECAST, issued=T0 + timedelta(hours=5))]
    got = pairs_from_vintages(fcs + late, acts, known_by=T0 + timedelta(hours=4))
    # hours 0-3 had ended by 04:00; the vintage issued at 05:00 and later hours are unseen
    assert got == [(i * 3600.0, 90.0, 100.0 + i) for i in range(4)]


def test_adjust_points_keeps_actuals_and_the_rest_of_each_point() -> None:
    model = fit_error_model([(0.0, 100.0, 120.0)] * 8, edges_h=(0,), min_pairs=8)
    now = T0
    pts = [_pt(T0 - timedelta(hours=1), 70.0, Kind.ACTUAL), _pt(T0, 100.0, Kind.FORECAST, issued=T0)]
    out = adjust_points(pts, model, "bias", now)
    assert out[0] == pts[0]
    assert out[1].intensity_g_per_kwh == pytest.approx(120.0)
    assert (out[1].start, out[1].issued_at, out[1].provider) == (pts[1].start, T0, "p")
    assert adjust_points(pts, fit_error_model([]), "bias", now) == pts


def test_the_back_test_forecasts_each_past_origin_from_the_history_before_it() -> None:
    from intensity.accuracy import persistence
    from intensity.uncertainty import backtest_pairs, with_uncertainty

    hist = [_pt(T0 + timedelta(hours=i), 100.0 + (i % 24), Kind.ACTUAL) for i in range(10 * 24)]
    now = T0 + timedelta(days=10)
    calls: list[tuple[datetime, datetime]] = []

    def fc(zone: str, history: Sequence[IntensityPoint], at: datetime, horizon_s: int) -> list[IntensityPoint]:
        calls.append((at, max(p.end for p in history)))
        return persistence(zone, history, at, horizon_s)

    pairs = backtest_pairs(fc, "Z", hist, now, days=3, every_s=12 * H, horizon_s=6 * H)
    origins = [c[0] for c in calls]
    assert origins == [now - timedelta(hours=6 + 72 - 12 * k) for k in range(7)]
    assert all(seen_to <= at for at, seen_to in calls)
    by_hour = {p.start: p.intensity_g_per_kwh for p in hist}
    expected = [(lead * 3600.0, by_hour[o - timedelta(hours=1)], by_hour[o + timedelta(hours=lead)])
                for o in origins for lead in range(6)]
    assert sorted(pairs) == sorted(expected)
    # the wrapper: off is the forecaster itself; bias scales its points by that model
    assert with_uncertainty(fc, "off") is fc
    plan = with_uncertainty(fc, "bias")("Z", hist, now, 6 * H)
    model = fit_error_model(backtest_pairs(fc, "Z", hist, now))
    assert plan == adjust_points(persistence("Z", hist, now, 6 * H), model, "bias", now)
