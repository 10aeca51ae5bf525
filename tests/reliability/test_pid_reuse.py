"""A pid recorded with a run and later reused by an unrelated process (issue 16.2).

After a crash or a reboot a recorded pid can name anything. A run's handle records who its
supervisor was (start time and boot id, ``scheduler/executors/identity.py``); a restarted
daemon must not adopt the unrelated process and ``cancel`` must not signal it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.executors.base import Handle
from scheduler.executors.identity import boot_id, identity, split_identity
from scheduler.executors.local import LocalExecutor
from scheduler.model import JobState
from tests.reliability.conftest import Sim


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process, leader of its own group (as a supervisor is)."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def _crash_with_pid_reused(sim: Sim, stranger: subprocess.Popen[bytes]) -> int:
    """A running job whose daemon and supervisor died; its recorded pid now names ``stranger``."""
    job = sim.submit("long", 120.0)
    daemon = sim.start_daemon()
    sim.wait_for(lambda: sim.ledger_counts()[0]["long"] == 1, what="the job's start")
    sim.kill_daemon(daemon)
    (run,) = sim.app.store.runs_for_job(job)
    assert run.handle is not None
    text, ident = split_identity(run.handle)
    assert ident is not None, "the run's handle records its supervisor's identity"
    pid_text, _, exit_file = text.partition(":")
    os.killpg(int(pid_text), signal.SIGKILL)  # the job died with the host
    reused = f"{stranger.pid}:{exit_file}|{ident}"  # the same identity: not the stranger's
    with sqlite3.connect(sim.db_path) as db:
        db.execute("UPDATE runs SET handle = ? WHERE id = ?", (reused, run.id))
    return job


def test_a_restarted_daemon_does_not_adopt_a_reused_pid(
    sim: Sim, stranger: subprocess.Popen[bytes]
) -> None:
    job = _crash_with_pid_reused(sim, stranger)
    with sqlite3.connect(sim.db_path) as db:  # let the re-run be short
        db.execute("UPDATE jobs SET argv = ? WHERE id = ?",
                   (f'["{sys.executable}", "{sim.script}", "long", "0.2", "{sim.ledger}"]', job))
    second = sim.start_daemon("--exit-when-idle")
    assert second.wait(120) == 0, sim.daemon_log()
    assert stranger.poll() is None, "the unrelated process was signalled"
    log = sim.daemon_log().split("daemon     started")[-1]
    assert "adopted" not in log, log
    assert sim.state(job) is JobState.SUCCEEDED, log
    first, again = sim.app.store.runs_for_job(job)
    assert first.state is JobState.LOST and again.exit_code == 0


def test_cancel_does_not_kill_a_reused_pid(sim: Sim, stranger: subprocess.Popen[bytes]) -> None:
    job = _crash_with_pid_reused(sim, stranger)
    done = sim.cli("cancel", str(job), "--grace", "1s")
    assert done.returncode == 0, done.stderr
    assert sim.state(job) is JobState.CANCELLED
    assert stranger.poll() is None, "cancel killed an unrelated process"


def test_identity_decides_and_old_handles_still_work(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    ex = LocalExecutor()
    exit_file = str(tmp_path / "run-1.exit.json")
    real = identity(stranger.pid)
    assert real is not None and boot_id() is not None
    start = real.split("@")[0]
    assert ex.alive(Handle(f"{stranger.pid}:{exit_file}|{real}"))
    assert ex.alive(Handle(f"{stranger.pid}:{exit_file}"))  # stored before identities: as before
    assert not ex.alive(Handle(f"{stranger.pid}:{exit_file}|{int(start) + 1}@{boot_id()}"))
    other_boot = "0" * 8 if boot_id() != "0" * 8 else "1" * 8
    assert not ex.alive(Handle(f"{stranger.pid}:{exit_file}|{start}@{other_boot}"))  # a reboot
    status = ex.poll(Handle(f"{stranger.pid}:{exit_file}|{start}@{other_boot}"))
    assert status is not None and status.state == JobState.LOST.value
    ex.signal(Handle(f"{stranger.pid}:{exit_file}|{start}@{other_boot}"), signal.SIGTERM)
    assert stranger.poll() is None
