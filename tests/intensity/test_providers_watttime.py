"""WattTime v3 provider: login and token refresh, lbs/MWh -> g/kWh once, marginal signal."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from intensity.errors import AuthError, EmptyData, MalformedResponse, UnknownZone
from intensity.http import HttpClient
from intensity.model import IntensityPoint, Kind, Signal
from intensity.providers import watttime
from intensity.providers.watttime import (
    SignalMismatch,
    WattTimeProvider,
    require_same_signal,
    to_g_per_kwh,
)

USER = "alice"
PASSWORD = "pa55-W0RD-secret"
HISTORICAL = "aiowatttime/historical_emissions_response.json"
VINTAGES = "aiowatttime/forecasted_emissions_response.json"
T0 = datetime(2022, 7, 15, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.s = 1000.0

    def __call__(self) -> float:
        return self.s


class Login:
    """A /login handler checking basic auth and handing out t1, t2, ..."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return Response('{"error": "bad credentials"}', status=401)
        self.count += 1
        return Response(f'{{"token": "t{self.count}"}}', content_type="application/json")


@pytest.fixture
def login(httpserver: HTTPServer) -> Login:
    handler = Login()
    httpserver.expect_request("/login").respond_with_handler(handler)
    return handler


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider(httpserver: HTTPServer, http: HttpClient, clock: Clock) -> WattTimeProvider:
    return WattTimeProvider(
        username=USER,
        password=PASSWORD,
        base_url=httpserver.url_for(""),
        http=http,
        clock=clock,
    )


def _forecast_body(recorded: Callable[[str], Any]) -> dict[str, Any]:
    # No recorded /v3/forecast answer exists; this is its documented shape, built from the
    # recorded /v3/forecast/historical example (one issue's points, meta with generated_at).
    vintages = recorded(VINTAGES)
    meta = dict(vintages["meta"], generated_at=vintages["data"][0]["generated_at"])
    return {"data": vintages["data"][0]["forecast"], "meta": meta}


def test_history_converts_lbs_per_mwh_once(
    httpserver: HTTPServer,
    provider: WattTimeProvider,
    login: Login,
    recorded: Callable[[str], Any],
) -> None:
    httpserver.expect_request(
        "/v3/historical", headers={"Authorization": "Bearer t1"}
    ).respond_with_json(recorded(HISTORICAL))
    points = provider.history("CAISO_NORTH", T0, T0 + timedelta(minutes=10))
    assert [p.intensity_g_per_kwh for p in points] == [
        pytest.approx(870 * 0.453592),
        pytest.approx(860 * 0.453592),
    ]
    assert points[0].intensity_g_per_kwh == pytest.approx(394.62504)
    assert all(p.signal is Signal.MARGINAL for p in points)
    assert all(p.kind is Kind.ACTUAL and p.provider == "watttime" for p in points)
    assert points[0].end - points[0].start == timedelta(seconds=300)
    assert login.count == 1
    query = httpserver.log[-1][0].args
    assert query["region"] == "CAISO_NORTH" and query["signal_type"] == "co2_moer"
    assert query["start"] == "2022-07-15T00:00:00Z"


def test_forecast_issued_at_generated_at(
    httpserver: HTTPServer,
    provider: WattTimeProvider,
    login: Login,
    recorded: Callable[[str], Any],
) -> None:
    httpserver.expect_request("/v3/forecast").respond_with_json(_forecast_body(recorded))
    points = provider.forecast("CAISO_NORTH", T0, 3600)
    assert len(points) == 3
    assert all(p.issued_at == T0 and p.kind is Kind.FORECAST for p in points)
    assert all(p.intensity_g_per_kwh == pytest.approx(394.62504) for p in points)
    assert all(p.signal is Signal.MARGINAL for p in points)
    assert httpserver.log[-1][0].args["horizon_hours"] == "1"


