"""The planning curve is chosen once (``intensity.forecast.PLANNING_CURVE``), and submit,
the daemon, ``carbonshift forecast`` and ``carbonshift simulate`` all plan on it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import intensity.forecast as fc
from intensity.model import IntensityPoint, Kind

T0 = datetime(2023, 1, 2, tzinfo=UTC)


def history(days: int = 40) -> list[IntensityPoint]:
    """A daily cycle with a weekly swing and a drifting level (the model differs from the
    profile, and the blend from both)."""
    out = []
    for i in range(days * 24):
        v = (300 + 80 * math.sin(2 * math.pi * i / 24) + 30 * math.sin(2 * math.pi * i / 168)
             + 40 * math.sin(2 * math.pi * i / 500) + 15 * math.sin(i * 1.7))
        start = T0 + timedelta(hours=i)
        out.append(IntensityPoint("Z", start, start + timedelta(hours=1), v, Kind.ACTUAL, "test"))
    return out


def values(points: list[IntensityPoint]) -> list[float]:
    return [p.intensity_g_per_kwh for p in points]


def test_the_three_curves_differ_and_the_blend_is_the_profile_at_the_models_level() -> None:
    pts = history()
    now = pts[-1].end
    point, blend, prof, recent = (values(fc.local_forecast("Z", pts, now, 24 * 3600, curve=c))
                                  for c in ("point", "blend", "profile", "recent"))
    assert len({tuple(c) for c in (point, blend, prof, recent)}) == 4
    # the profile is the mean of the seven latest same-hour values
    raw = values(pts)
    assert prof == pytest.approx([sum(raw[-24 * d + h] for d in range(1, 8)) / 7 for h in range(24)])
    assert blend == pytest.approx(fc.planning_curve("blend", point, prof, 3600))
    with pytest.raises(ValueError, match="unknown planning curve 'smooth'"):
        fc.planning_curve("smooth", point, prof, 3600)


@pytest.mark.parametrize("curve", fc.PLANNING_CURVES)
def test_submit_forecast_and_simulate_plan_on_the_chosen_curve(
    curve: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from scheduler.intensity_setup import local_forecaster as service_local
    from scheduler.simulate import local_forecaster as simulate_local

    monkeypatch.setattr(fc, "PLANNING_CURVE", curve)
    pts = history()
    now = pts[-1].end
    want = values(fc.local_forecast("Z", pts, now, 24 * 3600, curve=curve))
    # submit, the daemon and `forecast ZONE` (with or without --provider) get the
    # service's local link from this one builder; simulate from its own
    submit = service_local(tmp_path / "fits")
    assert submit is not None
    got = {
        "submit/forecast": values(submit("Z", pts, now, 24 * 3600)),
        "simulate": values(simulate_local()("Z", pts, now, 24 * 3600)),
        "simulate with fits": values(simulate_local(tmp_path / "fits")("Z", pts, now, 24 * 3600)),
        "planning_forecast": values(fc.planning_forecast("Z", pts, now, 24 * 3600)),
    }
    for name, vals in got.items():
        assert vals == pytest.approx(want), name


def test_the_default_curve_is_a_known_one() -> None:
    assert fc.PLANNING_CURVE in fc.PLANNING_CURVES


def test_the_recent_curve_is_a_recency_weighted_profile_at_a_lead_weighted_level() -> None:
    pts = history()
    now = pts[-1].end
    raw = values(pts)
    got = values(fc.local_forecast("Z", pts, now, 48 * 3600, curve="recent"))
    point = values(fc.local_forecast("Z", pts, now, 48 * 3600, curve="point"))
    # the profile: the 21 latest same-hour values, the d-th day back weighing 0.5 ** (d / 5)
    weights = [0.5 ** (d / fc._RECENT_HALF_LIFE_DAYS) for d in range(fc._RECENT_PROFILE_DAYS)]
    recent = [sum(w * raw[len(raw) + h - 24 * (h // 24 + 1 + d)] for d, w in enumerate(weights))
              / sum(weights) for h in range(48)]
    assert got == pytest.approx(fc.planning_curve("recent", point, recent, 3600, recent_profile=recent))
    # a constant deviation from the profile counts in full now and half from 24 h on
    moved = fc.planning_curve("recent", [r + 40 for r in recent], recent, 3600, recent_profile=recent)
    lift = [m - r for m, r in zip(moved, recent, strict=True)]
    assert lift[0] == pytest.approx(40) and lift[12] == pytest.approx(30)
    assert lift[24:] == pytest.approx([20] * 24)
    with pytest.raises(ValueError, match="needs recent_profile"):
        fc.planning_curve("recent", point, recent, 3600)


def test_a_weather_informed_model_plans_on_its_own_measured_curve() -> None:
    from intensity.weather import WeatherSeries

    pts = history()
    now = pts[-1].end
    wind = tuple(5 + 3 * math.sin(i / 11) for i in range(len(pts) + 48))
    weather = WeatherSeries("Z", T0, 3600, {"wind_speed_100m@north": wind}, "test")
    plan = values(fc.local_forecast("Z", pts, now, 24 * 3600, for_planning=True, weather=weather))
    assert plan == pytest.approx(values(fc.local_forecast(
        "Z", pts, now, 24 * 3600, curve=fc.WEATHER_PLANNING_CURVE, weather=weather)))
    assert plan != pytest.approx(values(fc.local_forecast(
        "Z", pts, now, 24 * 3600, curve=fc.PLANNING_CURVE, weather=weather)))
