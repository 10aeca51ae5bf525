"""GB Carbon Intensity API provider against recorded NESO answers on a local server."""

from __future__ import annotations

import copy
import csv
import itertools
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from intensity.errors import EmptyData, MalformedResponse, ProviderUnavailable, UnknownZone
from intensity.http import HttpClient, RetryPolicy
from intensity.model import Kind, Signal, forecast_of
from intensity.providers import ukgrid
from intensity.providers.ukgrid import UKGridProvider, postcode_zone, region_zone

NOW = datetime(2023, 3, 14, 3, 1, tzinfo=UTC)
FW48H = "uk-carbon-intensity-api/national_fw48h/2023-03-14T0301Z.json"
PT24H = "uk-carbon-intensity-api/national_pt24h/2023-03-14T0301Z.json"


@pytest.fixture
def provider(httpserver: HTTPServer, http: HttpClient) -> UKGridProvider:
    return UKGridProvider(base_url=httpserver.url_for(""), http=http)


def _regional(rows: list[dict[str, Any]], *, as_list: bool, **region: Any) -> dict[str, Any]:
    """A regional answer wrapping half-hour rows in their region, in either shape seen."""
    for row in rows:
        row["intensity"].pop("actual", None)  # regions publish forecasts only
    body = {"regionid": 13, "dnoregion": "UKPN London", "shortname": "London", **region}
    body["data"] = rows
    return {"data": [body] if as_list else body}


