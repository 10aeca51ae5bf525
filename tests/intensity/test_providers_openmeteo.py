"""Open-Meteo weather provider against a real local HTTP server.

The answer replayed is made in Open-Meteo's documented format, not recorded (see
``data/openmeteo/README.md``): there is no network here.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from intensity.errors import IntensityError, MalformedResponse, UnknownZone
from intensity.http import HttpClient, HttpStatusError
from intensity.providers import openmeteo
from intensity.providers.openmeteo import DEFAULT_POINTS, OpenMeteoProvider, Point, parse_points

FIXTURE = Path(__file__).parent / "data" / "openmeteo" / "forecast_de_3points.json"
START = datetime(2024, 3, 1, tzinfo=UTC)
NOW = START + timedelta(hours=48)


@pytest.fixture
def body() -> Any:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def make(httpserver: HTTPServer, http: HttpClient, **kw: Any) -> OpenMeteoProvider:
    return OpenMeteoProvider(base_url=httpserver.url_for(""), http=http, **kw)


def test_three_points_become_nine_named_hourly_inputs(
    httpserver: HTTPServer, http: HttpClient, body: Any
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json(body)
    w = make(httpserver, http).weather("DE", NOW, 24 * 3600)
    assert w.zone == "DE" and w.provider == "openmeteo" and w.issued_at == NOW
    assert w.start == START and w.step_s == 3600 and len(w) == 96
    assert w.names == tuple(sorted(f"{v}@{p}" for v in openmeteo.VARIABLES
                                   for p in ("north", "central", "south")))
    assert w.values["wind_speed_100m@north"][0] == body[0]["hourly"]["wind_speed_100m"][0]
    assert w.values["temperature_2m@south"][5] == body[2]["hourly"]["temperature_2m"][5]
    assert math.isnan(w.values["wind_speed_100m@central"][95])  # null in the answer
    args = httpserver.log[0][0].args
    assert args["latitude"] == "54.2,51,48.5" and args["longitude"] == "8.9,10.5,11.5"
    assert args["hourly"] == "wind_speed_100m,shortwave_radiation,temperature_2m"
    assert args["wind_speed_unit"] == "ms" and args["timezone"] == "GMT"
    assert args["past_days"] == "92" and args["forecast_days"] == "2"


def test_an_answer_is_reused_then_refetched_and_merged(
    httpserver: HTTPServer, http: HttpClient, body: Any
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json(body)
    p = make(httpserver, http, cache_s=3600)
    first = p.weather("DE", NOW, 24 * 3600)
    assert p.weather("DE", NOW + timedelta(minutes=30), 24 * 3600) is first
    assert len(httpserver.log) == 1
    # an hour later the service is asked again; its newer answer, a day on, is merged in
    later = copy.deepcopy(body)
    for loc in later:
        loc["hourly"]["time"] = [
            (datetime.fromisoformat(t) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
            for t in loc["hourly"]["time"]]
        loc["hourly"]["wind_speed_100m"] = [1.0] * 96
    httpserver.clear()
    httpserver.expect_request("/v1/forecast").respond_with_json(later)
    merged = p.weather("DE", NOW + timedelta(hours=2), 24 * 3600)
    assert len(httpserver.log) == 1
    assert merged.start == START and len(merged) == 120
    wind = merged.values["wind_speed_100m@north"]
    assert wind[0] == body[0]["hourly"]["wind_speed_100m"][0]  # only the old answer had it
    assert wind[24] == 1.0 and wind[119] == 1.0  # the newer answer wins where both have it


def test_the_kept_copy_on_disk_serves_another_process(
    httpserver: HTTPServer, http: HttpClient, body: Any, tmp_path: Path
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json(body)
    a = make(httpserver, http, cache_dir=tmp_path).weather("DE", NOW, 24 * 3600)
    b = make(httpserver, http, cache_dir=tmp_path).weather("DE", NOW + timedelta(minutes=5),
                                                           24 * 3600)
    assert len(httpserver.log) == 1
    assert b.start == a.start and b.names == a.names
    for name in a.names:
        assert [x for x in a.values[name] if math.isfinite(x)] == \
            [x for x in b.values[name] if math.isfinite(x)]
    assert not list(tmp_path.glob(".weather-*"))  # written atomically, nothing left over


def test_a_refusal_names_the_reason(httpserver: HTTPServer, http: HttpClient) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json(
        {"error": True, "reason": "Latitude must be in range of -90 to 90°. Given: 91.0."},
        status=400)
    with pytest.raises(HttpStatusError, match="HTTP 400"):
        make(httpserver, http).weather("DE", NOW, 3600)


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[:2], "expected 3 location answers"),
    (lambda b: {"error": True, "reason": "no"}, "refused: no"),
    (lambda b: [b[0], b[1], {**b[2], "utc_offset_seconds": 3600}], "not in GMT"),
    (lambda b: [b[0], b[1], {**b[2], "hourly": {"time": b[2]["hourly"]["time"]}}],
     "no hourly.wind_speed_100m"),
])
def test_malformed_answers_are_refused(
    httpserver: HTTPServer, http: HttpClient, body: Any, damage: Any, match: str
) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json(damage(body))
    with pytest.raises(MalformedResponse, match=match):
        make(httpserver, http).weather("DE", NOW, 3600)


def test_a_value_that_is_not_a_number_is_malformed(
    httpserver: HTTPServer, http: HttpClient, body: Any
) -> None:
    body[1]["hourly"]["shortwave_radiation"][3] = "sunny"
    httpserver.expect_request("/v1/forecast").respond_with_json(body)
    with pytest.raises(MalformedResponse, match=r"central hourly.shortwave_radiation\[3\]"):
        make(httpserver, http).weather("DE", NOW, 3600)


def test_zones_without_points_are_unknown(httpserver: HTTPServer, http: HttpClient) -> None:
    with pytest.raises(UnknownZone, match="not 'FR'"):
        make(httpserver, http).weather("FR", NOW, 3600)
    assert not httpserver.log


def test_points_from_settings_replace_a_zones_defaults() -> None:
    p = openmeteo.from_settings({"points": ["FR=west:47.2,-1.6", "DE=coast:54.5,9.0"]}, {})
    assert p.points["FR"] == (Point("west", 47.2, -1.6),)
    assert p.points["DE"] == (Point("coast", 54.5, 9.0),)
    assert p.points["GB"] == DEFAULT_POINTS["GB"]


@pytest.mark.parametrize("entry, match", [
    ("DE:54,9", "write ZONE=LABEL:LATITUDE,LONGITUDE"),
    ("DE=n:95,9", "off the globe"),
])
def test_bad_points_are_refused(entry: str, match: str) -> None:
    with pytest.raises(IntensityError, match=match):
        parse_points([entry])
    with pytest.raises(IntensityError, match=r"past_days must be 0\.\.92"):
        openmeteo.from_settings({"past_days": 200}, {})
