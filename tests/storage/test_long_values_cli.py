"""On PostgreSQL, long values from the machine reach the database whole: a data folder of
hundreds of characters (the run's handle names it) and the offline fallback note of the
default providers (the job's plan source) used to exceed VARCHAR limits and stop all work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())"]


@pytest.mark.postgres
def test_offline_submit_and_run_with_a_deep_data_folder_on_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    data = tmp_path / ("d" * 120) / ("e" * 120) / ("f" * 60)  # a run folder of 400+ chars
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(data),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CARBONSHIFT_DB": pg_url,
        "CARBONSHIFT_DEFAULT_ZONE": "GB",
        "PYTHONPATH": str(REPO),
        "LC_ALL": "C.UTF-8",
    }

    def cs(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=timeout)

    # default providers, offline: the plan falls back to static data with a long note
    submitted = cs("submit", "--json", "--duration", "1m", "--deadline", "1h", "--",
                   sys.executable, "-c", "print('ran')")
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    ran = cs("run", "--exit-when-idle", timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "unreachable" not in ran.stdout
    shown = json.loads(cs("show", "--json", str(job_id)).stdout)
    assert shown["state"] == "succeeded", shown
    from scheduler.storage.store import open_store

    store = open_store(pg_url)
    try:
        job = store.get_job(job_id)
        runs = store.runs_for_job(job_id)
    finally:
        store.close()
    assert len(job.plan_source or "") > 100  # the note that exceeded VARCHAR(100)
    assert runs and all(r.out_path and len(r.out_path) > 200 for r in runs)
