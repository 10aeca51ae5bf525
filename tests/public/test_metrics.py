"""Prometheus metrics, scraped over real HTTP and read with prometheus_client's own text
parser: ``carbonshift run --metrics-port`` (the real daemon in a subprocess, a real job) and
the dashboard's ``/metrics``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.public.offline import cs, offline_env


def _env(tmp_path: Path) -> dict[str, str]:
    return offline_env(tmp_path, sampling_s=0.2)


def _cs(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cs(tmp_path, *args, env=_env(tmp_path))


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return resp.read().decode()


def _read_port(log: Path, what: str) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(rf"{what}\s+on http://127\.0\.0\.1:(\d+)/", log.read_text() if log.exists() else "")
        if m:
            return int(m.group(1))
        time.sleep(0.1)
    raise AssertionError(f"no {what} port in the log:\n{log.read_text()}")


def test_the_daemon_serves_metrics_of_the_queue_it_runs(tmp_path: Path) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
    sub = _cs(tmp_path, "submit", "--now", "--name", "m1", "--duration", "1m", "--json", "--",
              sys.executable, "-c", burn)
    assert sub.returncode == 0, sub.stderr
    job_id = json.loads(sub.stdout)["id"]
    log = tmp_path / "daemon.log"
    with open(log, "w") as fh:
        daemon = subprocess.Popen([sys.executable, "-m", "carbonshift", "run", "--metrics-port", "0"],
                                  env=_env(tmp_path), cwd=str(tmp_path), stdout=fh, stderr=subprocess.STDOUT)
    try:
        port = _read_port(log, "metrics")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            got = _samples(_scrape(f"http://127.0.0.1:{port}/metrics"))
            if got.get(("carbonshift_jobs", (("state", "succeeded"),))) == 1:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(log.read_text())
        assert got[("carbonshift_jobs", (("state", "pending"),))] == 0
        assert got[("carbonshift_energy_joules_total", (("site", "local"),))] > 0
        assert got[("carbonshift_emissions_grams_total", (("site", "local"),))] > 0
        assert ("carbonshift_saved_grams", (("site", "local"),)) in got
        assert got[("carbonshift_last_plan_timestamp_seconds", ())] > 0
        assert any(name == "carbonshift_plan_source_info" for name, _ in got)
        intensity = [(labels, v) for (name, labels), v in got.items()
                     if name == "carbonshift_intensity_g_per_kwh"]
        assert intensity and dict(intensity[0][0])["zone"] == "DE" and intensity[0][1] > 0
        hist = json.loads(_cs(tmp_path, "history", "--format", "json").stdout)
        assert [(h["id"], h["state"]) for h in hist] == [(job_id, "succeeded")]
        assert got[("carbonshift_emissions_grams_total", (("site", "local"),))] == pytest.approx(hist[0]["emissions_g"])
    finally:
        daemon.terminate()
        daemon.wait(30)


def test_the_dashboard_serves_the_same_metrics(tmp_path: Path) -> None:
    log = tmp_path / "dash.log"
    with open(log, "w") as fh:
        dash = subprocess.Popen([sys.executable, "-m", "carbonshift", "dashboard", "--port", "0"],
                                env=_env(tmp_path), cwd=str(tmp_path), stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        port = None
        while time.monotonic() < deadline and port is None:
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
            port = int(m.group(1)) if m else None
            time.sleep(0.1)
        assert port, log.read_text()
        got = _samples(_scrape(f"http://127.0.0.1:{port}/metrics"))
        assert got[("carbonshift_jobs", (("state", "succeeded"),))] == 0
    finally:
        dash.terminate()
        dash.wait(30)


def test_a_busy_metrics_port_is_one_line_exit_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _cs(tmp_path, "run", "--exit-when-idle", "--metrics-port", str(port))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"--metrics-port {port}" in r.stderr and len(r.stderr.strip().splitlines()) == 1
