"""The daemon SIGKILLed while jobs are planned, starting, running and finishing.

A real ``carbonshift run`` subprocess on an accelerated clock (60x) is killed with
SIGKILL; a new one is started. Afterwards every job is in a true state, every sample
written before the kill is still there, and the ledger the jobs append to shows that no
job ran twice.
"""

from __future__ import annotations

import random
import time

import pytest

from scheduler.dispatch import Daemon
from scheduler.errors import CarbonshiftError
from scheduler.executors.base import Handle, LaunchSpec
from scheduler.executors.local import LocalExecutor
from scheduler.model import JobState
from tests.reliability.conftest import Sim

pytestmark = pytest.mark.slow


def _samples(sim: Sim, job_id: int) -> int:
    runs = sim.app.store.runs_for_job(job_id)
    return sum(len(sim.app.store.samples_for_run(r.id)) for r in runs if r.id is not None)


def test_kill_while_running_adopts_and_keeps_samples(sim: Sim) -> None:
    running = sim.submit("long", 8.0)
    planned = sim.submit("later", 0.5, after_s=8 * 60)  # planned 8 real seconds ahead
    first = sim.start_daemon()
    sim.wait_for(lambda: _samples(sim, running) >= 1, what="samples of the running job")
    sim.kill_daemon(first)
    before = {(s.start, s.device) for r in sim.app.store.runs_for_job(running)
              for s in sim.app.store.samples_for_run(r.id)}  # type: ignore[arg-type]
    assert sim.state(running) is JobState.RUNNING
    assert sim.state(planned) is JobState.PLANNED
    second = sim.start_daemon("--exit-when-idle")
    assert second.wait(60) == 0, sim.daemon_log()
    log = sim.daemon_log()
    assert "adopted" in log
    assert sim.state(running) is JobState.SUCCEEDED and sim.state(planned) is JobState.SUCCEEDED
    (run,) = sim.app.store.runs_for_job(running)
    after = {(s.start, s.device) for s in sim.app.store.samples_for_run(run.id)}  # type: ignore[arg-type]
    assert before <= after, "samples written before the kill were lost"
    assert len(after) > len(before), "the adopted run was not measured on"
    assert run.exit_code == 0 and run.accounting is not None
    starts, ends = sim.ledger_counts()
    assert starts == ends == {"long": 1, "later": 1}
    # a job planned for later started at its planned time, not at the restart
    (prun,) = sim.app.store.runs_for_job(planned)
    assert prun.started_at >= sim.app.store.get_job(planned).planned_start  # type: ignore[operator]


def test_kill_after_job_finished_closes_it_from_the_exit_record(sim: Sim) -> None:
    job = sim.submit("quick", 0.3)
    first = sim.start_daemon()
    sim.wait_for(lambda: sim.ledger_counts()[1]["quick"] == 1, what="the job's end")
    sim.kill_daemon(first)  # very likely before it noticed the exit; either way:
    second = sim.start_daemon("--exit-when-idle")
    assert second.wait(60) == 0, sim.daemon_log()
    assert sim.state(job) is JobState.SUCCEEDED
    (run,) = sim.app.store.runs_for_job(job)
    assert run.exit_code == 0 and run.finished_at is not None
    assert sim.ledger_counts()[0] == {"quick": 1}


def test_repeated_random_kills_lose_nothing_and_run_nothing_twice(sim: Sim) -> None:
    rng = random.Random(7)
    jobs = {}
    for i in range(8):
        tag = f"j{i}"
        jobs[tag] = sim.submit(tag, rng.uniform(0.2, 2.0), after_s=rng.choice([0, 0, 60, 120, 240, 360]))
    kills = 0
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        proc = sim.start_daemon()
        time.sleep(rng.uniform(0.8, 2.0))
        if proc.poll() is None:
            sim.kill_daemon(proc)
            kills += 1
        if all(sim.state(j) in (JobState.SUCCEEDED, JobState.FAILED) for j in jobs.values()):
            break
    final = sim.start_daemon("--exit-when-idle")
    assert final.wait(150) == 0, sim.daemon_log()  # a dead daemon's claims wait out a lease
    assert kills >= 3
    states = {t: sim.state(j) for t, j in jobs.items()}
    assert set(states.values()) == {JobState.SUCCEEDED}, states
    starts, ends = sim.ledger_counts()
    assert starts == ends == dict.fromkeys(jobs, 1), (starts, ends)
    for j in jobs.values():
        runs = sim.app.store.runs_for_job(j)
        assert runs[-1].exit_code == 0 and all(r.finished_at is not None for r in runs)
    check = sim.cli("db", "check")
    assert check.returncode == 0 and "consistent" in check.stdout, check.stdout + check.stderr


class _DiesAfterLaunch(LocalExecutor):
    """The daemon dies right after the job's process started, before its handle was saved."""

    def launch(self, spec: LaunchSpec) -> Handle:
        super().launch(spec)
        raise _Killed


class _Killed(BaseException):
    pass


def test_kill_between_launch_and_recording_the_handle_does_not_run_twice(sim: Sim) -> None:
    job = sim.submit("once", 1.5)
    app = sim.app
    daemon = Daemon(app, executors={"local": _DiesAfterLaunch()}, sample_interval_s=0.2,
                    on_event=lambda s: None)
    with pytest.raises(_Killed):
        daemon.launch_due()
    assert sim.state(job) is JobState.RUNNING
    lines: list[str] = []
    again = Daemon(app, sample_interval_s=0.2, tick_s=0.05, exit_when_idle=True, on_event=lines.append)
    try:
        again.run_forever()
    except CarbonshiftError:
        raise
    assert sim.state(job) is JobState.SUCCEEDED, lines
    starts, ends = sim.ledger_counts()
    assert starts == ends == {"once": 1}, (starts, lines)
