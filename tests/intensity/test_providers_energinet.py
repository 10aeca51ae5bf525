"""Energinet (Energi Data Service) provider against the recorded CO2EmisProg answer."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from intensity.errors import EmptyData, MalformedResponse, UnknownZone
from intensity.http import HttpClient
from intensity.model import Kind, Signal
from intensity.providers import energinet
from intensity.providers.energinet import EnerginetProvider

PROG = "energi-data-service/co2emisprog"
FIRST = datetime(2022, 7, 17, 19, 55, tzinfo=UTC)


@pytest.fixture
def provider(httpserver: HTTPServer, http: HttpClient) -> EnerginetProvider:
    return EnerginetProvider(base_url=httpserver.url_for(""), http=http)


def test_forecast_from_the_recorded_prognosis(
    httpserver: HTTPServer, provider: EnerginetProvider, recorded: Callable[[str], Any]
) -> None:
    body = recorded(PROG)
    httpserver.expect_request("/dataset/CO2EmisProg").respond_with_json(body)
    points = provider.forecast("DK-DK1", FIRST, 2 * 3600 + 300)
    assert len(points) == 25  # 19:55 .. 21:55, 5-minute
    # The answer is newest first; points come out oldest first.
    assert points[0].start == FIRST and points[0].intensity_g_per_kwh == 111.0
    assert points[-1].start == datetime(2022, 7, 17, 21, 55, tzinfo=UTC)
    assert points[-1].intensity_g_per_kwh == 123.0
    assert all(p.end - p.start == timedelta(minutes=5) for p in points)
    assert all(b.start == a.end for a, b in itertools.pairwise(points))
    assert all(
        p.kind is Kind.FORECAST and p.signal is Signal.AVERAGE and p.issued_at == FIRST
        for p in points
    )
    assert all(p.zone == "DK-DK1" and p.provider == "energinet" for p in points)
    args = httpserver.log[0][0].args
    assert json.loads(args["filter"]) == {"PriceArea": ["DK1"]}
    assert "timezone" not in args
    # start/end are Danish time to the service: the UTC window is widened by 3 h each side.
    assert args["start"] == "2022-07-17T16:55"
    assert args["end"] == "2022-07-18T01:00"
    assert args["sort"] == "Minutes5UTC ASC"


def test_price_areas_are_never_mixed(
    httpserver: HTTPServer, provider: EnerginetProvider, recorded: Callable[[str], Any]
) -> None:
    """The service is asked to filter; if it does not, DK2 rows still never reach DK1."""
    body = copy.deepcopy(recorded(PROG))
    for rec in body["records"]:
        if rec["PriceArea"] == "DK2":
            rec["CO2Emission"] += 1000
    httpserver.expect_request("/dataset/CO2EmisProg").respond_with_json(body)
    dk1 = provider.forecast("DK-DK1", FIRST, 3600)
    dk2 = provider.forecast("DK-DK2", FIRST, 3600)
    assert max(p.intensity_g_per_kwh for p in dk1) < 1000
    assert min(p.intensity_g_per_kwh for p in dk2) > 1000
    assert len(dk1) == len(dk2) == 12


def test_naive_minutes5utc_is_utc(
    httpserver: HTTPServer, provider: EnerginetProvider, recorded: Callable[[str], Any]
) -> None:
    httpserver.expect_request("/dataset/CO2EmisProg").respond_with_json(recorded(PROG))
    # 21:55 in the file is 21:55 UTC (23:55 Danish summer time), not 19:55 UTC.
    points = provider.forecast("DK-DK2", datetime(2022, 7, 17, 21, 50, tzinfo=UTC), 3600)
    assert [p.start.strftime("%H:%M") for p in points] == ["21:50", "21:55"]


def test_history_uses_the_realised_dataset(
    httpserver: HTTPServer, provider: EnerginetProvider, recorded: Callable[[str], Any]
) -> None:
    # CO2Emis has the same record shape as the recorded CO2EmisProg answer.
    body = dict(recorded(PROG), dataset="CO2Emis")
    httpserver.expect_request("/dataset/CO2Emis").respond_with_json(body)
    points = provider.history("DK-DK1", FIRST, FIRST + timedelta(hours=1))
    assert len(points) == 12
    assert all(p.kind is Kind.ACTUAL and p.issued_at is None for p in points)


def test_nulls_duplicates_and_gaps(httpserver: HTTPServer, provider: EnerginetProvider) -> None:
    records = [
        {"Minutes5UTC": "2022-07-17T20:10:00", "PriceArea": "DK1", "CO2Emission": 120},
        {"Minutes5UTC": "2022-07-17T20:00:00", "PriceArea": "DK1", "CO2Emission": None},
        {"Minutes5UTC": "2022-07-17T20:05:00", "PriceArea": "DK1", "CO2Emission": 110},
        {"Minutes5UTC": "2022-07-17T20:05:00", "PriceArea": "DK1", "CO2Emission": 115},
        {"Minutes5UTC": "2022-07-17T20:25:00", "PriceArea": "DK1", "CO2Emission": 130.5},
    ]
    httpserver.expect_request("/dataset/CO2EmisProg").respond_with_json(
        {"total": 5, "limit": 0, "dataset": "CO2EmisProg", "records": records}
    )
    points = provider.forecast("DK-DK1", datetime(2022, 7, 17, 20, 0, tzinfo=UTC), 1800)
    assert [(p.start.minute, p.intensity_g_per_kwh) for p in points] == [
        (5, 115.0),
        (10, 120.0),
        (25, 130.5),
    ]


def test_faults(httpserver: HTTPServer, provider: EnerginetProvider) -> None:
    now = datetime(2022, 7, 17, 20, 0, tzinfo=UTC)
    httpserver.expect_oneshot_request("/dataset/CO2EmisProg").respond_with_json(
        {"total": 0, "records": []}
    )
    with pytest.raises(EmptyData):
        provider.forecast("DK-DK1", now, 3600)
    httpserver.expect_oneshot_request("/dataset/CO2EmisProg").respond_with_json(
        {"records": [{"Minutes5UTC": "17/07/2022 20:00", "PriceArea": "DK1", "CO2Emission": 1}]}
    )
    with pytest.raises(MalformedResponse):
        provider.forecast("DK-DK1", now, 3600)
    httpserver.expect_oneshot_request("/dataset/CO2EmisProg").respond_with_json(
        {"error": "something"}
    )
    with pytest.raises(MalformedResponse):
        provider.forecast("DK-DK1", now, 3600)
    with pytest.raises(UnknownZone):
        provider.forecast("DK1", now, 3600)


def test_from_settings(httpserver: HTTPServer) -> None:
    p = energinet.from_settings({"base_url": httpserver.url_for(""), "zones": ["DK-DK2"]}, {})
    assert p.zones() == ("DK-DK2",)
    assert energinet.from_settings({}, {}).zones() == ("DK-DK1", "DK-DK2")
    with pytest.raises(UnknownZone):
        energinet.from_settings({"zones": ["DK3"]}, {})
