"""Energy-Charts provider.

There is no recorded Energy-Charts answer in the shared data. The fixture below is
hand-written in the documented ``/co2eq`` shape (parallel ``unix_seconds``, ``co2eq``,
``co2eq_forecast`` arrays; measured values null after "now", forecast values null
before it) with made-up values.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from intensity.errors import EmptyData, MalformedResponse, UnknownZone
from intensity.http import HttpClient
from intensity.model import Kind, Signal
from intensity.providers import energycharts
from intensity.providers.energycharts import EnergyChartsProvider

T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
STEP_S = 900
NOW = T0 + timedelta(hours=2)  # 8 measured quarter-hours, then 8 forecast ones


def _fixture() -> dict[str, Any]:
    """Hand-written, in the documented shape (see the module docstring)."""
    stamps = [int(T0.timestamp()) + i * STEP_S for i in range(16)]
    return {
        "unix_seconds": stamps,
        "co2eq": [400.0 + i for i in range(8)] + [None] * 8,
        "co2eq_forecast": [None] * 8 + [300.0 + i for i in range(8)],
        "deprecated": False,
    }


@pytest.fixture
def provider(httpserver: HTTPServer, http: HttpClient) -> EnergyChartsProvider:
    return EnergyChartsProvider(base_url=httpserver.url_for(""), http=http)


def test_forecast_from_co2eq_forecast(
    httpserver: HTTPServer, provider: EnergyChartsProvider
) -> None:
    httpserver.expect_request("/co2eq").respond_with_json(_fixture())
    points = provider.forecast("DE", NOW, 2 * 3600)
    assert [p.intensity_g_per_kwh for p in points] == [300.0 + i for i in range(8)]
    assert points[0].start == NOW
    assert all(p.duration_s == STEP_S for p in points)
    assert all(p.kind is Kind.FORECAST and p.issued_at == NOW for p in points)
    assert all(p.signal is Signal.AVERAGE and p.zone == "DE" for p in points)
    args = httpserver.log[0][0].args
    assert args["country"] == "de"
    assert args["end"] == "2024-05-01T04:00Z"  # the minute format seen in real use


def test_history_from_co2eq(httpserver: HTTPServer, provider: EnergyChartsProvider) -> None:
    httpserver.expect_request("/co2eq").respond_with_json(_fixture())
    points = provider.history("DE", T0, T0 + timedelta(hours=4))
    assert [p.intensity_g_per_kwh for p in points] == [400.0 + i for i in range(8)]
    assert points[-1].end == NOW
    assert all(p.kind is Kind.ACTUAL and p.provider == "energycharts" for p in points)


def test_hourly_resolution_is_read_from_the_spacing(
    httpserver: HTTPServer, provider: EnergyChartsProvider
) -> None:
    body = {
        "unix_seconds": [int(T0.timestamp()) + h * 3600 for h in range(3)],
        "co2eq": [1.0, 2.0, 3.0],
        "co2eq_forecast": [None, None, None],
    }
    httpserver.expect_request("/co2eq").respond_with_json(body)
    points = provider.history("FR", T0, T0 + timedelta(hours=3))
    assert [p.duration_s for p in points] == [3600, 3600, 3600]


def test_nulls_gap_duplicates_out_of_order(
    httpserver: HTTPServer, provider: EnergyChartsProvider
) -> None:
    body = _fixture()
    body["co2eq"][2] = None  # a null -> gap
    # shuffle: reverse both arrays together, and repeat the first stamp with a new value
    body["unix_seconds"] = [*body["unix_seconds"][::-1], body["unix_seconds"][0]]
    body["co2eq"] = [*body["co2eq"][::-1], 999.0]
    body["co2eq_forecast"] = [*body["co2eq_forecast"][::-1], None]
    httpserver.expect_request("/co2eq").respond_with_json(body)
    points = provider.history("DE", T0, NOW)
    assert [p.intensity_g_per_kwh for p in points] == [999.0, 401, 403, 404, 405, 406, 407]
    assert points[1].end == T0 + timedelta(seconds=2 * STEP_S)
    assert points[2].start == T0 + timedelta(seconds=3 * STEP_S)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(co2eq=b["co2eq"][:-1]),
        lambda b: b.update(unix_seconds="nope"),
        lambda b: b["co2eq"].__setitem__(0, "high"),
        lambda b: b["unix_seconds"].__setitem__(0, "yesterday"),
    ],
)
def test_malformed(httpserver: HTTPServer, provider: EnergyChartsProvider, mutate: Any) -> None:
    body = copy.deepcopy(_fixture())
    mutate(body)
    httpserver.expect_request("/co2eq").respond_with_json(body)
    with pytest.raises(MalformedResponse):
        provider.history("DE", T0, NOW)


def test_no_forecast_published_is_empty(
    httpserver: HTTPServer, provider: EnergyChartsProvider
) -> None:
    body = _fixture()
    del body["co2eq_forecast"]
    httpserver.expect_request("/co2eq").respond_with_json(body)
    with pytest.raises(EmptyData):
        provider.forecast("DE", NOW, 3600)


def test_unknown_country_from_the_service_is_empty(
    httpserver: HTTPServer, provider: EnergyChartsProvider
) -> None:
    httpserver.expect_request("/co2eq").respond_with_json(
        {"detail": "country xx not supported"}, status=404
    )
    with pytest.raises(EmptyData):
        provider.history("DE", T0, NOW)


def test_zones_and_settings(httpserver: HTTPServer) -> None:
    p = energycharts.from_settings({"base_url": httpserver.url_for(""), "zones": ["de", "ch"]}, {})
    assert p.zones() == ("DE", "CH")
    assert "DE" in energycharts.from_settings({}, {}).zones()
    with pytest.raises(UnknownZone):
        p.forecast("FR", NOW, 3600)
