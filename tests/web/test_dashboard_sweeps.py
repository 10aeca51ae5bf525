"""Sweeps on the dashboard: a table with the CLI's columns, ``/api/sweeps`` and
``/api/report?by=sweep``, on the history of tests/report/sweep_seed.py."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest

from scheduler.app import App
from scheduler.clock import SystemClock
from scheduler.config import load_settings
from scheduler.web.server import make_server
from tests.report.sweep_seed import seed_sweeps


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("dash-sweeps")
    db = tmp / "dash.db"
    seed_sweeps(db)
    settings = load_settings(env={"HOME": str(tmp)}, overrides={
        "db": f"sqlite:///{db}", "data_dir": str(tmp / "data"), "default_zone": "TRACE"})
    app = App(settings, env={}, clock=SystemClock())
    srv = make_server(app, port=0, tz=UTC, since="all")
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield srv.url
    finally:
        srv.shutdown()
        srv.server_close()
        app.close()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=20) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def test_api_sweeps_gives_one_summary_per_sweep_newest_first(url: str) -> None:
    rows = _get(url + "api/sweeps?since=all")
    assert isinstance(rows, list)
    assert [(r["kind"], r["ref"], r["state"]) for r in rows] == [("sweep", "s2", "waiting"), ("sweep", "s1", "running")]
    s1 = rows[1]
    assert [s1[k] for k in ("done", "failed", "running", "waiting", "skipped")] == [2, 1, 1, 0, 1]
    assert s1["emissions_g"] == pytest.approx(450.0) and s1["saved_g"] == pytest.approx(300.0)
    assert s1["budget_used_pct"] == pytest.approx(51.0)
    assert [r["ref"] for r in _get(url + "api/sweeps?since=all&limit=1")] == ["s2"]
    rep = _get(url + "api/report?by=sweep&since=all")
    assert isinstance(rep, dict)
    assert [(r["key"], (r["sweep"] or {}).get("skipped")) for r in rep["rows"]] == [("s1", 1), ("s2", 0), ("-", None)]


def test_page_shows_sweeps_with_the_cli_columns_and_no_trial_rows(url: str) -> None:
    with urllib.request.urlopen(url, timeout=20) as resp:
        page = resp.read().decode()
    sweeps = page[page.index('<table id="sweeps">'):]
    sweeps = sweeps[:sweeps.index("</table>")]
    for header in ("sweep", "trials", "saved", "budget used"):
        assert f"<th>{header}</th>" in sweeps
    assert "<td>2 done, 1 failed, 1 running, 1 skipped of 5</td>" in sweeps
    assert "<td>510 g of 1.00 kg (51%)</td>" in sweeps and "<td>3 waiting of 3</td>" in sweeps
    # trials are rows of their sweep, not of the queue or the history
    assert "lr-search[" not in page and "seeds[" not in page
    assert "<td>solo</td>" in page and "<td>eval</td>" in page
