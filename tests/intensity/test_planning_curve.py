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
    point, blend, prof = (values(fc.local_forecast("Z", pts, now, 24 * 3600, curve=c))
                          for c in fc.PLANNING_CURVES)
    assert point != blend != prof != point
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
