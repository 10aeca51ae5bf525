"""The Hugging Face and Lightning callbacks with the real libraries, in real processes:
outside carbonshift they measure the training into history; as a carbonshift job they report
progress through ``CARBONSHIFT_PROGRESS_FILE`` and, on the checkpoint signal, save and stop
cleanly, and the relaunched command resumes from that checkpoint and finishes."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("train_scripts.py")

pytestmark = pytest.mark.slow

_MISSING = [m for m in ("torch", "transformers", "accelerate", "lightning")
            if importlib.util.find_spec(m) is None]
if _MISSING and not os.environ.get("CI"):  # CI installs them (.ci/run): there, missing is a failure
    pytest.skip(f"needs {', '.join(_MISSING)} (installed by .ci/run)", allow_module_level=True)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    config = tmp_path / "config.toml"
    config.write_text('default_zone = "DE"\nsampling_interval_s = 0.2\n[intensity]\nproviders = ["static"]\n')
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), CARBONSHIFT_CONFIG=str(config),
               CARBONSHIFT_DB=str(tmp_path / "cs.db"), PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def _result(stdout: str) -> dict[str, object]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["hf", "lightning"])
def test_outside_carbonshift_the_callback_measures_the_training(tmp_path: Path, kind: str) -> None:
    """Then, in the same process (one import of the library), a training whose third step
    raises: as :func:`carbonshift.measure` does, its run fails with the exception's type in
    history, and the exception reaches the caller of ``train``/``fit``."""
    r = subprocess.run([sys.executable, str(SCRIPT), kind, str(tmp_path / "out"), "8", "0.05", f"{kind}-tiny"],
                       env=_env(tmp_path, THEN_RAISE_AT="3"), cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "FloatingPointError: loss diverged at step 3" in r.stderr, r.stderr[-3000:]
    got = _result(r.stdout)
    assert got["step"] == 8 and got["paused"] is False
    m = got["measurement"]
    assert isinstance(m, dict) and m["energy_j"] > 0 and m["job_id"] and m["kind"]  # type: ignore[operator]
    h = subprocess.run([sys.executable, "-m", "carbonshift", "history", "--format", "json"],
                       env=_env(tmp_path), cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    rows = sorted(json.loads(h.stdout), key=lambda row: row["id"])
    assert [(row["name"], row["state"]) for row in rows] == [(f"{kind}-tiny", "succeeded"), (f"{kind}-boom", "failed")]
    show = subprocess.run([sys.executable, "-m", "carbonshift", "show", str(rows[1]["id"])],
                          env=_env(tmp_path), cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert "FloatingPointError: loss diverged at step 3" in show.stdout, show.stdout


@pytest.mark.parametrize("kind", ["hf", "lightning"])
def test_as_a_job_it_reports_progress_checkpoints_on_the_pause_signal_and_resumes(
        tmp_path: Path, kind: str) -> None:
    progress = tmp_path / "progress.json"
    env = _env(tmp_path, CARBONSHIFT_PROGRESS_FILE=str(progress))
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), kind, str(out), "40", "0.25"]
    proc = subprocess.Popen(cmd, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    seen: dict[str, object] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            seen = json.loads(progress.read_text())
        except (OSError, ValueError):
            seen = {}
        if seen and float(seen["done"]) >= 3:  # type: ignore[arg-type]
            break
        time.sleep(0.1)
    assert seen and seen["total"] == 40 and seen["unit"] == "step", proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGUSR1)  # what carbonshift sends a checkpointing job to pause
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]
    first = _result(stdout)
    assert first["paused"] is True and 3 <= int(first["step"]) < 40  # type: ignore[call-overload]
    assert first["measurement"] is None  # inside a job the job's own measurement counts
    # the relaunch (carbonshift runs the same command again) resumes and finishes
    r = subprocess.run([*cmd[:-1], "0.0"], env=env, cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    second = _result(r.stdout)
    assert second["resumed_from"] and second["step"] == 40 and second["paused"] is False
    assert json.loads(progress.read_text())["done"] == 40
    assert not (tmp_path / "cs.db").exists()  # nothing recorded from inside a job
