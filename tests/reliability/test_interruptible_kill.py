"""A real ``carbonshift run`` SIGKILLed while its interruptible job is stopped (SIGSTOP):
the job's supervisor sees its agent gone, continues the job's group and stops it (so it is
never left stopped, and never runs twice), and the next daemon records the run as lost
and runs the job again to success."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.executors.base import Handle
from scheduler.executors.local import LocalExecutor
from scheduler.model import JobState, Policy
from scheduler.queue import SubmitRequest
from tests.integration.test_interruptible import FACTOR, JOB, ORIGIN, STEPS, dirty_middle_trace
from tests.reliability.conftest import PY, Sim, SimClock

pytestmark = pytest.mark.slow


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    s = Sim(tmp_path, factor=FACTOR)
    dirty_middle_trace(s.trace)  # the same path the config names
    s.clock = SimClock(ORIGIN, FACTOR)
    try:
        yield s
    finally:
        s.close()


def test_a_killed_daemon_never_leaves_its_stopped_job_stopped(sim: Sim) -> None:
    script = sim.tmp / "train.py"
    script.write_text(JOB)
    ledger = sim.tmp / "steps.txt"
    res = sim.app.queue.submit(SubmitRequest(
        argv=[PY, str(script), str(STEPS), str(ledger), str(sim.tmp / "ckpt")], duration_s=2 * 3600,
        # a deadline that leaves room to run it again after the lost run (sim time flies:
        # a third of the lease is 80 simulated minutes)
        name="train", cwd=str(sim.tmp), overrides=Policy(name="(flags)", deadline_s=8 * 3600),
        pause_mode="stop", submitter_env={"PATH": "/usr/bin:/bin"},
    ), now=sim.clock.now())
    job_id = res.job.id
    assert job_id is not None and len(res.entry.intervals) == 2
    first = sim.start_daemon()
    sim.wait_for(lambda: sim.state(job_id) is JobState.SUSPENDED, what="the pause")
    (run,) = sim.app.store.open_runs()
    assert run.handle is not None
    pid = int(run.handle.split(":")[0])  # the job's supervisor, leader of its group
    assert LocalExecutor().stopped(Handle(run.handle))
    sim.kill_daemon(first)
    # the supervisor stops the job a third of a lease (20 s) after its agent died
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the stopped job outlived its dead agent")
    err = Path(run.err_path).read_text()  # type: ignore[arg-type]
    assert "died and no agent adopted the run" in err
    second = sim.start_daemon("--exit-when-idle")
    assert second.wait(60) == 0, sim.daemon_log()
    assert sim.state(job_id) is JobState.SUCCEEDED, sim.daemon_log()
    lost, again = sim.app.store.runs_for_job(job_id)
    assert lost.state is JobState.LOST and "agent" in lost.reason
    assert again.exit_code == 0
    # the first process never ran again after its pause; the second one did the work
    pids = [int(line.split()[-2]) for line in ledger.read_text().splitlines()]
    assert len(set(pids)) == 2 and "requeued" in sim.daemon_log()
