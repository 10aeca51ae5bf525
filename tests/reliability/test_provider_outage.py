"""Every intensity provider failing for hours: work goes on, on fallback data, and says so.

Both live providers (``ukgrid`` and ``electricitymaps``) point at a local HTTP server that
answers, in turn, 500, garbage, 401 and 403, a wrong JSON shape, and nothing in time
(slower than the configured ``timeout_s``). A daemon on an accelerated clock (1 real s =
20 simulated min) runs jobs planned over four simulated hours: each starts and finishes
by its deadline, its plan source names the fallback, and the token never reaches the
database or the events.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from intensity.http import HttpClient, RetryPolicy, shared_session
from scheduler.app import App
from scheduler.clock import AcceleratedClock
from scheduler.config import load_settings
from scheduler.history import history_rows
from scheduler.model import JobState
from tests.integration.conftest import ORIGIN, burn, request, run_daemon

pytestmark = pytest.mark.slow

TOKEN = "em-secret-token-5f2a9c"
MODES = ("500", "garbage", "401", "timeout", "shape", "403")


@pytest.fixture
def failing(httpserver: HTTPServer) -> tuple[HTTPServer, list[str]]:
    seen: list[str] = []
    counter = itertools.count()

    def handler(req: Request) -> Response:
        mode = MODES[next(counter) % len(MODES)]
        seen.append(mode)
        if mode == "500":
            return Response("upstream exploded " + TOKEN, status=500)
        if mode == "garbage":
            return Response(b"\x00\xffnot json at all", status=200, content_type="application/json")
        if mode in ("401", "403"):
            return Response(json.dumps({"error": f"bad token {TOKEN}"}), status=int(mode))
        if mode == "timeout":
            time.sleep(0.4)
            return Response("{}", status=200)
        return Response(json.dumps({"data": "nonsense", "forecast": 7}), status=200,
                        content_type="application/json")



    httpserver.expect_request(re.compile(".*")).respond_with_handler(handler)
    return httpserver, seen


def _app(tmp_path: Path, base_url: str) -> App:
    settings = load_settings(
        env={"HOME": str(tmp_path)},
        overrides={"db": f"sqlite:///{tmp_path / 'cs.db'}", "data_dir": str(tmp_path / "data"),
                   "default_zone": "GB", "replan_interval_s": 1800.0},
    )
    settings = replace(
        settings,
        intensity={**settings.intensity, "providers": ["ukgrid", "electricitymaps"], "timeout_s": 0.2},
        providers={"ukgrid": {"base_url": base_url},
                   "electricitymaps": {"base_url": base_url, "token": TOKEN, "zones": ["GB"]}},
    )
    app = App(settings, env={"PATH": "/usr/bin:/bin"})
    _ = app.store
    return app


def test_jobs_meet_deadlines_on_fallback_data_while_every_provider_fails(
    tmp_path: Path, failing: tuple[HTTPServer, list[str]]
) -> None:
    server, seen = failing
    app = _app(tmp_path, server.url_for("").rstrip("/"))
    try:
        service = app.intensity
        assert [p.name for p in service.providers] == ["ukgrid", "electricitymaps"]
        for p in service.providers:
            # the configured timeout_s reaches the HTTP client
            assert p.http.read_timeout_s == pytest.approx(0.2)  # type: ignore[attr-defined]
            # no real sleeping between retries, so the accelerated clock is not starved
            p.http = HttpClient(shared_session(), connect_timeout_s=0.2, read_timeout_s=0.2,  # type: ignore[attr-defined]
                                retry=RetryPolicy(max_attempts=2, backoff_base_s=0.0), sleep=lambda s: None)
        app.clock = AcceleratedClock(ORIGIN, 1200.0)
        now = app.clock.now()
        ids = []
        for i, after_h in enumerate((0, 1, 2, 3)):
            req = request(burn(0.3), duration="30m", deadline_s=int((after_h + 2) * 3600), name=f"j{i}")
            req.not_before = now + timedelta(hours=after_h) if after_h else None
            res = app.queue.submit(req, now=now)
            assert res.fallback, res.plan_source
            ids.append(res.job.id)
        _, lines = run_daemon(app, timeout_s=90)
        assert len(seen) >= 12, seen  # the providers were tried again and again, and failed
        assert set(seen) >= {"500", "garbage", "401"}
        rows = {r.id: r for r in history_rows(app.store)}
        for job_id in ids:
            job = app.store.get_job(job_id)  # type: ignore[arg-type]
            assert job.state is JobState.SUCCEEDED, lines
            run = app.store.runs_for_job(job_id)[-1]  # type: ignore[arg-type]
            assert job.deadline_at is not None and run.finished_at is not None
            assert run.finished_at <= job.deadline_at, (job.name, run.finished_at, job.deadline_at)
            row = rows[job_id]  # type: ignore[index]
            assert row.plan_source and "static" in row.plan_source, row.plan_source
            assert "failed" in row.plan_source  # why the providers were skipped
            assert row.note and "fallback" in row.note
        # the token never reached the database (events, notes, plan sources, points)
        app.close()
        for f in tmp_path.glob("cs.db*"):
            assert TOKEN.encode() not in f.read_bytes(), f
        assert all(TOKEN not in ln for ln in lines)
    finally:
        app.close()
