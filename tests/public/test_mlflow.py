"""Inside an active MLflow run, a measured block logs its figures as metrics (real
mlflow-skinny against a local file store, in a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

if not os.environ.get("CI"):
    pytest.importorskip("mlflow")  # CI installs mlflow-skinny (.ci/run)


def test_a_measured_block_logs_energy_emissions_and_saved_grams_to_the_active_run(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('default_zone = "DE"\ncpu_w_per_core = 10.0\nsampling_interval_s = 0.1\n'
                      '[intensity]\nproviders = ["static"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBONSHIFT_", "MLFLOW_"))}
    env.update(HOME=str(tmp_path), CARBONSHIFT_CONFIG=str(config), CARBONSHIFT_DB=str(tmp_path / "cs.db"),
               PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=(tmp_path / "mlruns").as_uri(),
               MLFLOW_ALLOW_FILE_STORE="true")
    code = """
import time, mlflow, carbonshift
with mlflow.start_run() as run:
    with carbonshift.measure(name="eval") as m:
        t = time.process_time()
        while time.process_time() - t < 0.3: pass
print(run.info.run_id, m.energy_j, m.emissions_g)
with carbonshift.measure(name="outside-any-run"):
    pass
"""
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run_id, energy_j, emissions_g = r.stdout.split()[-3:]
    check = f"""
import json, mlflow
print(json.dumps(mlflow.tracking.MlflowClient().get_run({run_id!r}).data.metrics))
"""
    got = subprocess.run([sys.executable, "-c", check], env=env, cwd=str(tmp_path), capture_output=True,
                         text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    metrics = json.loads(got.stdout.strip().splitlines()[-1])
    assert metrics["carbonshift.eval.energy_j"] == pytest.approx(float(energy_j))
    assert metrics["carbonshift.eval.emissions_g"] == pytest.approx(float(emissions_g))
    assert metrics["carbonshift.eval.saved_g"] == 0.0
    assert not any("outside" in k for k in metrics)
