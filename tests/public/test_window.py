"""The clean window from code and from scripts: ``Client.best_window``,
``carbonshift.wait_for_window`` and ``carbonshift wait-window`` name the start that
``carbonshift forecast ZONE`` names, and waiting really waits until it (replayed GB March
2023 trace, accelerated clock, real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from intensity.providers.replay import SHIPPED_TRACE

REPO = Path(__file__).resolve().parents[2]
START = "2023-03-10T12:00:00Z"


def _env(tmp_path: Path, clock: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    config = tmp_path / "config.toml"
    config.write_text(f'default_zone = "GB"\n[intensity]\nproviders = ["replay"]\ntrace = "{SHIPPED_TRACE}"\n')
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), CARBONSHIFT_CLOCK=clock,
               CARBONSHIFT_CONFIG=str(config), CARBONSHIFT_DB=str(tmp_path / "cs.db"),
               PYTHONPATH=str(REPO))
    return env


def _cs(tmp_path: Path, clock: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "carbonshift", *args], env=_env(tmp_path, clock),
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("duration,deadline", [("3h", "24h"), ("1h", "6h"), ("90m", "20h")])
def test_forecast_and_the_api_name_the_same_start(tmp_path: Path, duration: str,
                                                   deadline: str) -> None:
    from scheduler.api import Client
    from scheduler.clock import ManualClock

    fc = _cs(tmp_path, f"{START}*1", "forecast", "GB", "--at", START, "--duration", duration,
             "--deadline", deadline, "--json")
    assert fc.returncode == 0, fc.stderr
    a = json.loads(fc.stdout)
    at = datetime.fromisoformat(START.replace("Z", "+00:00"))
    env = _env(tmp_path, f"{START}*1")
    with Client(env=env, clock=ManualClock(at)) as cs:
        w = cs.best_window(duration=duration, deadline=deadline, zone="GB")
    assert w.start == datetime.fromisoformat(a["best_start"].replace("Z", "+00:00"))
    assert round(w.mean_g_per_kwh, 3) == a["best_mean_g_per_kwh"]
    assert round(w.saving_pct, 2) == a["saving_pct"] and w.answer.provider == a["provider"] == "replay"


def test_wait_window_returns_the_window_it_announced(tmp_path: Path) -> None:
    # a clock a million times faster than real time: the wait is a fraction of a second
    ww = _cs(tmp_path, f"{START}*1000000", "wait-window", "--duration", "2h", "--deadline", "12h",
             "--json")
    assert ww.returncode == 0, ww.stderr
    b = json.loads(ww.stdout)
    now, start, deadline = (datetime.fromisoformat(b[k].replace("Z", "+00:00"))
                            for k in ("now", "best_start", "deadline"))
    assert now <= start and (deadline - start).total_seconds() >= 2 * 3600
    assert b["provider"] == "replay" and b["best_mean_g_per_kwh"] <= b["now_mean_g_per_kwh"]
    line = ww.stderr.strip()
    assert len(line.splitlines()) == 1 and "starts at" in line and "GB" in line


def test_wait_for_window_blocks_until_the_start_and_never_past_it(tmp_path: Path) -> None:
    # 3600x: one simulated hour per real second; the best 1 h within 4 h of 12:00 on
    # 2023-03-10 is some hours ahead, so the call must sleep about that many real seconds
    code = ("import carbonshift, json, time\n"
            "t = time.monotonic()\n"
            "w = carbonshift.wait_for_window(duration='1h', deadline='4h', zone='GB')\n"
            "print(json.dumps({'waited': time.monotonic() - t, 'start': w.start.isoformat(),"
            " 'now': w.now.isoformat(), 'deadline': w.deadline_at.isoformat()}))\n")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path, f"{START}*3600"),
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    start = datetime.fromisoformat(got["start"])
    now = datetime.fromisoformat(got["now"])
    ahead_h = (start - now).total_seconds() / 3600
    assert start <= datetime.fromisoformat(got["deadline"])
    assert got["waited"] >= ahead_h - 0.05  # it slept until the start...
    assert time.monotonic() - t0 < ahead_h + 60  # ...and returned (generous: shared machine)
    assert start.tzinfo is not None and start.astimezone(UTC) == start


def test_wait_window_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    clock = f"{START}*1000000"
    for args, needle in [(["--duration", "30h", "--deadline", "24h"], "longer than"),
                         (["--duration", "soon"], "soon"),
                         (["--duration", "1h", "--zone", "NOWHERE"], "NOWHERE")]:
        r = _cs(tmp_path, clock, "wait-window", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr
