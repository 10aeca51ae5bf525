"""Crashes of carbonshift are not the job's attempts.

A real ``carbonshift run`` (3 s lease) is SIGKILLed while its job runs, and restarted only
after the job's supervisor has stopped the orphaned job (a third of a lease): every crash
costs the job a lost run. After more crashes than the three attempts a job used to get, the
job still runs to success: a lost run does not count against it, only a separate, larger
bound (``MAX_LOST_RUNS``) on runs lost again and again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scheduler.dispatch import MAX_LOST_RUNS
from scheduler.model import JobState
from tests.reliability.conftest import Sim

pytestmark = pytest.mark.slow

KILLS = 4  # more than the three attempts that used to end a job as lost


def test_daemon_killed_more_often_than_the_old_attempts_the_job_still_succeeds(sim: Sim) -> None:
    assert KILLS < MAX_LOST_RUNS
    job = sim.submit("j", 0, argv=["/bin/sh", "-c", f"echo start j >> {sim.ledger}; sleep 4; "
                                                    f"echo end j >> {sim.ledger}"])
    store = sim.app.store
    for kill in range(KILLS):
        daemon = sim.start_daemon(CARBONSHIFT_LEASE_S="3")

        def running(n: int = kill + 1) -> bool:
            runs = store.runs_for_job(job)
            return len(runs) == n and runs[-1].finished_at is None and bool(runs[-1].handle)

        sim.wait_for(running, timeout=90, what=f"run {kill + 1} starting")
        sim.kill_daemon(daemon)
        run = store.runs_for_job(job)[-1]
        assert run.out_path is not None
        exit_file = Path(run.out_path[: -len(".out")] + ".exit.json")
        # the orphaned job is stopped by its supervisor: this crash costs a run
        sim.wait_for(exit_file.exists, timeout=30, what="the supervisor stopping the orphan")
        assert json.loads(exit_file.read_text()).get("lost") is True
    final = sim.start_daemon("--exit-when-idle", CARBONSHIFT_LEASE_S="3")
    assert final.wait(120) == 0, sim.daemon_log()[-4000:]
    runs = store.runs_for_job(job)
    assert sim.state(job) is JobState.SUCCEEDED, (runs, sim.daemon_log()[-4000:])
    assert [r.state for r in runs] == [JobState.LOST] * KILLS + [JobState.SUCCEEDED]
    starts, ends = sim.ledger_counts()
    assert starts["j"] == KILLS + 1 and ends["j"] == 1
