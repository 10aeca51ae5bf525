"""Interruptible jobs really paused and resumed by the daemon, with real processes, a real
SQLite file and an accelerated clock (one simulated hour = 5 real seconds).

The replayed trace has a dirty middle: clean 17:00-18:00, dirty 18:00-19:00, clean
19:00-20:00, dirty afterwards. A 2 h interruptible job submitted at 16:58 with a 4 h
deadline is planned in two intervals, 17:00-18:00 and 19:00-20:00. Its process does ~1.5 h
of work (simulated; steps of real sleep and a little CPU), so it must be paused at 18:00
and resumed at 19:00 to finish: each test checks that it really was (its process stopped,
or signalled and exited), that history shows both intervals with samples only inside
them, and that it finished ``succeeded``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.dispatch import Daemon
from scheduler.executors.base import Handle
from scheduler.executors.local import LocalExecutor
from scheduler.model import JobState, Policy
from scheduler.queue import SubmitRequest
from tests.integration.conftest import PY, make_app, run_daemon

ORIGIN = datetime(2026, 3, 15, 16, 58, tzinfo=UTC)
HOUR = timedelta(hours=1)
FACTOR = 720.0  # 1 simulated hour = 5 real seconds
T17, T18, T19, T20 = (datetime(2026, 3, 15, h, tzinfo=UTC) for h in (17, 18, 19, 20))

STEPS = 115  # ~0.055 real s each: ~6.3 real s of work, more than one interval (5 s)

# a "training" job: counts its steps in a ledger (pid, step, real time); in checkpoint
# mode it saves its step after each one and exits cleanly on SIGUSR1
JOB = """\
import os, signal, sys, time
steps, ledger, ckpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
done = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
asked = []
signal.signal(signal.SIGUSR1, lambda *_: asked.append(1))
def note(text):
    with open(ledger, "a") as f:
        f.write(f"{text} {os.getpid()} {time.time():.3f}\\n")
note(f"start {done}")
for i in range(done, steps):
    sum(range(20000))
    time.sleep(0.05)
    with open(ckpt + ".tmp", "w") as f:
        f.write(str(i + 1))
    os.replace(ckpt + ".tmp", ckpt)
    note(f"step {i + 1}")
    if asked:
        note(f"checkpoint {i + 1}")
        sys.exit(0)