def test_forecast_vintages_keep_every_issue(
    httpserver: HTTPServer,
    provider: WattTimeProvider,
    login: Login,
    recorded: Callable[[str], Any],
) -> None:
    body = copy.deepcopy(recorded(VINTAGES))
    second = copy.deepcopy(body["data"][0])
    second["generated_at"] = "2022-07-15T00:05:00+00:00"
    second["forecast"] = [{"point_time": "2022-07-15T00:05:00+00:00", "value": 500}]
    body["data"].append(second)
    httpserver.expect_request("/v3/forecast/historical").respond_with_json(body)
    points = provider.forecast_vintages("CAISO_NORTH", T0, T0 + timedelta(minutes=10))
    assert len(points) == 4
    issues = sorted({p.issued_at for p in points if p.issued_at})
    assert issues == [T0, T0 + timedelta(minutes=5)]
    assert points[-1].intensity_g_per_kwh == pytest.approx(500 * 0.453592)


def test_401_refreshes_the_token_once(
    httpserver: HTTPServer,
    provider: WattTimeProvider,
    login: Login,
    recorded: Callable[[str], Any],
    sleeps: list[float],
) -> None:
    httpserver.expect_request(
        "/v3/historical", headers={"Authorization": "Bearer t1"}
    ).respond_with_json({"error": "token expired"}, status=401)
    httpserver.expect_request(
        "/v3/historical", headers={"Authorization": "Bearer t2"}
    ).respond_with_json(recorded(HISTORICAL))
    points = provider.history("CAISO_NORTH", T0, T0 + timedelta(minutes=10))
    assert len(points) == 2
    assert login.count == 2 and provider.logins == 2
    assert sleeps == []  # an auth failure is never retried by the HTTP layer


