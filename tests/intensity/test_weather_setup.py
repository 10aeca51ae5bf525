"""``[intensity] weather`` wires the Open-Meteo provider into the local forecaster.

The weather answer is made in Open-Meteo's documented format (``data/openmeteo/README.md``)
and served by a real local HTTP server.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from intensity.forecast import planning_forecast
from intensity.model import IntensityPoint, Kind
from scheduler.config import Settings, load_settings
from scheduler.errors import BadInput
from scheduler.intensity_setup import build_intensity_service

FIXTURE = Path(__file__).parent / "data" / "openmeteo" / "forecast_de_3points.json"
NOW = datetime(2024, 3, 3, tzinfo=UTC)  # two days into the made answer's four


def _history() -> list[IntensityPoint]:
    out = []
    for h in range(40 * 24, 0, -1):
        s = NOW - timedelta(hours=h)
        v = 400 + 80 * math.sin(2 * math.pi * s.hour / 24) + 30 * math.sin(h / 37)
        out.append(IntensityPoint("DE", s, s + timedelta(hours=1), v, Kind.ACTUAL, "test"))
    return out


def _settings(tmp_path: Path, base_url: str, zones: str = '["DE"]') -> Settings:
    cfg = tmp_path / "carbonshift.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f"[intensity]\nproviders = []\nweather = {zones}\n"
        f'[providers.openmeteo]\nbase_url = "{base_url}"\ntimeout_s = 3\n',
        encoding="utf-8")
    return load_settings(env={}, config_path=str(cfg))


def test_a_weather_zone_fetches_keeps_and_uses_the_weather(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json(
        json.loads(FIXTURE.read_text(encoding="utf-8")))
    settings = _settings(tmp_path, httpserver.url_for(""))
    svc = build_intensity_service(settings, {}, None)
    assert svc.local is not None
    hist = _history()
    points = svc.local("DE", hist, NOW, 24 * 3600)
    assert len(points) == 24 and points[0].start == NOW
    assert len(httpserver.log) == 1
    assert (tmp_path / "data" / "weather" / "DE.weather.json").is_file()
    fits = list((tmp_path / "data" / "forecast-fits").glob("*.fit.json"))
    assert fits and all("weather-1" in f.read_text() for f in fits)
    # a zone not named keeps the history-only planning curve and asks for no weather
    other = [IntensityPoint("GB", p.start, p.end, p.intensity_g_per_kwh, p.kind, p.provider)
             for p in hist]
    assert svc.local("GB", other, NOW, 24 * 3600) == planning_forecast(
        "GB", other, NOW, 24 * 3600, fit_dir=tmp_path / "data" / "forecast-fits")
    assert len(httpserver.log) == 1


def test_without_weather_the_zone_falls_back_to_history(
    httpserver: HTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_data("busy", status=404)
    settings = _settings(tmp_path, httpserver.url_for(""))
    svc = build_intensity_service(settings, {}, None)
    assert svc.local is not None
    hist = _history()
    with caplog.at_level("WARNING", logger="carbonshift.intensity"):
        got = svc.local("DE", hist, NOW, 24 * 3600)
    assert got == planning_forecast("DE", hist, NOW, 24 * 3600,
                                    fit_dir=tmp_path / "data" / "forecast-fits")
    assert "no weather for DE" in caplog.text


def test_a_weather_zone_without_points_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "http://127.0.0.1:9", zones='["DE", "FR"]')
    with pytest.raises(BadInput, match=r"weather names FR, which has no weather points"):
        build_intensity_service(settings, {}, None)
