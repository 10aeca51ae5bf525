"""intensity.accuracy: error by lead from vintages, baselines, rolling origin."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from intensity.accuracy import (
    BASELINES,
    errors_by_lead,
    lead_bucket_s,
    mae,
    mape,
    persistence,
    rolling_origin,
    same_hour_yesterday,
)
from intensity.model import IntensityPoint, Kind, Source

T0 = datetime(2023, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)


def actual(i: int, v: float, step: timedelta = H) -> IntensityPoint:
    return IntensityPoint("Z", T0 + i * step, T0 + (i + 1) * step, v, Kind.ACTUAL, "replay")


def vintage(issued: datetime, start: datetime, v: float, length: timedelta = H) -> IntensityPoint:
    return IntensityPoint("Z", start, start + length, v, Kind.FORECAST, "ukgrid",
                          issued_at=issued, source=Source.PROVIDER)


def test_mae_and_mape() -> None:
    assert mae([110, 90], [100, 100]) == 10
    assert mape([110, 90, 5], [100, 100, 0]) == 10  # the zero actual is left out of MAPE
    assert math.isnan(mae([], []))
    with pytest.raises(ValueError):
        mae([1], [])


def test_lead_buckets_round_to_the_nearest() -> None:
    assert lead_bucket_s(29 * 60, 3600) == 0
    assert lead_bucket_s(59 * 60, 3600) == 3600
    assert lead_bucket_s(89 * 60, 3600) == 3600
    assert lead_bucket_s(-60, 3600) == 0


def test_errors_by_lead_from_two_vintages() -> None:
    acts = [actual(i, 100.0) for i in range(48)]
    issued_a = T0
    issued_b = T0 + 6 * H
    fcs = [vintage(issued_a, T0 + 1 * H, 110), vintage(issued_a, T0 + 6 * H, 80),
           vintage(issued_b, T0 + 7 * H, 95), vintage(issued_b, T0 + 12 * H, 100)]
    res = {e.lead_s: e for e in errors_by_lead(fcs, acts)}
    assert res[3600].n == 2 and res[3600].mae_g_per_kwh == pytest.approx(7.5)
    assert res[3600].bias_g_per_kwh == pytest.approx(2.5)
    assert res[6 * 3600].mae_g_per_kwh == pytest.approx(10)
    assert res[6 * 3600].mape_pct == pytest.approx(10)
    only = errors_by_lead(fcs, acts, leads_s=[3600])
    assert [e.lead_s for e in only] == [3600]


def test_errors_by_lead_half_hours_against_hourly_actuals_and_gaps() -> None:
    acts = [actual(0, 100.0), actual(2, 300.0)]  # 01:00-02:00 missing
    fcs = [vintage(T0, T0 + timedelta(minutes=30), 90, timedelta(minutes=30)),
           vintage(T0, T0 + timedelta(minutes=60), 1, timedelta(minutes=30))]
    res = errors_by_lead(fcs, acts, bucket_s=1800)
    assert [(e.lead_s, e.n, e.mae_g_per_kwh) for e in res] == [(1800, 1, 10.0)]


def test_forecasts_without_issue_time_or_actuals_are_ignored() -> None:
    acts = [actual(i, 100.0) for i in range(4)]
    undated = IntensityPoint("Z", T0, T0 + H, 5, Kind.FORECAST, "static")
    assert errors_by_lead([undated, *acts], acts) == []


def test_persistence_and_same_hour_yesterday_baselines() -> None:
    hist = [actual(i, float(i % 24)) for i in range(72)]
    now = T0 + 72 * H
    p = persistence("Z", hist, now, 48 * 3600)
    assert len(p) == 48 and {q.intensity_g_per_kwh for q in p} == {23.0}
    y = same_hour_yesterday("Z", hist, now, 48 * 3600)
    assert [q.intensity_g_per_kwh for q in y[:24]] == [float(h) for h in range(24)]
    assert y[30].intensity_g_per_kwh == 6.0  # two days back at 30 h ahead
    assert all(q.issued_at == now and q.kind is Kind.FORECAST for q in y)


def test_rolling_origin_scores_baselines_exactly() -> None:
    # a pure daily cycle: same-hour-yesterday is perfect, persistence is not
    series = [actual(i, 100.0 + 50 * math.sin(2 * math.pi * i / 24)) for i in range(24 * 12)]
    res = rolling_origin(series, BASELINES, leads_s=[3600, 24 * 3600], origin_every_s=5 * 3600,
                         warmup_s=3 * 86400, history_s=3 * 86400)
    yday = {e.lead_s: e for e in res["same-hour-yesterday"]}
    pers = {e.lead_s: e for e in res["persistence"]}
    assert yday[3600].mae_g_per_kwh == pytest.approx(0, abs=1e-9)
    assert yday[86400].mae_g_per_kwh == pytest.approx(0, abs=1e-9)
    assert pers[3600].mae_g_per_kwh > 10
    assert yday[3600].n == pers[3600].n > 20


def test_rolling_origin_shows_a_forecaster_only_the_past() -> None:
    series = [actual(i, float(i)) for i in range(24 * 6)]
    seen: list[tuple[datetime, datetime]] = []

    def spy(zone: str, history, now, horizon_s):  # type: ignore[no-untyped-def]
        seen.append((max(p.end for p in history), now))
        return persistence(zone, history, now, horizon_s)

    res = rolling_origin(series, {"spy": spy}, leads_s=[3600], origin_every_s=86400,
                         warmup_s=2 * 86400, history_s=86400)
    assert seen and all(last_end <= now for last_end, now in seen)
    # ramp of slope 1 per hour: persistence at lead 1 h misses by 2 (last is i-1, target i+1)
    assert res["spy"][0].mae_g_per_kwh == pytest.approx(2)


def test_shape_error_ignores_each_days_level_and_counts_its_shape() -> None:
    from intensity.accuracy import ErrorAccumulator

    cycle = [100.0 + 50 * math.sin(2 * math.pi * h / 24) for h in range(48)]
    acc = ErrorAccumulator()
    # day 1 (leads up to 24 h) off by +30 throughout, day 2 by -10: level errors only
    acc.add_issue([(h * 3600, v + (30 if h <= 24 else -10), v) for h, v in enumerate(cycle)])
    res = {e.lead_s: e for e in acc.result()}
    assert res[3600].mae_g_per_kwh == pytest.approx(30) and res[30 * 3600].mae_g_per_kwh == 10
    assert all(e.shape_mae_g_per_kwh == pytest.approx(0, abs=1e-9) for e in res.values())
    flipped = ErrorAccumulator()
    flipped.add_issue([(h * 3600, 200.0 - v, v) for h, v in enumerate(cycle[:24])], leads_s=[6 * 3600])
    (e,) = flipped.result()
    assert e.lead_s == 6 * 3600 and e.shape_mae_g_per_kwh == pytest.approx(100)  # 2 x the swing at 6 h
    assert e.shape_pct == pytest.approx(100 / 150 * 100)


def test_place_job_charges_the_forecasts_window_on_the_actuals() -> None:
    from intensity.accuracy import place_job

    # actuals: cheapest at 10:00-13:00; the forecast believes 02:00-05:00
    acts = [actual(h, 50.0 if 10 <= h < 13 else 200.0) for h in range(30)]
    fcs = [vintage(T0, T0 + h * H, 10.0 if 2 <= h < 5 else 100.0) for h in range(30)]
    p = place_job(fcs, acts, T0)
    assert p is not None
    assert p.run_now_g == pytest.approx(600) and p.chosen_g == pytest.approx(600)  # 1 kW x 3 h x 200
    assert p.best_g == pytest.approx(150) and p.regret_g == pytest.approx(450)
    assert p.saved_g == 0 and p.oracle_saved_g == pytest.approx(450)
    right = place_job(acts, acts, T0 + H, duration_s=2 * 3600, power_w=500)
    assert right is not None and right.regret_g == 0 and right.best_g == pytest.approx(50)
    assert place_job(fcs, acts[:20], T0) is None  # actuals end before the 24 h window does
    assert place_job(fcs, acts[:5] + acts[6:], T0) is None  # a gap in the actuals


def test_rolling_scores_regret_is_zero_for_a_perfect_daily_forecast() -> None:
    from intensity.accuracy import rolling_scores

    series = [actual(i, 100.0 + 50 * math.sin(2 * math.pi * i / 24)) for i in range(24 * 12)]
    res = rolling_scores(series, BASELINES, leads_s=[3600, 24 * 3600], origin_every_s=5 * 3600,
                         warmup_s=3 * 86400, history_s=3 * 86400)
    yday, pers = res["same-hour-yesterday"], res["persistence"]
    assert yday.regret.n == pers.regret.n > 20
    assert yday.regret.regret_g == pytest.approx(0, abs=1e-6) and yday.regret.share_of_oracle == pytest.approx(1)
    assert all(e.shape_mae_g_per_kwh == pytest.approx(0, abs=1e-9) for e in yday.leads)
    # persistence is flat: its windows start at once, and its shape error is the cycle's
    assert pers.regret.saved_g == pytest.approx(0, abs=1e-6) and pers.regret.regret_g > 0
    assert all(e.shape_mae_g_per_kwh > 10 for e in pers.leads)
