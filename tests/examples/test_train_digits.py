"""examples/train_digits: a real PyTorch job, resumable, run through carbonshift.

Needs ``torch`` and ``scikit-learn`` (CI: ``pip install torch==2.13.0 scikit-learn``);
skipped with that reason when either is missing. Importing torch costs a few seconds of
CPU, so the tests that train are marked ``slow``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "examples" / "train_digits" / "train.py"
HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "sklearn"))
needs_torch = pytest.mark.skipif(
    not HAVE_TORCH, reason="torch and scikit-learn are not installed: pip install torch==2.13.0 scikit-learn"
)


def _train_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_digits_example", TRAIN)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_arguments_are_checked_before_torch_is_imported() -> None:
    out = subprocess.run([sys.executable, str(TRAIN), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--checkpoint-dir" in out.stdout
    bad = subprocess.run([sys.executable, str(TRAIN), "--epochs", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--epochs" in bad.stderr


def test_submit_script_is_valid_shell() -> None:
    script = ROOT / "examples" / "train_digits" / "submit.sh"
    assert subprocess.run(["sh", "-n", str(script)], timeout=10).returncode == 0
    assert "--interruptible" in script.read_text() and "CARBONSHIFT" in script.read_text()


@needs_torch
@pytest.mark.slow
def test_resumed_training_ends_exactly_like_an_uninterrupted_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = _train_module()
    progress = tmp_path / "progress.json"
    straight, resumed = tmp_path / "a.json", tmp_path / "b.json"
    assert train.main(["--epochs", "3", "--checkpoint-dir", str(tmp_path / "a"), "--metrics", str(straight)]) == 0
    assert train.main(["--epochs", "2", "--checkpoint-dir", str(tmp_path / "b")]) == 0
    import os

    os.environ["CARBONSHIFT_PROGRESS_FILE"] = str(progress)
    try:
        assert train.main(["--epochs", "3", "--checkpoint-dir", str(tmp_path / "b"), "--metrics", str(resumed)]) == 0
    finally:
        del os.environ["CARBONSHIFT_PROGRESS_FILE"]
    out = capsys.readouterr().out
    assert '{"resumed_from_epoch": 2}' in out
    a, b = json.loads(straight.read_text()), json.loads(resumed.read_text())
    assert a == b  # same loss, accuracy and weights, bit for bit
    assert a["test_accuracy"] > 0.85
    assert json.loads(progress.read_text()) == {"done": 3, "total": 3, "unit": "epoch"}
    assert not list(tmp_path.glob("**/*.tmp*"))
    # a checkpoint past --epochs is another run's: refused, not a success that trained nothing
    assert train.main(["--epochs", "2", "--checkpoint-dir", str(tmp_path / "b")]) == 2
    assert "past --epochs 2" in capsys.readouterr().err


@needs_torch
@pytest.mark.slow
def test_digits_job_with_a_deadline_is_measured_and_in_history(tmp_path: Path) -> None:
    from scheduler import Client
    from scheduler.clock import AcceleratedClock
    from tests.cli.conftest import write_retimed_trace

    origin = datetime(2026, 3, 15, 17, 0, tzinfo=UTC)
    trace = write_retimed_trace(tmp_path / "trace.csv", origin - timedelta(days=2))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'default_zone = "TRACE"\n[intensity]\nproviders = ["replay"]\ntrace = "{trace}"\n')
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "CARBONSHIFT_CONFIG": str(cfg),
           "CARBONSHIFT_DATA_DIR": str(tmp_path / "data")}
    # 1 real second = 30 simulated minutes: the job's few seconds are a few hours
    with Client(str(tmp_path / "cs.db"), env=env, clock=AcceleratedClock(origin, 1800.0)) as cs:
        job = cs.submit([sys.executable, str(TRAIN), "--epochs", "6", "--epoch-sleep", "0.3"],
                        duration="3h", deadline="8h", interruptible=True, name="digits",
                        cwd=str(tmp_path))
        assert job.id is not None and job.planned_start is not None
        assert job.expected_g is not None and job.run_now_g is not None
        t = threading.Thread(target=cs.run, kwargs={"sample_interval_s": 0.2, "tick_s": 0.1}, daemon=True)
        t.start()
        code = cs.wait(job.id, timeout=240, poll_s=0.2)
        t.join(30)
        assert code == 0, cs.logs(job.id, stream="err")
        assert "final test accuracy" in cs.logs(job.id)
        (row,) = cs.history()
        assert row.state == "succeeded" and row.exit_code == 0
        assert row.started_at is not None and row.started_at >= job.planned_start - timedelta(minutes=5)
        assert row.energy_kwh is not None and row.energy_kwh > 0
        assert row.energy_method and row.emissions_g is not None and row.emissions_g > 0
        assert row.counterfactual_g is not None and row.intensity_kind in ("actual", "mixed", "forecast")
        # the checkpoints are the run's own, beside its logs, not in the job's folder
        assert not list(tmp_path.glob("*.ckpt"))
        assert len(list((tmp_path / "data" / "logs").rglob("run-*.checkpoints/digits.ckpt"))) == 1
        # the waiter recorded projections from the reported epochs; show compares them
        details = cs.show(job.id)
        assert details.projections, [e.kind for e in details.events]
        assert any("epoch" in p.message for p in details.projections)
        rep = cs.report(since=None, by="policy")
        assert rep.total.jobs == 1 and rep.total.energy_kwh == pytest.approx(row.energy_kwh)


@needs_torch
@pytest.mark.slow
def test_digits_job_is_paused_by_checkpoint_and_resumed_exactly(tmp_path: Path) -> None:
    """On the dirty-middle trace the daemon sends SIGUSR1 at 18:00; the job ends its epoch,
    checkpoints and exits; at 19:00 it is launched again and resumes from that epoch, so
    no epoch is lost or done twice."""
    from scheduler.model import JobState
    from scheduler.queue import SubmitRequest
    from tests.integration.conftest import make_app, run_daemon
    from tests.integration.test_interruptible import FACTOR, ORIGIN, dirty_middle_trace

    # 1 simulated hour = 10 real seconds: torch takes seconds to import on a busy machine
    app = make_app(tmp_path, factor=FACTOR / 2, origin=ORIGIN, trace=dirty_middle_trace(tmp_path / "t.csv"))
    try:
        # no --checkpoint-dir: the run's own folder, the same for both launches of the run
        argv = [sys.executable, str(TRAIN), "--epochs", "20",
                "--epoch-sleep", "0.6", "--metrics", str(tmp_path / "paused.json")]
        from scheduler.model import Policy

        res = app.queue.submit(SubmitRequest(
            argv=argv, duration_s=2 * 3600, name="digits", cwd=str(tmp_path),
            overrides=Policy(name="(flags)", deadline_s=4 * 3600), pause_mode="checkpoint",
            pause_grace_s=60.0, submitter_env={"PATH": "/usr/bin:/bin"},
        ))
        assert len(res.entry.intervals) == 2
        _, lines = run_daemon(app, timeout_s=120)
        job_id = res.job.id
        assert job_id is not None and app.store.get_job(job_id).state is JobState.SUCCEEDED, lines
        (run,) = app.store.runs_for_job(job_id)
        out = Path(run.out_path).read_text()  # type: ignore[arg-type]
        paused_at = json.loads(next(ln for ln in out.splitlines() if "paused_after_epoch" in ln))
        resumed = json.loads(next((ln for ln in out.splitlines() if "resumed_from_epoch" in ln), "{}"))
        assert resumed, out
        assert resumed["resumed_from_epoch"] == paused_at["paused_after_epoch"] > 0, out
        assert [iv.how for iv in app.store.run_intervals(run.id)] == ["checkpointed: exit 0", "exit 0"]  # type: ignore[arg-type]
        # every epoch ran exactly once across the two processes (the existing test above
        # shows that such a resumed run ends with the weights of an uninterrupted one)
        epochs = [json.loads(ln)["epoch"] for ln in out.splitlines() if ln.startswith('{"epoch"')]
        assert epochs == list(range(1, 21)), epochs
        assert json.loads((tmp_path / "paused.json").read_text())["epochs"] == 20
    finally:
        app.close()


def _untracked(folder: Path) -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", str(folder)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return set(out.stdout.splitlines())


@needs_torch
@pytest.mark.slow
def test_readme_in_order_trains_every_epoch_and_leaves_the_source_tree_clean(tmp_path: Path) -> None:
    """The example's README, step by step, in the example's own folder: a run alone, then
    ``RUN_DAEMON=1 POLICY=--now EPOCHS=3 ./submit.sh`` through the real CLI and daemon.
    The submitted job must train its 3 epochs from scratch (not resume the first run's
    checkpoint, 20 of 3, and "succeed" having trained nothing), and nothing may be left
    in the source tree."""
    from tests.cli.conftest import write_retimed_trace

    here = TRAIN.parent
    before = _untracked(here)
    trace = write_retimed_trace(tmp_path / "trace.csv", datetime.now(UTC).replace(minute=0, second=0,
                                                                                   microsecond=0) - timedelta(days=2))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'default_zone = "TRACE"\nsampling_interval_s = 1\n[intensity]\nproviders = ["replay"]\n'
                   f'trace = "{trace}"\n')
    cli = tmp_path / "bin" / "carbonshift"
    cli.parent.mkdir()
    cli.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import sys; from scheduler.cli import main; "
                   f"sys.exit(main())' \"$@\"\n")
    cli.chmod(0o755)
    env = {"HOME": str(tmp_path), "PATH": f"{cli.parent}:/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "CARBONSHIFT_CONFIG": str(cfg), "XDG_DATA_HOME": str(tmp_path / "data"),
           "TMPDIR": str(tmp_path), "PYTHON": sys.executable}
    try:
        alone = subprocess.run([sys.executable, "train.py", "--epochs", "20"], cwd=here, env=env,
                               capture_output=True, text=True, timeout=300)
        assert alone.returncode == 0, alone.stderr
        assert _untracked(here) == before
        sub = subprocess.run(["./submit.sh"], cwd=here, capture_output=True, text=True, timeout=300,
                             env={**env, "RUN_DAEMON": "1", "POLICY": "--now", "EPOCHS": "3"})
        assert sub.returncode == 0, sub.stdout + sub.stderr
        left = _untracked(here) - before
    finally:  # a failing run must not leave its files behind for the next one
        for entry in _untracked(here) - before:
            (ROOT / entry.split(maxsplit=1)[1]).unlink(missing_ok=True)
    assert not left, f"the example left files in the source tree: {left}"
    (log,) = (tmp_path / "data").rglob("run-*.out")
    lines = [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith("{")]
    assert [ln["epoch"] for ln in lines if "epoch" in ln] == [1, 2, 3], log.read_text()
    assert not any("resumed_from_epoch" in ln for ln in lines)
    assert "final test accuracy" in log.read_text()
