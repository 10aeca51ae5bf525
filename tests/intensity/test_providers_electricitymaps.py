"""Electricity Maps v3 provider against recorded answers (aioelectricitymaps fixtures)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer

from intensity.errors import AuthError, EmptyData, MalformedResponse, UnknownZone
from intensity.http import HttpClient
from intensity.model import Kind, Signal
from intensity.providers import electricitymaps
from intensity.providers.electricitymaps import ElectricityMapsProvider

TOKEN = "em-t0ken-SECRET"
HISTORY = "aioelectricitymaps/carbon_intensity_history.json"


@pytest.fixture
def provider(httpserver: HTTPServer, http: HttpClient) -> ElectricityMapsProvider:
    return ElectricityMapsProvider(token=TOKEN, base_url=httpserver.url_for("/v3"), http=http)


def _query(i: int, httpserver: HTTPServer) -> dict[str, str]:
    request = httpserver.log[i][0]
    return {k: v[0] for k, v in parse_qs(request.query_string.decode()).items()}


def test_latest_carries_is_estimated(
    httpserver: HTTPServer, provider: ElectricityMapsProvider, recorded: Callable[[str], Any]
) -> None:
    httpserver.expect_request(
        "/v3/carbon-intensity/latest", headers={"auth-token": TOKEN}
    ).respond_with_json(recorded("aioelectricitymaps/latest_carbon_intensity.json"))
    p = provider.latest("US-CAR-DUK")
    assert p.intensity_g_per_kwh == 216.0
    assert p.estimated is True
    assert p.start == datetime(2024, 3, 6, 19, 0, tzinfo=UTC)
    assert p.end - p.start == timedelta(hours=1)
    assert p.kind is Kind.ACTUAL and p.signal is Signal.AVERAGE
    assert p.provider == "electricitymaps" and p.zone == "US-CAR-DUK"
    assert _query(0, httpserver) == {"zone": "US-CAR-DUK", "emissionFactorType": "lifecycle"}


def test_recent_history_24_hours(
    httpserver: HTTPServer, provider: ElectricityMapsProvider, recorded: Callable[[str], Any]
) -> None:
    body = recorded(HISTORY)
    httpserver.expect_request("/v3/carbon-intensity/history").respond_with_json(body)
    points = provider.recent("DE")
    assert len(points) == 24
    assert points[0].start == datetime(2024, 3, 5, 20, 0, tzinfo=UTC)
    assert points[0].intensity_g_per_kwh == 599.0
    assert points[-1].end == datetime(2024, 3, 6, 20, 0, tzinfo=UTC)
    assert [p.estimated for p in points] == [bool(r["isEstimated"]) for r in body["history"]]


def test_history_uses_past_range(
    httpserver: HTTPServer, provider: ElectricityMapsProvider, recorded: Callable[[str], Any]
) -> None:
    rows = recorded(HISTORY)["history"]
    httpserver.expect_request(
        "/v3/carbon-intensity/past-range", headers={"auth-token": TOKEN}
    ).respond_with_json({"zone": "DE", "data": rows})
    start = datetime(2024, 3, 5, 22, 0, tzinfo=UTC)
    end = datetime(2024, 3, 6, 10, 0, tzinfo=UTC)
    points = provider.history("DE", start, end)
    assert len(points) == 12
    assert points[0].start == start and points[-1].end == end
    assert points[0].intensity_g_per_kwh == 599.0  # 22:00 in the recording
    q = _query(0, httpserver)
    assert q["zone"] == "DE"
    assert q["start"] == "2024-03-05T22:00:00Z"
    assert q["end"] == "2024-03-06T10:00:00Z"


def test_past_range_is_chunked_at_10_days(
    httpserver: HTTPServer, provider: ElectricityMapsProvider, recorded: Callable[[str], Any]
) -> None:
    rows = recorded(HISTORY)["history"]
    httpserver.expect_request("/v3/carbon-intensity/past-range").respond_with_json(
        {"zone": "DE", "data": rows}
    )
    start = datetime(2024, 2, 15, tzinfo=UTC)
    provider.history("DE", start, start + timedelta(days=25))
    bounds = [(_query(i, httpserver)["start"], _query(i, httpserver)["end"]) for i in range(3)]
    assert bounds == [
        ("2024-02-15T00:00:00Z", "2024-02-25T00:00:00Z"),
        ("2024-02-25T00:00:00Z", "2024-03-06T00:00:00Z"),
        ("2024-03-06T00:00:00Z", "2024-03-11T00:00:00Z"),
    ]


def test_forecast(httpserver: HTTPServer, provider: ElectricityMapsProvider) -> None:
    # No recorded forecast answer exists in the shared data: this is the documented v3
    # shape {"zone", "forecast": [{"carbonIntensity", "datetime"}], "updatedAt"}.
    base = datetime(2024, 3, 6, 19, 0, tzinfo=UTC)
    body = {
        "zone": "DE",
        "forecast": [
            {
                "carbonIntensity": 300 + h,
                "datetime": (base + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            }
            for h in range(24)
        ],
        "updatedAt": "2024-03-06T18:51:20.123Z",
    }
    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_json(body)
    now = base + timedelta(minutes=20)
    points = provider.forecast("DE", now, 6 * 3600)
    assert [p.intensity_g_per_kwh for p in points] == [300.0 + h for h in range(7)]
    assert points[0].start == base  # the hour holding now
    assert all(p.kind is Kind.FORECAST for p in points)
    assert points[0].issued_at == datetime(2024, 3, 6, 18, 51, 20, 123000, tzinfo=UTC)
    assert _query(0, httpserver)["horizonHours"] == "6"


def test_free_tier_without_forecast_makes_no_request(
    httpserver: HTTPServer, http: HttpClient
) -> None:
    p = ElectricityMapsProvider(
        token=TOKEN, base_url=httpserver.url_for("/v3"), http=http, has_forecast=False
    )
    with pytest.raises(EmptyData, match="forecast"):
        p.forecast("DE", datetime(2024, 3, 6, tzinfo=UTC), 3600)
    assert httpserver.log == []


def test_401_is_auth_error_without_retry_or_token(
    httpserver: HTTPServer, provider: ElectricityMapsProvider, sleeps: list[float]
) -> None:
    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_json(
        {"status": "error", "message": "Invalid authentication credentials"}, status=401
    )
    with pytest.raises(AuthError) as info:
        provider.forecast("DE", datetime(2024, 3, 6, tzinfo=UTC), 3600)
    assert TOKEN not in str(info.value)
    assert "forecast = false" in str(info.value)
    assert len(httpserver.log) == 1 and sleeps == []
    assert TOKEN not in repr(provider)


def test_nulls_duplicates_out_of_order_and_a_gap(
    httpserver: HTTPServer, provider: ElectricityMapsProvider, recorded: Callable[[str], Any]
) -> None:
    rows = copy.deepcopy(recorded(HISTORY)["history"][:6])
    rows[1]["carbonIntensity"] = None  # null -> gap
    del rows[3]  # a missing hour -> gap
    late = copy.deepcopy(rows[0])
    late["carbonIntensity"] = 1.5
    rows.append(late)  # duplicate of the first hour, later in the answer: wins
    rows.reverse()
    httpserver.expect_request("/v3/carbon-intensity/past-range").respond_with_json(
        {"zone": "DE", "data": rows}
    )
    start = datetime(2024, 3, 5, 20, 0, tzinfo=UTC)
    points = provider.history("DE", start, start + timedelta(hours=6))
    hours = [p.start.hour for p in points]
    assert hours == [20, 22, 0, 1]  # 21:00 null, 23:00 missing
    # reversed: the original 20:00 row comes last, so it wins over the 1.5 duplicate
    assert points[0].intensity_g_per_kwh == 599.0


def test_malformed_and_empty(
    httpserver: HTTPServer, provider: ElectricityMapsProvider, recorded: Callable[[str], Any]
) -> None:
    start = datetime(2024, 3, 5, 20, 0, tzinfo=UTC)
    httpserver.expect_oneshot_request("/v3/carbon-intensity/past-range").respond_with_json(
        {"zone": "DE", "data": [{"carbonIntensity": "lots", "datetime": "2024-03-05T20:00Z"}]}
    )
    with pytest.raises(MalformedResponse):
        provider.history("DE", start, start + timedelta(hours=2))
    httpserver.expect_oneshot_request("/v3/carbon-intensity/past-range").respond_with_json(
        {"zone": "DE", "data": []}
    )
    with pytest.raises(EmptyData):
        provider.history("DE", start, start + timedelta(hours=2))
    # The legacy CO2 Signal "no-data" answer has no history list at all.
    httpserver.expect_oneshot_request("/v3/carbon-intensity/history").respond_with_json(
        recorded("aioelectricitymaps/no-data-response.json")
    )
    with pytest.raises(MalformedResponse):
        provider.recent("DE")
    # ... and no carbonIntensity as a latest answer.
    httpserver.expect_oneshot_request("/v3/carbon-intensity/latest").respond_with_json(
        recorded("aioelectricitymaps/unknown-response.json")
    )
    with pytest.raises(EmptyData):
        provider.latest("DE")


def test_unknown_zone_404(httpserver: HTTPServer, provider: ElectricityMapsProvider) -> None:
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json(
        {"status": "error", "message": "Zone 'XX' does not exist."}, status=404
    )
    with pytest.raises(UnknownZone, match="XX"):
        provider.latest("XX")


def test_zones_from_the_recorded_zone_list(
    httpserver: HTTPServer, provider: ElectricityMapsProvider, recorded: Callable[[str], Any]
) -> None:
    httpserver.expect_oneshot_request("/v3/zones").respond_with_json(
        recorded("aioelectricitymaps/zones.json")
    )
    zones = provider.zones()
    assert len(zones) == 400
    assert "DE" in zones and "DK-DK1" in zones
    assert provider.serves("GB")
    assert provider.zones() is zones  # fetched once
    assert len(httpserver.log) == 1


def test_missing_token_names_the_variable() -> None:
    with pytest.raises(AuthError, match="ELECTRICITYMAPS_TOKEN"):
        electricitymaps.from_settings({}, {})
    with pytest.raises(AuthError, match="MY_EM_KEY"):
        electricitymaps.from_settings({"token_env": "MY_EM_KEY"}, {"ELECTRICITYMAPS_TOKEN": "x"})


def test_from_settings(httpserver: HTTPServer, http: HttpClient) -> None:
    p = electricitymaps.from_settings(
        {"base_url": httpserver.url_for("/v3"), "zones": ["DE", "FR"], "forecast": False},
        {"ELECTRICITYMAPS_TOKEN": TOKEN},
        http=http,
    )
    assert p.zones() == ("DE", "FR")
    assert not p.has_forecast
    assert p.name == "electricitymaps"
    p2 = electricitymaps.from_settings({"token_env": "K"}, {"K": "abc"})
    assert p2.base_url == "https://api.electricitymap.org/v3"
    p3 = electricitymaps.from_settings({"token": "inline"}, {})
    assert TOKEN not in repr(p3)


def test_429_retry_after_then_success(
    httpserver: HTTPServer,
    provider: ElectricityMapsProvider,
    recorded: Callable[[str], Any],
    sleeps: list[float],
) -> None:
    httpserver.expect_oneshot_request("/v3/carbon-intensity/latest").respond_with_json(
        {"status": "error", "message": "rate limit"}, status=429, headers={"Retry-After": "2"}
    )
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json(
        recorded("aioelectricitymaps/latest_carbon_intensity.json")
    )
    assert provider.latest("US-CAR-DUK").intensity_g_per_kwh == 216.0
    assert sleeps == [2.0]
