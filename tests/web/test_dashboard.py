"""The read-only dashboard: HTTP behaviour, and the page in headless Chromium.

The Chromium test needs Debian's ``chromium`` package (``apt-get install -y chromium``);
it is skipped with that reason when the browser is absent. It loads the page of a seeded
database, checks that the jobs are shown, that the browser logged no console message
(script errors, CSP refusals) and that the server answered every request the page made
with a success status (a missing resource shows there, not in the console).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.clock import SystemClock
from scheduler.config import load_settings
from scheduler.model import Job, JobState
from scheduler.web.server import CSP, make_server
from tests.cli.conftest import write_retimed_trace
from tests.report.report_seed import seed_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = '<script>alert("x")</script>&co'


class _Statuses(logging.Handler):
    """Collects the status code of every request the server logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = re.search(r'"(\w+ \S+)[^"]*" (\d{3})', record.getMessage())
        if m:
            self.seen.append((m.group(1), int(m.group(2))))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int], _Statuses]]:
    tmp = tmp_path_factory.mktemp("dash")
    now = datetime.now(UTC)
    trace = write_retimed_trace(tmp / "trace.csv", now.replace(minute=0, second=0, microsecond=0) - timedelta(days=2))
    settings = load_settings(env={"HOME": str(tmp)}, overrides={
        "db": f"sqlite:///{tmp / 'dash.db'}", "data_dir": str(tmp / "data"), "default_zone": "TRACE",
        "carbon_price": "80EUR/t"})
    settings = replace(settings, intensity={**settings.intensity, "providers": ["replay"], "trace": str(trace)})
    app = App(settings, env={}, clock=SystemClock())
    ids = seed_store(app.store)
    start = now + timedelta(hours=3)
    planned = app.store.add_job(Job(
        name=EVIL, argv=["python", "train.py"], duration_s=7200, zone="TRACE", submitted_at=now,
        earliest_start=now, latest_start=now + timedelta(hours=10), deadline_at=now + timedelta(hours=12),
        owner="dora", state=JobState.PLANNED, planned_start=start, planned_site="local",
        expected_g=120.0, run_now_g=200.0, plan_source="replay:provider"))
    assert planned.id is not None
    ids["evil"] = planned.id
    statuses = _Statuses()
    logger = logging.getLogger("carbonshift.web")
    logger.addHandler(statuses)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    srv = make_server(app, port=0, tz=UTC, since="all")
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield srv.url, ids, statuses
    finally:
        srv.shutdown()
        srv.server_close()
        logger.removeHandler(statuses)
        logger.setLevel(old_level)
        app.close()


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_binds_the_loopback_only(server) -> None:  # type: ignore[no-untyped-def]
    url, _, _ = server
    assert url.startswith("http://127.0.0.1:")