def test_401_twice_is_an_auth_error(
    httpserver: HTTPServer, provider: WattTimeProvider, login: Login
) -> None:
    httpserver.expect_request("/v3/historical").respond_with_json({"error": "nope"}, status=401)
    with pytest.raises(AuthError):
        provider.history("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    assert login.count == 2  # one refresh, no loop
    assert sum(1 for r, _ in httpserver.log if r.path == "/v3/historical") == 2


def test_403_invalid_scope_does_not_relogin(
    httpserver: HTTPServer,
    provider: WattTimeProvider,
    login: Login,
    recorded: Callable[[str], Any],
) -> None:
    httpserver.expect_request("/v3/forecast").respond_with_json(
        recorded("aiowatttime/invalid_scope_response.json"), status=403
    )
    with pytest.raises(AuthError, match="Invalid scope"):
        provider.forecast("PSCO", T0, 3600)
    assert login.count == 1


def test_token_is_refreshed_before_it_expires(
    httpserver: HTTPServer,
    provider: WattTimeProvider,
    login: Login,
    clock: Clock,
    recorded: Callable[[str], Any],
) -> None:
    httpserver.expect_request("/v3/historical").respond_with_json(recorded(HISTORICAL))
    provider.history("CAISO_NORTH", T0, T0 + timedelta(minutes=10))
    clock.s += 10 * 60
    provider.history("CAISO_NORTH", T0, T0 + timedelta(minutes=10))
    assert login.count == 1  # still fresh
    clock.s += 19 * 60  # 29 min: inside the 2-minute margin of the 30-minute lifetime
    provider.history("CAISO_NORTH", T0, T0 + timedelta(minutes=10))
    assert login.count == 2
    assert httpserver.log[-1][0].headers["Authorization"] == "Bearer t2"


def test_wrong_password_never_appears_in_errors(
    httpserver: HTTPServer, http: HttpClient, login: Login
) -> None:
    p = WattTimeProvider(
        username=USER, password="wr0ng-" + PASSWORD, base_url=httpserver.url_for(""), http=http
    )
    with pytest.raises(AuthError) as info:
        p.history("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(p)


def test_region_from_loc(
    httpserver: HTTPServer,
    provider: WattTimeProvider,
    login: Login,
    recorded: Callable[[str], Any],
) -> None:
    httpserver.expect_oneshot_request("/v3/region-from-loc").respond_with_json(
        recorded("aiowatttime/grid_region_response.json")
    )
    assert provider.region_from_loc(39.74, -104.99) == "PSCO"
    assert httpserver.log[-1][0].args["latitude"] == "39.740000"
    httpserver.expect_oneshot_request("/v3/region-from-loc").respond_with_json(
        recorded("aiowatttime/coordinates_not_found_response.json"), status=404
    )
    with pytest.raises(UnknownZone):
        provider.region_from_loc(0.0, 0.0)


def test_percentile_signal_index_is_refused(
    httpserver: HTTPServer,
    provider: WattTimeProvider,
    login: Login,
    recorded: Callable[[str], Any],
) -> None:
    httpserver.expect_request("/v3/historical").respond_with_json(
        recorded("aiowatttime/realtime_emissions_response.json")
    )
    with pytest.raises(MalformedResponse, match="percentile"):
        provider.history("PSCO", T0, T0 + timedelta(hours=1))


def test_nulls_duplicates_and_out_of_order(
    httpserver: HTTPServer,
    provider: WattTimeProvider,
    login: Login,
    recorded: Callable[[str], Any],
) -> None:
    body = copy.deepcopy(recorded(HISTORICAL))
    body["data"] = [
        {"point_time": "2022-07-15T00:10:00+00:00", "value": 100},
        {"point_time": "2022-07-15T00:00:00+00:00", "value": 200},
        {"point_time": "2022-07-15T00:05:00+00:00", "value": None},
        {"point_time": "2022-07-15T00:10:00+00:00", "value": 300},
        {"point_time": "2022-07-15T00:20:00Z", "value": 400},
    ]
    httpserver.expect_request("/v3/historical").respond_with_json(body)
    points = provider.history("CAISO_NORTH", T0, T0 + timedelta(minutes=30))
    assert [(p.start.minute, round(p.intensity_g_per_kwh, 4)) for p in points] == [
        (0, round(200 * 0.453592, 4)),
        (10, round(300 * 0.453592, 4)),
        (20, round(400 * 0.453592, 4)),
    ]


def test_empty_and_malformed(
    httpserver: HTTPServer, provider: WattTimeProvider, login: Login
) -> None:
    httpserver.expect_oneshot_request("/v3/historical").respond_with_json(
        {"data": [], "meta": {"units": "lbs_co2_per_mwh"}}
    )
    with pytest.raises(EmptyData):
        provider.history("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    httpserver.expect_oneshot_request("/v3/historical").respond_with_json({"data": []})
    with pytest.raises(MalformedResponse, match="meta"):
        provider.history("CAISO_NORTH", T0, T0 + timedelta(hours=1))


def test_conversion_constant() -> None:
    assert to_g_per_kwh(1000.0, "lbs_co2_per_mwh") == pytest.approx(453.592)
    assert to_g_per_kwh(5.0, "kg_co2_per_mwh") == 5.0
    with pytest.raises(MalformedResponse):
        to_g_per_kwh(96.0, "percentile")


def _point(signal: Signal) -> IntensityPoint:
    return IntensityPoint(
        zone="Z",
        start=T0,
        end=T0 + timedelta(hours=1),
        intensity_g_per_kwh=100.0,
        kind=Kind.ACTUAL,
        provider="x",
        signal=signal,
    )


def test_marginal_and_average_are_never_compared() -> None:
    marginal = [_point(Signal.MARGINAL)]
    average = [_point(Signal.AVERAGE)]
    assert require_same_signal(marginal, marginal) is Signal.MARGINAL
    assert require_same_signal(average) is Signal.AVERAGE
    with pytest.raises(SignalMismatch):
        require_same_signal(marginal, average)


def test_missing_credentials_name_the_variables() -> None:
    with pytest.raises(AuthError, match="WATTTIME_USERNAME and WATTTIME_PASSWORD"):
        watttime.from_settings({}, {})
    with pytest.raises(AuthError) as info:
        watttime.from_settings({}, {"WATTTIME_USERNAME": "u"})
    assert "WATTTIME_PASSWORD" in str(info.value) and "WATTTIME_USERNAME" not in str(info.value)


def test_from_settings(httpserver: HTTPServer, http: HttpClient) -> None:
    p = watttime.from_settings(
        {
            "base_url": httpserver.url_for(""),
            "username_env": "WT_U",
            "password_env": "WT_P",
            "zones": ["CAISO_NORTH", "PSCO"],
        },
        {"WT_U": USER, "WT_P": PASSWORD},
        http=http,
    )
    assert p.zones() == ("CAISO_NORTH", "PSCO")
    assert p.signal is Signal.MARGINAL and p.name == "watttime"
    assert watttime.from_settings({"username": "u", "password": "p"}, {}).zones() == (
        "CAISO_NORTH",
    )
