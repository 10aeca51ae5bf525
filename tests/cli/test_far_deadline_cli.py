"""Far deadlines: more than a year ahead is refused like a duration over a year; within the
year, planning asks for no more forecast than the planning horizon, so its cost does not
grow with the deadline's distance (a 2100 deadline used to cost 17 s and 490 MB)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.model import Policy
from scheduler.planner import MAX_FORECAST_HORIZON_S
from scheduler.storage.store import open_store
from tests.cli.conftest import write_retimed_trace

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())"]


@pytest.fixture
def cs(tmp_path: Path):  # type: ignore[no-untyped-def]
    # a replay of 27 real days ahead: the points the planner asked for are stored
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    trace = write_retimed_trace(tmp_path / "trace.csv", now - timedelta(days=1))
    config = tmp_path / "config.toml"
    config.write_text(f'default_zone = "TRACE"\n[intensity]\nproviders = ["replay"]\n'
                      f'trace = "{trace}"\n')
    db = tmp_path / "cs.db"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "data"), "CARBONSHIFT_CONFIG": str(config),
           "CARBONSHIFT_DB": str(db),
           "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    run.db = db  # type: ignore[attr-defined]
    return run


def stored_points(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM intensity_points").fetchone()[0])


@pytest.mark.parametrize("argv", [
    ["submit", "--duration", "1h", "--deadline", "2100-01-01T00:00Z", "--", "true"],
    ["submit", "--duration", "1h", "--latest-start", "9999-01-01T00:00Z", "--", "true"],
    ["policy", "set", "far", "--deadline", "9999-12-31T00:00Z"],
    ["policy", "set", "far", "--latest-start", "2100-01-01T00:00Z"],
    ["forecast", "TRACE", "--duration", "1h", "--deadline", "2100-01-01T00:00Z"],
], ids=["submit-deadline", "submit-latest-start", "policy-deadline", "policy-latest-start",
        "forecast"])
def test_a_time_more_than_a_year_ahead_is_refused(cs, argv: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = cs(*argv)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "more than a year ahead" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    if cs.db.exists():
        with sqlite3.connect(cs.db) as conn:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM policies").fetchone() == (0,)


def test_a_300_day_deadline_plans_on_the_planning_horizon(cs) -> None:  # type: ignore[no-untyped-def]
    result = cs("submit", "--duration", "1h", "--deadline", "300d", "--", "true")
    assert result.returncode == 0, result.stderr
    # the forecast asked for covers the planning horizon, not all 27 days of the trace
    assert 0 < stored_points(cs.db) <= MAX_FORECAST_HORIZON_S // 3600 + 2


def test_a_far_policy_stored_before_the_bound_still_plans_on_the_horizon(cs) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{cs.db}")
    far = datetime.now(UTC) + timedelta(days=365 * 70)
    store.put_policy(Policy("far", deadline_at=far))  # as older carbonshift accepted it
    store.close()
    result = cs("submit", "--policy", "far", "--duration", "1h", "--", "true")
    assert result.returncode == 0, result.stderr
    assert 0 < stored_points(cs.db) <= MAX_FORECAST_HORIZON_S // 3600 + 2
