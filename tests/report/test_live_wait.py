"""``carbonshift wait``: the live line, the projection from reported progress, the final
comparison, and the job's exit code as its own (a real job, a real daemon, the real CLI)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.dispatch import Daemon
from tests.cli.conftest import CS


@pytest.fixture
def cs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> CS:
    """The CLI runner of tests/cli (private home, replayed trace, in-process CLI)."""
    return CS(tmp_path, monkeypatch, capsys)

# a "training" job: three epochs of busy CPU, reporting progress through the protocol
JOB = (
    "import json, os, sys, time\n"
    "path = os.environ['CARBONSHIFT_PROGRESS_FILE']\n"
    "for epoch in range(1, 4):\n"
    "    end = time.time() + 1.5\n"
    "    while time.time() < end: pass\n"
    "    with open(path + '.tmp', 'w') as f: json.dump({'done': epoch, 'total': 3, 'unit': 'epoch'}, f)\n"
    "    os.replace(path + '.tmp', path)\n"
    "sys.exit(int(sys.argv[1]))\n"
)


def _daemon() -> tuple[threading.Thread, App]:
    app = App.from_cli(db=None, config=None, env=dict(os.environ))
    daemon = Daemon(app, sample_interval_s=0.2, tick_s=0.1, exit_when_idle=True, on_event=lambda s: None)
    t = threading.Thread(target=daemon.run_forever, daemon=True)
    t.start()
    return t, app


def test_wait_shows_progress_projection_and_exits_with_the_job_code(cs: CS) -> None:
    r = cs("submit", "--now", "--duration", "5m", "--name", "epochs", "--json", "--",
           sys.executable, "-c", JOB, "0")
    assert r.code == 0, r.err
    job_id = __import__("json").loads(r.out)["id"]
    t, app = _daemon()
    try:
        r = cs("wait", str(job_id), "--interval", "0.2")
    finally:
        t.join(30)
        app.close()
    assert r.code == 0, r.err
    lines = r.err.splitlines()
    running = [ln for ln in lines if " running " in ln]
    assert running, r.err
    assert any(" W, " in ln and "Wh so far" in ln and "g/kWh now" in ln for ln in running), running
    assert any("projected" in ln and "epoch" in ln and "/3)" in ln for ln in running), running
    final = lines[-1]
    assert final.startswith(f"job {job_id} succeeded (exit 0): ") and "Wh" in final and "saved" in final
    assert "projected" in final and "% done" in final
    # the projection was stored, and show compares it with the final figure
    r = cs("show", str(job_id))
    assert "the projection was" in r.out


def test_wait_exits_with_a_failing_job_code(cs: CS) -> None:
    r = cs("submit", "--now", "--duration", "5m", "--json", "--", sys.executable, "-c", JOB, "7")
    job_id = __import__("json").loads(r.out)["id"]
    t, app = _daemon()
    try:
        r = cs("wait", str(job_id), "--interval", "0.2", "--quiet")
    finally:
        t.join(30)
        app.close()
    assert r.code == 7
    assert r.err == ""
    # --json: the history row at the end, on stdout, and still the job's code
    r = cs("wait", str(job_id), "--json")
    data = __import__("json").loads(r.out)
    assert r.code == 7 and data["wait_exit_code"] == 7 and data["exit_code"] == 7
    assert data["state"] == "failed" and data["energy_kwh"] is not None