def _cats_rows(shared_data: Path) -> list[dict[str, Any]]:
    """The cats recorded regional 48 h forecast, back in the API's row shape."""
    rows = []
    with open(shared_data / "cats/carbon_intensity_24h.csv", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            start = datetime.strptime(rec["time"], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
            rows.append(
                {
                    "from": rec["time"],
                    "to": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%MZ"),
                    "intensity": {"forecast": int(rec["intensity"]), "index": "very low"},
                }
            )
    return rows


# -- national forecast and actuals ----------------------------------------------------------


def test_national_forecast_from_the_recorded_fw48h(
    httpserver: HTTPServer, provider: UKGridProvider, recorded: Callable[[str], Any]
) -> None:
    body = recorded(FW48H)
    httpserver.expect_request("/intensity/2023-03-14T03:01Z/fw48h").respond_with_json(body)
    points = provider.forecast("GB", NOW, 48 * 3600)
    assert len(points) == 96
    first, last = points[0], points[-1]
    assert first.start == datetime(2023, 3, 14, 3, 0, tzinfo=UTC)
    assert first.intensity_g_per_kwh == 68.0
    assert last.start == datetime(2023, 3, 16, 2, 30, tzinfo=UTC)
    assert last.intensity_g_per_kwh == body["data"][-1]["intensity"]["forecast"]
    for p in points:
        assert p.kind is Kind.FORECAST
        assert p.signal is Signal.AVERAGE
        assert p.provider == "ukgrid"
        assert p.zone == "GB"
        assert p.issued_at == NOW
        assert p.duration_s == 1800
    assert [p.intensity_g_per_kwh for p in points] == [
        float(r["intensity"]["forecast"]) for r in body["data"]
    ]
    forecast_of("GB", points)  # sorted, non-overlapping: a valid Forecast


def test_forecast_is_clipped_to_the_horizon(
    httpserver: HTTPServer, provider: UKGridProvider, recorded: Callable[[str], Any]
) -> None:
    httpserver.expect_request("/intensity/2023-03-14T03:01Z/fw48h").respond_with_json(
        recorded(FW48H)
    )
    points = provider.forecast("GB", NOW, 6 * 3600)
    assert points[0].start == datetime(2023, 3, 14, 3, 0, tzinfo=UTC)  # the half-hour holding now
    assert points[-1].start == datetime(2023, 3, 14, 9, 0, tzinfo=UTC)
    assert len(points) == 13


def test_forecast_matches_a_recorded_csv_vintage(
    httpserver: HTTPServer, provider: UKGridProvider, shared_data: Path
) -> None:
    """The scraper's CSV vintage, served back as the API answer it came from."""
    with open(
        shared_data / "uk-carbon-intensity-api/national_fw48h/2023-03-14T0331Z.csv",
        encoding="utf-8",
    ) as f:
        rows = list(csv.DictReader(f))
    body = {
        "data": [
            {
                "from": r["from"],
                "to": (
                    datetime.strptime(r["from"], "%Y-%m-%dT%H:%MZ") + timedelta(minutes=30)
                ).strftime("%Y-%m-%dT%H:%MZ"),
                "intensity": {"forecast": int(r["intensity.forecast"]), "actual": None},
            }
            for r in rows
        ]
    }
    now = datetime(2023, 3, 14, 3, 31, tzinfo=UTC)
    httpserver.expect_request("/intensity/2023-03-14T03:31Z/fw48h").respond_with_json(body)
    points = provider.forecast("GB", now, 48 * 3600)
    assert [p.intensity_g_per_kwh for p in points] == [float(r["intensity.forecast"]) for r in rows]


def test_history_within_a_day_uses_pt24h_actuals(
    httpserver: HTTPServer, provider: UKGridProvider, recorded: Callable[[str], Any]
) -> None:
    body = recorded(PT24H)
    httpserver.expect_request("/intensity/2023-03-14T03:00Z/pt24h").respond_with_json(body)
    start = datetime(2023, 3, 13, 3, 30, tzinfo=UTC)
    end = datetime(2023, 3, 14, 3, 0, tzinfo=UTC)
    points = provider.history("GB", start, end)
    assert len(points) == 47  # the 03:00 window starts before `start`
    assert points[0].start == start
    # "actual", not "forecast": the recorded first in-range row is forecast 52, actual 64.
    assert body["data"][1]["intensity"] == {"forecast": 52, "actual": 64, "index": "low"}
    assert points[0].intensity_g_per_kwh == 64.0
    assert all(p.kind is Kind.ACTUAL and p.issued_at is None for p in points)
    assert not any(p.estimated for p in points)
    assert len(httpserver.log) == 1


def test_null_actuals_of_the_latest_half_hours_leave_a_gap(
    httpserver: HTTPServer, provider: UKGridProvider, recorded: Callable[[str], Any]
) -> None:
    body = copy.deepcopy(recorded(PT24H))
    for row in body["data"][-3:]:
        row["intensity"]["actual"] = None
    body["data"][10]["intensity"]["actual"] = None
    httpserver.expect_request("/intensity/2023-03-14T03:00Z/pt24h").respond_with_json(body)
    points = provider.history(
        "GB", datetime(2023, 3, 13, 3, 30, tzinfo=UTC), datetime(2023, 3, 14, 3, 0, tzinfo=UTC)
    )
    assert len(points) == 47 - 4
    starts = {p.start for p in points}
    assert datetime(2023, 3, 13, 8, 0, tzinfo=UTC) not in starts  # data[10]
    assert points[-1].start == datetime(2023, 3, 14, 1, 0, tzinfo=UTC)


def test_long_history_is_split_into_14_day_chunks(
    httpserver: HTTPServer, provider: UKGridProvider
) -> None:
    """A 30-day range: three calls whose boundaries meet exactly; seams de-duplicated."""

    def serve(request: Request) -> Response:
        m = re.fullmatch(r"/intensity/([^/]+)/([^/]+)", request.path)
        assert m, request.path
        lo = datetime.strptime(m[1], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
        hi = datetime.strptime(m[2], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
        rows = []
        t = lo
        while t <= hi:  # the API includes the window holding `to`: seams overlap
            rows.append(
                {
                    "from": t.strftime("%Y-%m-%dT%H:%MZ"),
                    "to": (t + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%MZ"),
                    "intensity": {"forecast": 100, "actual": 100 + t.hour},
                }
            )
            t += timedelta(minutes=30)
        return Response(json.dumps({"data": rows}), content_type="application/json")

    httpserver.expect_request(re.compile(r"/intensity/.+/.+")).respond_with_handler(serve)
    start = datetime(2023, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=30)
    points = provider.history("GB", start, end)
    paths = [req.path for req, _ in httpserver.log]
    assert paths == [
        "/intensity/2023-03-01T00:00Z/2023-03-15T00:00Z",
        "/intensity/2023-03-15T00:00Z/2023-03-29T00:00Z",
        "/intensity/2023-03-29T00:00Z/2023-03-31T00:00Z",
    ]
    assert len(points) == 30 * 48
    assert len({p.start for p in points}) == len(points)
    assert points[0].start == start and points[-1].end == end
    assert all(b.start == a.end for a, b in itertools.pairwise(points))
    assert points[5].intensity_g_per_kwh == 102.0  # 02:30 -> 100 + 2


# -- regions and postcodes --------------------------------------------------------------------


@pytest.mark.parametrize("as_list", [False, True])
def test_regional_forecast_from_the_recorded_cats_vintage(
    httpserver: HTTPServer, provider: UKGridProvider, shared_data: Path, as_list: bool
) -> None:
    rows = _cats_rows(shared_data)
    now = datetime(2023, 5, 4, 12, 30, tzinfo=UTC)
    httpserver.expect_request(
        "/regional/intensity/2023-05-04T12:30Z/fw48h/regionid/13"
    ).respond_with_json(_regional(rows, as_list=as_list))
    points = provider.forecast("GB-REGION-13", now, 48 * 3600)
    assert len(points) == 96
    assert points[0].intensity_g_per_kwh == 11.0
    assert points[1].intensity_g_per_kwh == 15.0
    assert all(p.zone == "GB-REGION-13" and p.kind is Kind.FORECAST for p in points)
    assert [p.intensity_g_per_kwh for p in points] == [
        float(r["intensity"]["forecast"]) for r in rows
    ]


def test_postcode_forecast(
    httpserver: HTTPServer, provider: UKGridProvider, shared_data: Path
) -> None:
    rows = _cats_rows(shared_data)[:4]
    now = datetime(2023, 5, 4, 12, 30, tzinfo=UTC)
    httpserver.expect_request(
        "/regional/intensity/2023-05-04T12:30Z/fw48h/postcode/RG10"
    ).respond_with_json(_regional(rows, as_list=False, postcode="RG10"))
    zone = postcode_zone("rg10 9xx")
    assert zone == "GB-POSTCODE-RG10"
    assert provider.serves(zone)
    points = provider.forecast(zone, now, 2 * 3600)
    assert [p.intensity_g_per_kwh for p in points] == [
        float(r["intensity"]["forecast"]) for r in rows
    ]
    assert all(p.zone == zone for p in points)


def test_regional_history_is_final_forecast_marked_estimated(
    httpserver: HTTPServer, provider: UKGridProvider, shared_data: Path
) -> None:
    rows = _cats_rows(shared_data)
    httpserver.expect_request(
        "/regional/intensity/2023-05-05T12:30Z/pt24h/regionid/13"
    ).respond_with_json(_regional(rows, as_list=True))
    start = datetime(2023, 5, 4, 13, 0, tzinfo=UTC)
    end = datetime(2023, 5, 5, 12, 30, tzinfo=UTC)  # 23.5 h: one pt24h call
    points = provider.history("GB-REGION-13", start, end)
    assert points[0].start == start
    assert points[-1].start == datetime(2023, 5, 5, 12, 0, tzinfo=UTC)
    assert len(points) == 47
    assert all(p.kind is Kind.ACTUAL and p.estimated for p in points)


# -- faults -------------------------------------------------------------------------------------


def test_nulls_duplicates_and_out_of_order_rows(
    httpserver: HTTPServer, provider: UKGridProvider, recorded: Callable[[str], Any]
) -> None:
    body = copy.deepcopy(recorded(FW48H))
    original_05h = float(body["data"][4]["intensity"]["forecast"])
    rows = body["data"][:8]
    rows[2]["intensity"]["forecast"] = None  # a gap
    dup = copy.deepcopy(rows[4])
    dup["intensity"]["forecast"] = 999  # a later duplicate wins
    rows.append(dup)
    rows.reverse()  # newest first
    body["data"] = rows
    httpserver.expect_request("/intensity/2023-03-14T03:01Z/fw48h").respond_with_json(body)
    points = provider.forecast("GB", NOW, 4 * 3600)
    starts = [p.start for p in points]
    assert starts == sorted(starts)
    assert len(points) == 7  # 8 rows, one null
    assert datetime(2023, 3, 14, 4, 0, tzinfo=UTC) not in starts
    dup_start = datetime(2023, 3, 14, 5, 0, tzinfo=UTC)
    # rows were reversed, so the original row 4 now comes after the duplicate.
    assert next(p for p in points if p.start == dup_start).intensity_g_per_kwh == original_05h
    assert len(set(starts)) == len(starts)
    forecast_of("GB", points)


def test_duplicate_timestamps_keep_the_last_occurrence(
    httpserver: HTTPServer, provider: UKGridProvider
) -> None:
    rows = [
        {"from": "2023-03-14T03:00Z", "to": "2023-03-14T03:30Z", "intensity": {"forecast": 10}},
        {"from": "2023-03-14T03:30Z", "to": "2023-03-14T04:00Z", "intensity": {"forecast": 20}},
        {"from": "2023-03-14T03:00Z", "to": "2023-03-14T03:30Z", "intensity": {"forecast": 30}},
    ]
    httpserver.expect_request("/intensity/2023-03-14T03:01Z/fw48h").respond_with_json(
        {"data": rows}
    )
    points = provider.forecast("GB", NOW, 3600)
    assert [(p.start.minute, p.intensity_g_per_kwh) for p in points] == [(0, 30.0), (30, 20.0)]


@pytest.mark.parametrize(
    "body",
    [
        {"data": [{"from": "2023-03-14T03:00Z", "intensity": {"forecast": "high"}}]},
        {"data": [{"from": "yesterday", "intensity": {"forecast": 10}}]},
        {"data": [{"from": "2023-03-14T03:00Z"}]},
        {"data": {"not": "a list"}},
        {"error": {"code": "400 Bad Request", "message": "Please enter a valid date"}},
        ["not", "an", "object"],
    ],
)
def test_malformed_bodies(httpserver: HTTPServer, provider: UKGridProvider, body: Any) -> None:
    httpserver.expect_request("/intensity/2023-03-14T03:01Z/fw48h").respond_with_json(body)
    with pytest.raises(MalformedResponse):
        provider.forecast("GB", NOW, 3600)


def test_garbage_json(httpserver: HTTPServer, provider: UKGridProvider) -> None:
    httpserver.expect_request("/intensity/2023-03-14T03:01Z/fw48h").respond_with_data(
        '{"data": [{"from": ', content_type="application/json"
    )
    with pytest.raises(MalformedResponse):
        provider.forecast("GB", NOW, 3600)


def test_empty_data_is_empty(httpserver: HTTPServer, provider: UKGridProvider) -> None:
    httpserver.expect_request("/intensity/2023-03-14T03:01Z/fw48h").respond_with_json({"data": []})
    with pytest.raises(EmptyData):
        provider.forecast("GB", NOW, 3600)


def test_500_then_success(
    httpserver: HTTPServer,
    provider: UKGridProvider,
    recorded: Callable[[str], Any],
    sleeps: list[float],
) -> None:
    path = "/intensity/2023-03-14T03:01Z/fw48h"
    httpserver.expect_oneshot_request(path).respond_with_data("", status=500)
    httpserver.expect_request(path).respond_with_json(recorded(FW48H))
    assert len(provider.forecast("GB", NOW, 3600)) == 3
    assert sleeps == [0.5]


# -- zones and settings -------------------------------------------------------------------------


def test_zone_naming() -> None:
    provider = UKGridProvider(http=HttpClient(), base_url="http://unused.invalid")
    zones = list(provider.zones())
    assert zones[0] == "GB"
    assert zones[1:] == [f"GB-REGION-{i}" for i in range(1, 15)]
    assert region_zone(13) == "GB-REGION-13"
    assert ukgrid.REGION_NAMES[13] == "London"
    assert provider.serves("GB-POSTCODE-EH1")
    assert not provider.serves("GB-POSTCODE-NOT A CODE")
    assert not provider.serves("GB-REGION-15")
    for bad in ("FR", "GB-REGION-0", "GB-REGION-15", "GB-POSTCODE-12"):
        with pytest.raises(UnknownZone):
            provider.forecast(bad, NOW, 3600)
    with pytest.raises(UnknownZone):
        region_zone(99)
    with pytest.raises(UnknownZone):
        postcode_zone("!!")


def test_naive_now_is_refused(provider: UKGridProvider) -> None:
    with pytest.raises(ValueError, match="naive"):
        provider.forecast("GB", datetime(2023, 3, 14, 3, 1), 3600)


def test_from_settings(httpserver: HTTPServer, recorded: Callable[[str], Any]) -> None:
    p = ukgrid.from_settings({"base_url": httpserver.url_for("/"), "zones": ["GB"]}, {})
    assert p.zones() == ("GB",)
    assert p.name == "ukgrid"
    assert p.base_url == httpserver.url_for("/").rstrip("/")
    default = ukgrid.from_settings({}, {})
    assert default.base_url == "https://api.carbonintensity.org.uk"
    assert len(default.zones()) == 15


def test_a_slow_server_is_provider_unavailable(
    httpserver: HTTPServer, sleeps: list[float], drain: Callable[[], None]
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.3)
        return Response('{"data": []}', content_type="application/json")

    httpserver.expect_request("/intensity/2023-03-14T03:01Z/fw48h").respond_with_handler(slow)
    client = HttpClient(
        requests.Session(),
        read_timeout_s=0.05,
        retry=RetryPolicy(max_attempts=1),
        sleep=sleeps.append,
    )
    provider = UKGridProvider(base_url=httpserver.url_for(""), http=client)
    with pytest.raises(ProviderUnavailable, match="timeout"):
        provider.forecast("GB", NOW, 3600)
    assert sleeps == []
    drain()
