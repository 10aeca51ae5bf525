"""The local forecaster with weather inputs (``local_forecast(..., weather=...)``)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intensity import forecast as fc
from intensity.model import IntensityPoint, Kind
from intensity.weather import WeatherSeries, merge

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 120


def _world(seed: int = 7) -> tuple[list[IntensityPoint], WeatherSeries]:
    """A wind grid: intensity falls with the square of a wandering wind speed (which no
    history predicts a day ahead), on a daily demand shape, plus a little noise."""
    rng = random.Random(seed)
    n = DAYS * 24
    wind, v = [], 7.0
    for _ in range(n + 72):
        v = min(14.0, max(0.5, v + rng.gauss(0, 0.9) - 0.04 * (v - 7.0)))
        wind.append(v)
    temp = [5 + 4 * math.sin(2 * math.pi * (h % 24 - 9) / 24) for h in range(n + 72)]
    pts = []
    for h in range(n):
        ci = 520 - 2.2 * wind[h] ** 2 + 40 * math.sin(2 * math.pi * (h % 24 - 4) / 24)
        ci += rng.gauss(0, 6)
        s = T0 + timedelta(hours=h)
        pts.append(IntensityPoint("DE", s, s + timedelta(hours=1), max(ci, 20.0), Kind.ACTUAL, "test"))
    weather = WeatherSeries("DE", T0, 3600, {"wind_speed_100m@north": tuple(wind),
                                             "temperature_2m@north": tuple(temp)}, "test")
    return pts, weather


def _mae_24h(pts: list[IntensityPoint], weather: WeatherSeries | None) -> float:
    errs = []
    for day in range(100, 118, 2):
        now = T0 + timedelta(days=day, hours=5)
        hist = [p for p in pts if p.end <= now]
        out = fc.local_forecast("DE", hist, now, 25 * 3600, weather=weather)
        target = now + timedelta(hours=24)
        got = next(p for p in out if p.start == target)
        actual = next(p for p in pts if p.start == target)
        errs.append(abs(got.intensity_g_per_kwh - actual.intensity_g_per_kwh))
    return sum(errs) / len(errs)


def test_weather_inputs_cut_the_day_ahead_error_of_a_wind_grid() -> None:
    pts, weather = _world()
    fc.clear_cache()
    history_only = _mae_24h(pts, None)
    with_weather = _mae_24h(pts, weather)
    assert with_weather < 0.5 * history_only, (with_weather, history_only)


def test_an_input_with_no_values_leaves_the_history_model_unchanged() -> None:
    pts, weather = _world()
    now = T0 + timedelta(days=110, hours=3)
    hist = [p for p in pts if p.end <= now]
    blank = WeatherSeries("DE", T0, 3600, {"wind_speed_100m@north": (math.nan,) * len(weather),
                                           **{k: v for k, v in weather.values.items()
                                              if not k.startswith("wind")}}, "test")
    plain = fc.local_forecast("DE", hist, now, 24 * 3600)
    assert fc.local_forecast("DE", hist, now, 24 * 3600, weather=blank) == plain
    assert fc.local_forecast("DE", hist, now, 24 * 3600, weather=None) == plain


def test_weather_fits_are_kept_apart_and_reused(tmp_path: Path) -> None:
    pts, weather = _world()
    now = T0 + timedelta(days=110, hours=3)
    hist = [p for p in pts if p.end <= now]
    fc.clear_cache()
    plain = fc.local_forecast("DE", hist, now, 24 * 3600, fit_dir=tmp_path)
    first = fc.local_forecast("DE", hist, now, 24 * 3600, fit_dir=tmp_path, weather=weather)
    files = sorted(tmp_path.glob("*.fit.json"))
    assert len(files) == 2  # one fit per kind of model, neither standing in for the other
    assert any("wind_speed_100m@north" in f.read_text() for f in files)
    fc.clear_cache()  # another process: reads the stored fit, fits nothing
    again = fc.local_forecast("DE", hist, now, 24 * 3600, fit_dir=tmp_path, weather=weather)
    assert again == first and sorted(tmp_path.glob("*.fit.json")) == files
    assert first != plain


def test_only_steps_with_weather_are_trained_on() -> None:
    """A provider gives only the recent past (Open-Meteo: 92 days): the fit uses those
    steps and still beats the history-only model."""
    pts, weather = _world()
    cut = 60 * 24  # the weather begins 60 days in
    recent = WeatherSeries("DE", T0 + timedelta(hours=cut), 3600,
                           {k: v[cut:] for k, v in weather.values.items()}, "test")
    fc.clear_cache()
    assert _mae_24h(pts, recent) < 0.6 * _mae_24h(pts, None)


def test_merge_lets_the_later_series_win() -> None:
    a = WeatherSeries("DE", T0, 3600, {"x": (1.0, 2.0, 3.0)}, "t")
    b = WeatherSeries("DE", T0 + timedelta(hours=2), 3600, {"x": (30.0, math.nan, 50.0)}, "t")
    m = merge([a, b])
    assert m.start == T0 and m.values["x"][:3] == (1.0, 2.0, 30.0)
    assert math.isnan(m.values["x"][3]) and m.values["x"][4] == 50.0
    with pytest.raises(ValueError, match="differ in length"):
        WeatherSeries("DE", T0, 3600, {"x": (1.0,), "y": (1.0, 2.0)}, "t")
