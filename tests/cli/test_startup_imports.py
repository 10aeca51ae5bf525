"""What `carbonshift submit` imports decides its start-up time (issue 2: <= 0.5 s): the HTTP
stack (`requests`, ~0.1 s) only when a provider is really asked, the local forecaster only
when a forecast must be made or extended, never the ORM. One decision (`forecast ZONE
--json`, issue 18: no dearer than CATS's whole CLI) served from the cache imports no
SQLAlchemy at all (the cache is read through the stdlib side door, scheduler/storage/lite.py),
and no rich or numpy; nor does a submit on an SQLite file whose forecast is cached (its reads and
its one write go through the stdlib side door too, scheduler/storage/sql/fast_sqlite.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from intensity.model import IntensityPoint, Kind, Source
from scheduler.storage.store import open_store

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("requests", "urllib3", "intensity.forecast", "sqlalchemy.orm", "rich")
DECISION_HEAVY = ("requests", "urllib3", "sqlalchemy", "sqlalchemy.orm", "rich", "numpy")

PROBE = """
import json, sys
from scheduler.cli import main
code = main(sys.argv[2:])
print(json.dumps({"code": code, "loaded": [m for m in json.loads(sys.argv[1]) if m in sys.modules]}))
"""


def _run(tmp_path: Path, config: str, *args: str, heavy: tuple[str, ...] = HEAVY) -> tuple[dict[str, object], str]:
    """The CLI's exit code and which of ``heavy`` it loaded, and what it printed before."""
    (tmp_path / "config.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(HOME=str(tmp_path), CARBONSHIFT_CONFIG=str(tmp_path / "config.toml"),
               CARBONSHIFT_DB=str(tmp_path / "cs.db"), PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(heavy), *args], env=env, cwd=str(REPO),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    *printed, probe = r.stdout.strip().splitlines()
    return json.loads(probe), "\n".join(printed)


def _submit(tmp_path: Path, config: str, heavy: tuple[str, ...] = HEAVY) -> dict[str, object]:
    return _run(tmp_path, config, "submit", "--duration", "1h", "--deadline", "12h", "--", "true",
                heavy=heavy)[0]


def test_a_submit_served_from_a_fresh_cached_forecast_imports_nothing_heavy(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'cs.db'}")
    now = datetime.now(UTC)
    store.add_points([
        IntensityPoint("GB", now + timedelta(minutes=30 * i - 30), now + timedelta(minutes=30 * i),
                       150.0 + i, Kind.FORECAST, "ukgrid", issued_at=now, source=Source.PROVIDER)
        for i in range(100)
    ])
    store.close()
    got = _submit(tmp_path, 'default_zone = "GB"\n[intensity]\nproviders = ["ukgrid"]\n', DECISION_HEAVY)
    assert got == {"code": 0, "loaded": []}
    store = open_store(f"sqlite:///{tmp_path / 'cs.db'}")
    [job] = store.list_jobs()
    assert job.argv == ["true"] and [e.kind for e in store.events_for_job(job.id or 0)] == ["submitted"]
    store.close()


def test_a_submit_while_the_provider_backs_off_does_not_load_the_http_stack(tmp_path: Path) -> None:
    config = ('default_zone = "GB"\n[intensity]\nproviders = ["ukgrid"]\n'
              '[providers.ukgrid]\nbase_url = "http://carbonshift-offline.invalid"\n')
    first = _submit(tmp_path, config)
    assert "requests" in first["loaded"]  # type: ignore[operator]  # it was asked, and failed
    assert _submit(tmp_path, config)["loaded"] == []  # the static table at once: no HTTP


def test_a_forecast_decision_from_the_cache_loads_no_sqlalchemy_rich_or_numpy(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    first = now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)
    trace = tmp_path / "GB_fw48h.csv"  # 48 h of half-hours from the current one
    trace.write_text("time,intensity_g_per_kwh\n" + "".join(
        f"{(first + timedelta(minutes=30 * i)).strftime('%Y-%m-%dT%H:%MZ')},{120 + (i * 37) % 90}\n"
        for i in range(96)))
    args = ("--replay", f"GB={trace}", "forecast", "GB", "--json", "--duration", "3h", "--deadline", "24h")
    config = 'default_zone = "GB"\n'
    # the replay provider answers: its points are stored (the store: SQLAlchemy core, no ORM)
    loaded, printed = _run(tmp_path, config, *args, heavy=DECISION_HEAVY)
    assert loaded == {"code": 0, "loaded": ["sqlalchemy"]}
    assert json.loads(printed)["link"] == "provider"
    # then the same decision from the cache, read through sqlite3 alone
    loaded, printed = _run(tmp_path, config, *args, heavy=DECISION_HEAVY)
    assert loaded == {"code": 0, "loaded": []}
    cached = json.loads(printed)
    assert (cached["link"], cached["provider"], cached["fallback"]) == ("cache", "replay", False)
    assert cached["best_mean_g_per_kwh"] <= cached["now_mean_g_per_kwh"]
    assert len(cached["points"]) >= 95


def test_history_and_report_of_an_sqlite_file_load_no_sqlalchemy(tmp_path: Path) -> None:
    """Finished jobs are read through the stdlib side door in one query (issue 18)."""
    from scheduler.model import Job, JobState, Run

    now = datetime.now(UTC)
    store = open_store(f"sqlite:///{tmp_path / 'cs.db'}")
    [job_id] = store.add_jobs([Job(name="done", argv=["true"], duration_s=60, zone="GB", submitted_at=now,
                                   earliest_start=now, latest_start=now, deadline_at=None,
                                   state=JobState.SUCCEEDED)])
    store.add_run(Run(job_id=job_id, site="local", executor="local", started_at=now, finished_at=now,
                      exit_code=0, state=JobState.SUCCEEDED))
    store.close()
    heavy = ("sqlalchemy", "rich", "numpy")
    loaded, printed = _run(tmp_path, "", "history", "--json", heavy=heavy)
    assert loaded == {"code": 0, "loaded": []}
    assert [(r["name"], r["exit_code"]) for r in json.loads(printed)] == [("done", 0)]
    loaded, printed = _run(tmp_path, "", "report", "--since", "all", "--json", heavy=heavy)
    assert loaded == {"code": 0, "loaded": []}
    assert json.loads(printed)["total"]["jobs"] == 1
