"""A job's daemonized grandchild (``setsid`` + fork) is measured and ends with it (16.10).

The job forks a child that calls ``setsid`` and forks again: the grandchild leaves the
job's process group and session, does some CPU work, says how much, and lingers. After
the job ends, and after ``cancel``, no grandchild survives, and its CPU time is counted.
Here cgroup v2 is writable (the daemon uses a cgroup per run); the child-subreaper
fallback is driven through the executor with ``use_cgroup=False``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.executors.base import LaunchSpec
from scheduler.executors.contain import containment
from scheduler.executors.local import LocalExecutor
from scheduler.executors.measured import wrapper_argv
from scheduler.model import Job, JobState
from tests.reliability.conftest import Sim

JOB = """\
import os, sys, time
mode, pidfile, cpufile = sys.argv[1:4]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # the daemonized grandchild
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(pidfile + ".tmp", pidfile)
        x = 0
        for i in range(12_000_000):
            x += i
        with open(cpufile + ".tmp", "w") as f:
            f.write(str(time.process_time()))
        os.replace(cpufile + ".tmp", cpufile)
        while True:
            time.sleep(1)
    os._exit(0)
os.wait()
while mode == "stay" or not os.path.exists(cpufile):
    time.sleep(0.05)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _gone(pid: int, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(autouse=True)
def _no_survivor(tmp_path: Path) -> Iterator[None]:
    """A failing test must not leave its grandchild running."""
    yield
    for pidfile in tmp_path.glob("*.pid"):
        try:
            pid = int(pidfile.read_text())
            if _alive(pid) and "daemonize.py" in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _job(sim_or_tmp: Path, mode: str) -> tuple[list[str], Path, Path]:
    script = sim_or_tmp / "daemonize.py"
    script.write_text(JOB)
    pidfile, cpufile = sim_or_tmp / f"{mode}.pid", sim_or_tmp / f"{mode}.cpu"
    return [sys.executable, str(script), mode, str(pidfile), str(cpufile)], pidfile, cpufile


def _cpu_s_measured(sim: Sim, job_id: int) -> float:
    (run,) = sim.app.store.runs_for_job(job_id)
    samples = sim.app.store.samples_for_run(run.id)  # type: ignore[arg-type]
    return sum(float(m.group(1)) for s in samples if s.device == "cpu"
               for m in [re.match(r"([\d.]+) CPU s", s.note)] if m)


def test_a_daemonized_grandchild_ends_with_the_job_and_is_measured(sim: Sim) -> None:
    argv, pidfile, cpufile = _job(sim.tmp, "exit")
    sub = sim.cli("submit", "--now", "--duration", "2m", "--name", "daemonizer", "--", *argv)
    assert sub.returncode == 0, sub.stderr
    daemon = sim.start_daemon("--exit-when-idle")
    assert daemon.wait(120) == 0, sim.daemon_log()
    (job,) = sim.app.store.list_jobs()
    assert job.state is JobState.SUCCEEDED, sim.daemon_log()[-3000:]
    grandchild = int(pidfile.read_text())
    assert _gone(grandchild), "the daemonized grandchild survived the job"
    shown = sim.cli("show", str(job.id), "--json")
    messages = [e["message"] for e in json.loads(shown.stdout)["events"]]
    assert any(f"contained by {containment()}" in m for m in messages), messages
    assert "left running ended with it" in job.note, job.note
    work_s = float(cpufile.read_text())
    assert job.id is not None
    measured_s = _cpu_s_measured(sim, job.id)
    print(f"grandchild CPU {work_s:.3f} s; measured for the run {measured_s:.3f} s")
    assert measured_s >= 0.8 * work_s, (work_s, measured_s)


def test_cancel_ends_a_daemonized_grandchild(sim: Sim) -> None:
    argv, pidfile, _ = _job(sim.tmp, "stay")
    sub = sim.cli("submit", "--now", "--duration", "2m", "--name", "lingerer", "--", *argv)
    assert sub.returncode == 0, sub.stderr
    job_id = int(re.search(r"job (\d+)", sub.stdout + sub.stderr).group(1))  # type: ignore[union-attr]
    sim.start_daemon()
    sim.wait_for(pidfile.exists, timeout=60, what="the grandchild's start")
    grandchild = int(pidfile.read_text())
    done = sim.cli("cancel", str(job_id), "--grace", "20s")
    assert done.returncode == 0, done.stderr
    assert _gone(grandchild), "the daemonized grandchild survived cancel"
    sim.wait_for(lambda: sim.state(job_id) is JobState.CANCELLED, what="the job cancelled")


def test_without_a_cgroup_the_supervisor_reaps_and_ends_the_grandchild(tmp_path: Path) -> None:
    argv, pidfile, cpufile = _job(tmp_path, "exit")
    ex = LocalExecutor(use_cgroup=False)
    assert ex.containment() == "child subreaper" and containment()
    now = datetime.now(UTC)
    job = Job(name="daemonizer", argv=argv, duration_s=60, zone="GB", submitted_at=now,
              earliest_start=now, latest_start=now, deadline_at=None, id=1, cwd=str(tmp_path))
    out = tmp_path / "logs" / "run-1.out"
    handle = ex.launch(LaunchSpec(job=job, run_id=1, out_path=str(out), err_path=str(out.with_suffix(".err")),
                                  env={"PATH": "/usr/bin:/bin"}))
    deadline = time.monotonic() + 120
    while (status := ex.poll(handle)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status is not None and status.state == JobState.SUCCEEDED.value, status
    assert _gone(int(pidfile.read_text()), timeout_s=5), "the grandchild survived the job"
    assert "child subreaper" in status.reason
    assert status.cpu_s is not None and status.cpu_s >= 0.8 * float(cpufile.read_text())


def _wrapped(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path, Path]:
    """The job under the Slurm node wrapper (scheduler/executors/measured.py), as the batch
    script runs it (here without a run in its database: unmeasured, contained all the same)."""
    argv, pidfile, cpufile = _job(tmp_path, mode)
    wrapper = [a.replace("{run_id}", "1") for a in wrapper_argv(f"sqlite:///{tmp_path / 'w.db'}", interval_s=0.2)]
    proc = subprocess.Popen([*wrapper, "--", *argv], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, pidfile, cpufile


def test_the_slurm_wrapper_ends_a_daemonized_grandchild_with_the_job(tmp_path: Path) -> None:
    proc, pidfile, _ = _wrapped(tmp_path, "exit")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert _gone(int(pidfile.read_text()), timeout_s=5), "the grandchild survived the job"
    assert "stopped 1 process the job left running" in err, err


def test_scancel_of_the_slurm_wrapper_ends_a_daemonized_grandchild(tmp_path: Path) -> None:
    proc, pidfile, _ = _wrapped(tmp_path, "stay")
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    proc.send_signal(signal.SIGTERM)  # what scancel sends the batch step
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert _gone(grandchild, timeout_s=5), "the daemonized grandchild survived scancel"


def test_empty_cgroups_left_by_killed_supervisors_are_swept() -> None:
    from scheduler.executors import contain

    stale, fresh = contain.cgroup_for("swept: a killed supervisor's"), contain.cgroup_for("swept: new")
    if stale is None or fresh is None:
        pytest.skip("no writable cgroup v2 here")
    os.mkdir(stale)
    old = time.time() - 2 * contain.STALE_CGROUP_S
    os.utime(stale, (old, old))
    try:
        assert contain.make_cgroup(fresh)
        assert not os.path.exists(stale) and os.path.isdir(fresh)
    finally:
        contain.remove_cgroup(fresh)
        contain.remove_cgroup(stale)