note("end")
print("trained", steps, "steps")
"""


def dirty_middle_trace(path: Path) -> Path:
    """Hourly values from two days before 16:00: 300, then 17:00 clean, 18:00 dirty,
    19:00 clean, dirty from 20:00."""
    start = ORIGIN.replace(minute=0) - timedelta(days=2)
    special = {T17: 100, T18: 600, T19: 100}
    with path.open("w") as f:
        f.write("time,intensity_g_per_kwh\n")
        for i in range(24 * 5):
            t = start + i * HOUR
            value = special.get(t, 500 if t >= T20 else 300)
            f.write(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{value}\n")
    return path


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = make_app(tmp_path, factor=FACTOR, origin=ORIGIN,
                 trace=dirty_middle_trace(tmp_path / "trace.csv"), lease_s=6.0)
    yield a
    a.close()


class Job:
    """The ledger job of one test, submitted interruptible."""

    def __init__(self, app: App, tmp: Path, *, mode: str) -> None:
        self.app = app
        self.ledger = tmp / "ledger.txt"
        script = tmp / "train.py"
        script.write_text(JOB)
        res = app.queue.submit(SubmitRequest(
            argv=[PY, str(script), str(STEPS), str(self.ledger), str(tmp / "ckpt")],
            duration_s=2 * 3600, name=f"train-{mode}", cwd=str(tmp),
            overrides=Policy(name="(flags)", deadline_s=4 * 3600), pause_mode=mode,
            pause_grace_s=5.0 if mode == "checkpoint" else None,
            submitter_env={"PATH": "/usr/bin:/bin"},
        ))
        assert res.job.id is not None
        self.id = res.job.id
        self.entry = res.entry

    def lines(self) -> list[tuple[str, int, float, str]]:
        """``(kind, pid, real time, rest)`` per ledger line."""
        out = []
        for line in self.ledger.read_text().splitlines():
            words = line.split()
            out.append((words[0], int(words[-2]), float(words[-1]), " ".join(words[1:-2])))
        return out

    def state(self) -> JobState:
        return self.app.store.get_job(self.id).state

    def handle(self) -> Handle:
        (run,) = self.app.store.runs_for_job(self.id)
        assert run.handle is not None
        return Handle(run.handle, pid=int(run.handle.split(":")[0]))


def start_daemon(app: App) -> tuple[Daemon, threading.Thread, list[str]]:
    lines: list[str] = []
    daemon = Daemon(app, sample_interval_s=0.2, tick_s=0.1, on_event=lines.append)
    thread = threading.Thread(target=daemon.run_forever, daemon=True)
    thread.start()
    return daemon, thread, lines


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def assert_two_intervals_with_samples_inside(app: App, job: Job, first_how: str) -> None:
    """The run ran 17:00-18:00 and 19:00-..., paused between, samples only inside."""
    (run,) = app.store.runs_for_job(job.id)
    assert run.state is JobState.SUCCEEDED and run.exit_code == 0, run
    ivs = app.store.run_intervals(run.id)  # type: ignore[arg-type]
    assert len(ivs) == 2, ivs
    first, second = ivs
    assert first.how.startswith(first_how) and second.how == "exit 0", ivs
    slack = timedelta(minutes=5)  # 0.4 real seconds at 720x
    # the launch waits for the daemon's own start-up, which a loaded 2-core machine can
    # stretch past a real second: allow a fifth of the interval (1.7 real s) there
    assert T17 - slack < first.start < T17 + timedelta(minutes=20), first
    assert T18 - slack < first.end < T18 + 2 * slack, first
    assert T19 - timedelta(seconds=1) <= second.start < T19 + slack, second
    assert second.end == run.finished_at
    samples = app.store.samples_for_run(run.id)  # type: ignore[arg-type]
    assert samples
    for s in samples:
        assert any(iv.start <= s.start and iv.end is not None and s.end <= iv.end for iv in ivs), (s, ivs)
    for iv in ivs:
        assert any(iv.start <= s.start and iv.end is not None and s.end <= iv.end and s.energy_j > 0
                   for s in samples), f"no energy measured in {iv}"
    acct = run.accounting
    assert acct is not None and acct.energy_j > 0 and acct.emissions_g > 0
    assert acct.intensity_kind == "actual" and acct.counterfactual_g > 0


def test_the_plan_has_two_intervals_around_the_dirty_hour(app: App, tmp_path: Path) -> None:
    job = Job(app, tmp_path, mode="stop")
    assert job.entry.intervals == ((T17, T18), (T19, T20))
    assert app.store.planned_intervals([job.id]) == {job.id: [(T17, T18), (T19, T20)]}


def test_stop_mode_stops_the_process_group_and_continues_it(app: App, tmp_path: Path) -> None:
    job = Job(app, tmp_path, mode="stop")
    daemon, thread, lines = start_daemon(app)
    try:
        wait_for("the pause", lambda: job.state() is JobState.SUSPENDED)
        handle = job.handle()
        assert LocalExecutor().stopped(handle), "the job's process is not stopped"
        before = job.lines()
        time.sleep(1.0)
        assert job.lines() == before, "the job made progress while paused"
        assert app.clock.now() < T19
        wait_for("the end", lambda: job.state() is JobState.SUCCEEDED)
    finally:
        daemon.stop()
        thread.join(15)
    steps = [ln for ln in job.lines() if ln[0] == "step"]
    assert len(steps) == STEPS and len({pid for _, pid, _, _ in job.lines()}) == 1  # one process
    gap = max(b[2] - a[2] for a, b in itertools.pairwise(steps))
    assert gap > 3.0, f"longest pause between steps {gap:.1f} s: the job was never stopped"
    assert_two_intervals_with_samples_inside(app, job, "paused: SIGSTOP")
    paused = [ln for ln in lines if ln.startswith("paused")]
    resumed = [ln for ln in lines if ln.startswith("resumed")]
    assert len(paused) == 1 and "end of interval 1 of 2" in paused[0] and "SIGSTOP" in paused[0], lines
    assert len(resumed) == 1 and "interval 2 of 2" in resumed[0] and "SIGCONT" in resumed[0], lines
    kinds = [e.kind for e in app.store.events_for_job(job.id)]
    assert kinds.index("started") < kinds.index("paused") < kinds.index("resumed") < kinds.index("finished")


def test_checkpoint_mode_signals_the_job_and_launches_it_again(app: App, tmp_path: Path) -> None:
    job = Job(app, tmp_path, mode="checkpoint")
    daemon, thread, lines = start_daemon(app)
    try:
        wait_for("the end", lambda: job.state() is JobState.SUCCEEDED)
    finally:
        daemon.stop()
        thread.join(15)
    ledger = job.lines()
    starts = [ln for ln in ledger if ln[0] == "start"]
    assert len(starts) == 2 and starts[0][1] != starts[1][1], starts  # two processes
    (ckpt,) = [ln for ln in ledger if ln[0] == "checkpoint"]
    assert int(starts[1][3]) == int(ckpt[3]) > 0, (starts, ckpt)  # resumed from its checkpoint
    assert [ln[0] for ln in ledger].count("end") == 1
    assert len([ln for ln in ledger if ln[0] == "step"]) == STEPS  # no step done twice
    assert_two_intervals_with_samples_inside(app, job, "checkpointed: exit 0")
    kinds = [ln.split()[0] for ln in lines]
    assert kinds.index("paused") < kinds.index("checkpointed") < kinds.index("resumed") < kinds.index("finished"), lines
    assert "SIGUSR1" in next(ln for ln in lines if ln.startswith("paused"))
    assert "launched the same command again" in next(ln for ln in lines if ln.startswith("resumed"))


@pytest.mark.parametrize("mode", ["stop", "checkpoint"])
def test_a_restarted_daemon_adopts_a_paused_job_and_resumes_it(
    app: App, tmp_path: Path, mode: str
) -> None:
    job = Job(app, tmp_path, mode=mode)
    daemon, thread, _ = start_daemon(app)
    wait_for("the pause", lambda: job.state() is JobState.SUSPENDED
             and (mode == "stop" or app.store.run_intervals(
                 app.store.runs_for_job(job.id)[0].id)[0].end is not None))  # type: ignore[arg-type]
    daemon.stop()  # Ctrl-C: detaches, leaving the job paused
    thread.join(15)
    assert job.state() is JobState.SUSPENDED
    if mode == "stop":
        assert LocalExecutor().stopped(job.handle())
    _, lines = run_daemon(app, timeout_s=40)
    assert any(ln.startswith("adopted") and "paused" in ln for ln in lines), lines
    assert any(ln.startswith("resumed") for ln in lines), lines
    assert job.state() is JobState.SUCCEEDED
    assert len({pid for _, pid, _, _ in job.lines()}) == (1 if mode == "stop" else 2)
    assert_two_intervals_with_samples_inside(
        app, job, "paused: SIGSTOP" if mode == "stop" else "checkpointed: exit 0")


def test_a_stopped_job_left_by_its_agent_is_continued_by_its_supervisor(
    app: App, tmp_path: Path
) -> None:
    job = Job(app, tmp_path, mode="stop")
    daemon, thread, lines = start_daemon(app)
    wait_for("the pause", lambda: job.state() is JobState.SUSPENDED)
    daemon.stop()  # and no daemon comes back
    thread.join(15)
    handle = job.handle()
    assert LocalExecutor().stopped(handle)
    steps = len(job.lines())
    # resume-by: the planned resumption (19:00) + a third of the lease (2 real s)
    wait_for("the supervisor to continue the job", lambda: len(job.lines()) > steps, 20)
    (run,) = app.store.runs_for_job(job.id)
    err = Path(run.err_path).read_text()  # type: ignore[arg-type]
    assert app.clock.now() >= T19, (lines, err)
    wait_for("the job's end", lambda: any(ln[0] == "end" for ln in job.lines()), 20)
    assert "continued by its supervisor" in Path(run.err_path).read_text()  # type: ignore[arg-type]
    _, lines = run_daemon(app, timeout_s=30)  # a later daemon closes the run from its record
    assert job.state() is JobState.SUCCEEDED, lines


def test_a_paused_job_is_replanned_and_the_daemon_follows_the_new_plan(
    app: App, tmp_path: Path
) -> None:
    job = Job(app, tmp_path, mode="stop")
    daemon, thread, _lines = start_daemon(app)
    try:
        wait_for("the pause", lambda: job.state() is JobState.SUSPENDED)
        # an outdated plan for the remaining work: the dirty 20:00-21:00
        assert app.store.replan_suspended(job.id, [(T20, T20 + HOUR)], app.clock.now())
        _, moved = app.queue.replan(app.clock.now())
        (entry,) = [e for j, e in moved if j.id == job.id]
        assert entry.intervals[0][0] == T19, entry  # back to the clean hour
        after = app.store.get_job(job.id)
        assert after.state is JobState.SUSPENDED and "re-planned while paused" in after.note
        assert app.store.planned_intervals([job.id])[job.id] == list(entry.intervals)
        wait_for("the end", lambda: job.state() is JobState.SUCCEEDED)
    finally:
        daemon.stop()
        thread.join(15)
    (run,) = app.store.runs_for_job(job.id)
    second = app.store.run_intervals(run.id)[1]  # type: ignore[arg-type]
    assert T19 - timedelta(seconds=1) <= second.start < T19 + timedelta(minutes=5), second
