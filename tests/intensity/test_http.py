"""The one HTTP client: timeouts, retries, Retry-After, error mapping, no leaked secrets."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from intensity.errors import (
    AuthError,
    EmptyData,
    IntensityError,
    MalformedResponse,
    ProviderUnavailable,
)
from intensity.http import (
    HttpAuthError,
    HttpClient,
    HttpStatusError,
    RetryPolicy,
    default_client,
    parse_retry_after,
    redact_url,
    shared_session,
)

SECRET = "s3cr3t-T0KEN"


def test_500s_then_success_retries_with_exponential_backoff(
    httpserver: HTTPServer, http: HttpClient, sleeps: list[float]
) -> None:
    httpserver.expect_oneshot_request("/x").respond_with_data("boom", status=500)
    httpserver.expect_oneshot_request("/x").respond_with_data("boom", status=503)
    httpserver.expect_request("/x").respond_with_json({"ok": 1})
    assert http.get_json(httpserver.url_for("/x"), provider="t") == {"ok": 1}
    assert sleeps == [0.5, 1.0]
    assert len(httpserver.log) == 3


def test_5xx_every_time_is_provider_unavailable_after_max_attempts(
    httpserver: HTTPServer, http: HttpClient, sleeps: list[float]
) -> None:
    httpserver.expect_request("/x").respond_with_data("down", status=502)
    with pytest.raises(ProviderUnavailable) as info:
        http.get_json(httpserver.url_for("/x"), provider="t")
    assert isinstance(info.value, HttpStatusError)
    assert info.value.status == 502
    assert "after 3 attempts" in str(info.value)
    assert len(httpserver.log) == 3
    assert sleeps == [0.5, 1.0]


def test_429_honours_retry_after_seconds(
    httpserver: HTTPServer, http: HttpClient, sleeps: list[float]
) -> None:
    httpserver.expect_oneshot_request("/x").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_request("/x").respond_with_json([1, 2])
    assert http.get_json(httpserver.url_for("/x"), provider="t") == [1, 2]
    assert sleeps == [7.0]


def test_429_honours_retry_after_http_date(httpserver: HTTPServer, sleeps: list[float]) -> None:
    now_s = 1_700_000_000.0
    when = datetime.fromtimestamp(now_s + 30, tz=UTC)
    client = HttpClient(requests.Session(), sleep=sleeps.append, clock=lambda: now_s)
    httpserver.expect_oneshot_request("/x").respond_with_data(
        "", status=429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    httpserver.expect_request("/x").respond_with_json({})
    assert client.get_json(httpserver.url_for("/x"), provider="t") == {}
    assert sleeps == [pytest.approx(30.0)]


def test_retry_after_too_long_is_not_waited_for(
    httpserver: HTTPServer, http: HttpClient, sleeps: list[float]
) -> None:
    httpserver.expect_request("/x").respond_with_data(
        "", status=429, headers={"Retry-After": "3600"}
    )
    with pytest.raises(ProviderUnavailable, match="3600 s"):
        http.get_json(httpserver.url_for("/x"), provider="t")
    assert sleeps == []
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_not_retried_and_never_show_the_token(
    httpserver: HTTPServer, http: HttpClient, sleeps: list[float], status: int
) -> None:
    httpserver.expect_request("/x").respond_with_json({"error": "bad token"}, status=status)
    url = httpserver.url_for("/x") + f"?token={SECRET}"
    with pytest.raises(AuthError) as info:
        http.get_json(url, provider="t", headers={"auth-token": SECRET}, auth=("u", SECRET))
    assert isinstance(info.value, HttpAuthError)
    assert info.value.status == status
    assert SECRET not in str(info.value)
    assert "bad token" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert len(httpserver.log) == 1
    assert sleeps == []


def test_403_body_from_watttime_is_quoted(
    httpserver: HTTPServer, http: HttpClient, recorded: Callable[[str], Any]
) -> None:
    body = recorded("aiowatttime/invalid_scope_response.json")
    httpserver.expect_request("/x").respond_with_json(body, status=403)
    with pytest.raises(AuthError, match="Invalid scope"):
        http.get_json(httpserver.url_for("/x"), provider="watttime")


def test_other_4xx_is_an_http_status_error_without_retry(
    httpserver: HTTPServer, http: HttpClient, sleeps: list[float]
) -> None:
    httpserver.expect_request("/x").respond_with_json({"message": "no such zone"}, status=404)
    with pytest.raises(HttpStatusError, match="no such zone") as info:
        http.get_json(httpserver.url_for("/x"), provider="t")
    assert info.value.status == 404
    assert sleeps == []


def test_garbage_json_is_malformed(httpserver: HTTPServer, http: HttpClient) -> None:
    httpserver.expect_request("/x").respond_with_data("{not json", content_type="application/json")
    with pytest.raises(MalformedResponse, match="not JSON"):
        http.get_json(httpserver.url_for("/x"), provider="t")


def test_html_error_page_with_200_is_malformed(httpserver: HTTPServer, http: HttpClient) -> None:
    httpserver.expect_request("/x").respond_with_data("<html>maintenance</html>")
    with pytest.raises(MalformedResponse):
        http.get_json(httpserver.url_for("/x"), provider="t")


@pytest.mark.parametrize("status", [200, 204])
def test_empty_body_is_empty_data(httpserver: HTTPServer, http: HttpClient, status: int) -> None:
    httpserver.expect_request("/x").respond_with_data("", status=status)
    with pytest.raises(EmptyData):
        http.get_json(httpserver.url_for("/x"), provider="t")


def test_read_timeout_is_provider_unavailable(
    httpserver: HTTPServer, sleeps: list[float], drain: Callable[[], None]
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.4)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    client = HttpClient(
        requests.Session(),
        connect_timeout_s=1.0,
        read_timeout_s=0.1,
        retry=RetryPolicy(max_attempts=2),
        sleep=sleeps.append,
    )
    with pytest.raises(ProviderUnavailable, match="timeout"):
        client.get_json(httpserver.url_for("/slow"), provider="t")
    assert sleeps == [0.5]  # one retry, then give up
    drain()


def test_connection_refused_is_provider_unavailable(sleeps: list[float]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = HttpClient(requests.Session(), retry=RetryPolicy(max_attempts=2), sleep=sleeps.append)
    with pytest.raises(ProviderUnavailable, match="connection failed") as info:
        client.get_json(f"http://127.0.0.1:{port}/x?token={SECRET}", provider="t")
    assert SECRET not in str(info.value)
    assert isinstance(info.value, IntensityError)
    assert sleeps == [0.5]


def test_retry_log_lines_carry_no_query_or_secret(
    httpserver: HTTPServer, http: HttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_oneshot_request("/x").respond_with_data("", status=500)
    httpserver.expect_request("/x").respond_with_json({})
    with caplog.at_level(logging.DEBUG, logger="intensity"):
        http.get_json(
            httpserver.url_for("/x") + f"?key={SECRET}",
            provider="t",
            headers={"Authorization": f"Bearer {SECRET}"},
        )
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("intensity")]
    assert any("HTTP 500" in line for line in ours)
    assert not any(SECRET in line for line in ours)


def test_timeouts_are_explicit(httpserver: HTTPServer) -> None:
    seen: list[object] = []

    class Spy(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            seen.append(kwargs.get("timeout"))
            return super().request(*args, **kwargs)

    httpserver.expect_request("/x").respond_with_json({})
    HttpClient(Spy(), connect_timeout_s=1.5, read_timeout_s=9.0).get_json(
        httpserver.url_for("/x"), provider="t"
    )
    assert seen == [(1.5, 9.0)]


def test_one_shared_session() -> None:
    assert shared_session() is shared_session()
    assert default_client().session is shared_session()
    assert "carbonshift" in shared_session().headers["User-Agent"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        ("Tue, 14 Nov 2023 22:12:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now_s = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC).timestamp()
    assert parse_retry_after(header, now_s) == expected


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=5.0)
    assert [policy.backoff_s(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_redact_url_drops_the_query() -> None:
    assert redact_url(f"https://h.example/v3/x?token={SECRET}") == "https://h.example/v3/x"


def test_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HttpClient(requests.Session(), read_timeout_s=0)


def test_a_server_echoing_the_token_is_scrubbed(httpserver: HTTPServer, http: HttpClient) -> None:
    httpserver.expect_request("/x").respond_with_json(
        {"error": f"token {SECRET} is not valid"}, status=401
    )
    with pytest.raises(AuthError) as info:
        http.get_json(httpserver.url_for("/x"), provider="t", headers={"auth-token": SECRET})
    assert SECRET not in str(info.value)
    assert "token *** is not valid" in str(info.value)
    httpserver.clear()
    httpserver.expect_request("/y").respond_with_data(f"<{SECRET}>")
    with pytest.raises(MalformedResponse) as bad:
        http.get_json(
            httpserver.url_for("/y"),
            provider="t",
            headers={"Authorization": f"Bearer {SECRET}"},
        )
    assert SECRET not in str(bad.value)