def test_page_shows_queue_history_and_charts_escaped(server) -> None:  # type: ignore[no-untyped-def]
    url, _, _ = server
    status, headers, body = _get(url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CSP and "script-src" not in CSP
    page = body.decode()
    for name in ("bert-ft", "llama-sweep", "eval", "dropped"):
        assert f"<td>{name}</td>" in page
    # the planned job: its name escaped everywhere, its window drawn over the forecast
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'class="chart forecast" data-zone="TRACE"' in page
    assert page.count('class="span"') == 1 and page.count('class="now"') == 1
    assert 'class="chart report"' in page
    assert "1.60 kg (26.7%)" in page  # saved vs run-now over the seeded history
    assert "0.13 EUR" in page  # cost avoided at the configured price


def test_json_endpoints(server) -> None:  # type: ignore[no-untyped-def]
    url, ids, _ = server
    status, headers, body = _get(url + "api/queue")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    queue = json.loads(body)
    assert {j["id"] for j in queue} == {ids["waiting"], ids["evil"]}
    rows = json.loads(_get(url + "api/history?since=all")[2])
    assert [r["name"] for r in rows][:2] == ["bert-ft", "llama-sweep"]
    rep = json.loads(_get(url + "api/report?by=owner&since=all")[2])
    assert rep["total"]["saved_kg"] == pytest.approx(1.6) and rep["currency"] == "EUR"
    fc = json.loads(_get(url + "api/forecast?zone=TRACE&hours=6")[2])
    assert fc["zone"] == "TRACE" and not fc["fallback"] and len(fc["points"]) >= 6
    job = json.loads(_get(url + f"api/job/{ids['bert-ft']}")[2])
    assert job["job"]["saved_g"] == pytest.approx(600.0)


def test_svg_charts(server) -> None:  # type: ignore[no-untyped-def]
    url, ids, _ = server
    status, headers, body = _get(url + f"charts/job/{ids['bert-ft']}.svg")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml"
    assert b"chosen window" in body and b"run-now window" in body
    status, _, body = _get(url + "charts/report.svg?by=owner&since=all")
    assert status == 200 and body.count(b'class="bar"') == 8  # 4 owners x 2 series


@pytest.mark.parametrize(("path", "method", "code"), [
    ("nope", "GET", 404), ("charts/job/999.svg", "GET", 404), ("api/history?since=soon", "GET", 400),
    ("api/history?limit=-1", "GET", 400), ("api/report?by=hour", "GET", 400),
    ("api/forecast?zone=NOWHERE", "GET", 400), ("", "POST", 405), ("api/queue", "DELETE", 405),
    # every query parameter is bounded: hours=5000000 held the server for 278 s
    ("api/forecast?zone=TRACE&hours=5000000", "GET", 400), ("api/forecast?hours=abc", "GET", 400),
    ("api/forecast?hours=nan", "GET", 400), ("api/forecast?hours=-2", "GET", 400),
    ("api/history?limit=1000000000", "GET", 400), ("api/history?since=99999999d", "GET", 400),
    ("api/report?carbon_price=-5EUR/t", "GET", 400), ("api/queue?limit=5", "GET", 400),
    ("api/history?sincee=7d", "GET", 400), (f"api/forecast?zone={'Z' * 5000}", "GET", 400),
])
def test_errors_are_json_with_a_status(server, path: str, method: str, code: int) -> None:  # type: ignore[no-untyped-def]
    url, _, _ = server
    status, headers, body = _get(url + path, method)
    assert status == code
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]


def _chromium(url: str, tmp_path: Path) -> tuple[str, str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom", url,
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env)
    return proc.stdout, proc.stderr


def _console(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed: apt-get install -y chromium")
def test_chromium_sees_console_errors_of_a_broken_page(tmp_path: Path) -> None:
    """The harness itself: a page with a script error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<p id="p">x</p><script>throw new Error("deliberate-boom")</script>')
    dom, err = _chromium(bad.as_uri(), tmp_path)
    assert 'id="p"' in dom
    assert any("deliberate-boom" in ln for ln in _console(err))


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed: apt-get install -y chromium")
def test_page_loads_in_chromium_with_jobs_and_no_console_errors(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _, statuses = server
    statuses.seen.clear()
    dom, err = _chromium(url, tmp_path)
    assert '<table id="queue">' in dom and '<table id="history">' in dom
    for name in ("bert-ft", "llama-sweep", "eval", "waiting"):
        assert f"<td>{name}</td>" in dom
    assert "&lt;script&gt;" in dom  # the hostile name stayed text
    assert dom.count("<svg") >= 2
    assert _console(err) == [], "\n".join(_console(err))
    assert statuses.seen, "the server saw no request from the browser"
    bad = [(r, c) for r, c in statuses.seen if c >= 400]
    assert bad == [], bad


@pytest.mark.parametrize(("host", "code"), [
    ("localhost", 200), ("LOCALHOST:8765", 200), ("127.0.0.1:1", 200), ("[::1]:8765", 200),
    ("evil.example", 421), ("evil.example:8765", 421), ("localhost.evil.example", 421),
    ("127.0.0.1.nip.io", 421), ("[::2]", 421),
])
def test_only_loopback_host_names_are_answered(server, host: str, code: int) -> None:  # type: ignore[no-untyped-def]
    """DNS rebinding: a page of evil.example that resolves its name to 127.0.0.1 sends
    ``Host: evil.example``; it must not read the queue."""
    url, _, _ = server
    req = urllib.request.Request(url + "api/queue", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    assert status == code, body
    if code == 421:
        assert "answers only to" in json.loads(body)["error"]
        assert b"dora" not in body


def test_a_request_without_host_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    import socket
    from urllib.parse import urlsplit

    url, _, _ = server
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=20) as sock:
        sock.sendall(b"GET /api/queue HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 421"), answer[:200]
