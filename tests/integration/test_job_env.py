"""A local job knows itself: ``CARBONSHIFT_JOB_ID``, ``CARBONSHIFT_RUN_ID``,
``CARBONSHIFT_SITE`` (and ``CARBONSHIFT_PAUSE_SIGNAL`` when it checkpoints), through the real
CLI and daemon in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CODE = ("import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
        "if k.startswith('CARBONSHIFT_')}, open(sys.argv[1], 'w'))")


def test_a_local_job_sees_its_job_run_and_site(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('default_zone = "DE"\n[intensity]\nproviders = ["static"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(HOME=str(tmp_path), CARBONSHIFT_CONFIG=str(config), CARBONSHIFT_DB=str(tmp_path / "cs.db"),
               PYTHONPATH=str(REPO))

    def cs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "carbonshift", *args], env=env, cwd=str(tmp_path),
                              capture_output=True, text=True, timeout=180)

    plain = cs("submit", "--now", "--duration", "1m", "--json", "--", sys.executable, "-c", CODE,
               str(tmp_path / "a.json"))
    ckpt = cs("submit", "--now", "--duration", "1m", "--pause-mode", "checkpoint", "--pause-signal",
              "SIGUSR2", "--json", "--", sys.executable, "-c", CODE, str(tmp_path / "b.json"))
    assert plain.returncode == 0 and ckpt.returncode == 0, plain.stderr + ckpt.stderr
    run = cs("run", "--exit-when-idle")
    assert run.returncode == 0, run.stdout + run.stderr
    history = {h["id"]: h for h in json.loads(cs("history", "--json").stdout)}
    for sub, name in ((plain, "a.json"), (ckpt, "b.json")):
        job_id = json.loads(sub.stdout)["id"]
        got = json.loads((tmp_path / name).read_text())
        assert got["CARBONSHIFT_JOB_ID"] == str(job_id)
        assert got["CARBONSHIFT_RUN_ID"] == str(history[job_id]["run_id"])
        assert got["CARBONSHIFT_SITE"] == "local" and got["CARBONSHIFT_PROGRESS_FILE"]
        assert got.get("CARBONSHIFT_PAUSE_SIGNAL") == ("SIGUSR2" if name == "b.json" else None)
