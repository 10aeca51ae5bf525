"""A carbonshift job inside an MLflow run: once accounted, the daemon logs its energy,
emissions and saved grams to that run (real mlflow-skinny, a local file store, the real
CLI and daemon in subprocesses); a run it cannot log to is one warning, never a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.public.offline import cs, offline_env

if not os.environ.get("CI"):
    pytest.importorskip("mlflow")  # CI installs mlflow-skinny (.ci/run)

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"


def _py(env: dict[str, str], code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip().splitlines()[-1]


def test_the_daemon_logs_a_jobs_figures_to_its_mlflow_run(tmp_path: Path) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    env = offline_env(tmp_path, sampling_s=0.2)
    env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
    ml_env = {**env, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ALLOW_FILE_STORE": "true"}
    run_id = _py(ml_env, "from mlflow.tracking import MlflowClient\n"
                         "print(MlflowClient().create_run('0').info.run_id)")

    sub = cs(tmp_path, "submit", "--now", "--duration", "1m", "--json",
             "--env", f"MLFLOW_RUN_ID={run_id}", "--env", f"MLFLOW_TRACKING_URI={uri}",
             "--", sys.executable, "-c", BURN, env=env)
    assert sub.returncode == 0, sub.stderr
    job_id = json.loads(sub.stdout)["id"]
    # the second job names its run through the submitter's environment (the allow-list),
    # a run that does not exist: the daemon says so in one line and the job still succeeds
    bad = cs(tmp_path, "submit", "--now", "--duration", "1m", "--json", "--", sys.executable, "-c", "pass",
             env={**env, "MLFLOW_RUN_ID": "0123456789abcdef0123456789abcdef", "MLFLOW_TRACKING_URI": uri})
    assert bad.returncode == 0, bad.stderr
    bad_id = json.loads(bad.stdout)["id"]

    daemon = cs(tmp_path, "run", "--exit-when-idle", env={**env, "MLFLOW_ALLOW_FILE_STORE": "true"},
                timeout=300)
    assert daemon.returncode == 0, daemon.stderr[-3000:]
    history = {row["id"]: row for row in json.loads(cs(tmp_path, "history", "--format", "json", env=env).stdout)}
    assert history[job_id]["state"] == "succeeded" and history[bad_id]["state"] == "succeeded"

    metrics = json.loads(_py(ml_env, "import json\nfrom mlflow.tracking import MlflowClient\n"
                                     f"print(json.dumps(MlflowClient().get_run({run_id!r}).data.metrics))"))
    row = history[job_id]
    assert metrics["carbonshift.energy_j"] == pytest.approx(row["energy_kwh"] * 3.6e6)
    assert metrics["carbonshift.energy_j"] > 0
    assert metrics["carbonshift.emissions_g"] == pytest.approx(row["emissions_g"])
    assert metrics["carbonshift.saved_g"] == pytest.approx(row["saved_g"])
    warnings = [line for line in daemon.stderr.splitlines() if "not logged" in line]
    assert len(warnings) == 1 and "0123456789abcdef" in warnings[0], daemon.stderr[-3000:]
    assert "Traceback" not in daemon.stderr
