"""examples/slurm/submit.sh: a Slurm site and a job planned on it (no Slurm needed to plan)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "slurm" / "submit.sh"


def test_script_is_valid_shell() -> None:
    assert subprocess.run(["sh", "-n", str(SCRIPT)], timeout=10).returncode == 0
    text = SCRIPT.read_text()
    assert "site add" in text and "--executor slurm" in text and "--site" in text


@pytest.mark.skipif(importlib.util.find_spec("scheduler.cli.site") is None,
                    reason="`carbonshift site` is not in this tree yet (the sites issue adds it)")
def test_script_adds_the_site_and_plans_the_job_on_it(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "carbonshift"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; from scheduler.cli import main; sys.exit(main())" "$@"\n')
    shim.chmod(0o755)
    config = tmp_path / "config.toml"
    config.write_text('[intensity]\nproviders = ["static"]\n')  # offline: no provider is asked
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update({
        "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}", "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT), "CARBONSHIFT_DB": str(tmp_path / "cs.db"),
        "CARBONSHIFT_CONFIG": str(config),
        "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
    })
    assert shutil.which("carbonshift", path=env["PATH"]) == str(shim)
    out = subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    job = json.loads((tmp_path / "job.json").read_text())
    assert job["site"] == "gpu-cluster" and job["zone"] == "DE"
    assert job["planned_start"] and "llama-ft" in out.stdout
    assert "static" in job["plan_source"]
