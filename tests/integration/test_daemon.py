"""The daemon with real processes: plan, wait, launch, measure, account, recover."""

from __future__ import annotations

import os
import time
from pathlib import Path

from probes.model import Method
from scheduler.app import App
from scheduler.dispatch import Daemon
from scheduler.executors.base import Handle
from scheduler.executors.local import LocalExecutor
from scheduler.model import JobState, Run
from tests.integration.conftest import burn, make_app, request, run_daemon


def test_job_runs_is_measured_and_accounted(app: App) -> None:
    res = app.queue.submit(request(burn(0.6), run_now=True, name="burner"))
    job_id = res.job.id
    assert job_id is not None
    _, lines = run_daemon(app)
    job = app.store.get_job(job_id)
    assert job.state is JobState.SUCCEEDED, lines
    (run,) = app.store.runs_for_job(job_id)
    assert run.exit_code == 0 and run.finished_at is not None
    samples = app.store.samples_for_run(run.id)  # type: ignore[arg-type]
    assert samples, "no energy samples were written"
    assert {s.method for s in samples} >= {Method.CPU_TIME_ESTIMATE}
    cpu_j = sum(s.energy_j for s in samples if s.method is Method.CPU_TIME_ESTIMATE)
    assert cpu_j > 0
    acct = run.accounting
    assert acct is not None
    assert acct.energy_j > 0 and acct.emissions_g > 0 and acct.counterfactual_g > 0
    assert "cpu_time_estimate" in acct.energy_method
    assert acct.intensity_kind == "actual" and acct.intensity_provider == "replay"
    assert Path(run.out_path).read_text().strip() == "hello"  # type: ignore[arg-type]
    assert "to stderr" in Path(run.err_path).read_text()  # type: ignore[arg-type]
    assert oct(os.stat(run.out_path).st_mode & 0o777) == oct(0o600)  # type: ignore[arg-type]
    kinds = [e.kind for e in app.store.events_for_job(job_id)]
    assert kinds[0] == "submitted" and "started" in kinds and kinds[-1] == "finished"


def test_failing_job_records_exit_code(app: App) -> None:
    res = app.queue.submit(request(burn(0.1, exit_code=3), run_now=True))
    run_daemon(app)
    job = app.store.get_job(res.job.id)  # type: ignore[arg-type]
    assert job.state is JobState.FAILED
    assert app.store.runs_for_job(job.id)[-1].exit_code == 3  # type: ignore[arg-type]


def test_missing_program_fails_cleanly(app: App) -> None:
    res = app.queue.submit(request(["/nonexistent/program"], run_now=True))
    run_daemon(app)
    job = app.store.get_job(res.job.id)  # type: ignore[arg-type]
    run = app.store.runs_for_job(job.id)[-1]  # type: ignore[arg-type]
    assert job.state is JobState.FAILED and run.exit_code == 127


def test_shifted_job_waits_for_its_window(tmp_path: Path) -> None:
    app = make_app(tmp_path, factor=3600.0)
    try:
        res = app.queue.submit(request(burn(0.2), duration="1h", deadline_s=12 * 3600))
        planned = res.entry.start
        assert res.entry.expected_g <= res.entry.run_now_g
        run_daemon(app)
        run = app.store.runs_for_job(res.job.id)[-1]  # type: ignore[arg-type]
        assert run.started_at >= planned - __import__("datetime").timedelta(seconds=1)
        # launched within a few simulated minutes of the planned start (1 real s = 1 h)
        assert (run.started_at - planned).total_seconds() < 15 * 60
        assert app.store.get_job(res.job.id).state is JobState.SUCCEEDED  # type: ignore[arg-type]
    finally:
        app.close()


def test_stopped_daemon_leaves_job_running_and_next_one_adopts_it(app: App) -> None:
    res = app.queue.submit(request(burn(2.5), run_now=True))
    job_id = res.job.id
    assert job_id is not None
    first = Daemon(app, sample_interval_s=0.2, tick_s=0.1, on_event=lambda s: None)
    import threading

    t = threading.Thread(target=first.run_forever, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not app.store.open_runs():
        time.sleep(0.05)
    time.sleep(0.5)
    first.stop()
    t.join(10)
    (run,) = app.store.open_runs()
    assert app.store.get_job(job_id).state is JobState.RUNNING
    pid = int(run.handle.split(":")[0])  # type: ignore[union-attr]
    os.kill(pid, 0)  # still alive after the daemon stopped
    _, lines = run_daemon(app)
    assert any("adopted" in ln for ln in lines), lines
    assert app.store.get_job(job_id).state is JobState.SUCCEEDED
    (run,) = app.store.runs_for_job(job_id)
    assert run.exit_code == 0
    assert app.store.samples_for_run(run.id)  # type: ignore[arg-type]


def test_dead_run_without_exit_record_is_lost_and_requeued(app: App) -> None:
    res = app.queue.submit(request(burn(0.2), run_now=True, deadline_s=6 * 3600))
    job_id = res.job.id
    assert job_id is not None
    # a previous daemon claimed it and recorded a run whose process has since vanished
    assert app.store.transition(job_id, JobState.RUNNING, expected={JobState.PLANNED})
    import socket

    app.store.add_run(Run(job_id=job_id, site="local", executor="local", started_at=app.clock.now(),
                          host=socket.gethostname(), handle="999999:/nonexistent/exit.json"))
    _, lines = run_daemon(app)
    runs = app.store.runs_for_job(job_id)
    assert runs[0].state is JobState.LOST and "gone" in runs[0].reason
    assert any("requeued" in ln for ln in lines), lines
    assert app.store.get_job(job_id).state is JobState.SUCCEEDED
    assert len(runs) == 2 and runs[1].exit_code == 0


def test_claimed_but_never_started_is_planned_again(app: App) -> None:
    # a claim younger than the lease may be another agent's launch in flight: it is planned
    # again once a lease has passed (short here)
    from dataclasses import replace

    app.settings = replace(app.settings, lease_s=1.0)
    res = app.queue.submit(request(burn(0.1), run_now=True))
    assert app.store.transition(res.job.id, JobState.RUNNING, expected={JobState.PLANNED})  # type: ignore[arg-type]
    _, lines = run_daemon(app)
    assert any("never started" in ln for ln in lines)
    assert app.store.get_job(res.job.id).state is JobState.SUCCEEDED  # type: ignore[arg-type]


def test_cancel_running_job_that_ignores_sigterm(app: App, tmp_path: Path) -> None:
    script = ("import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('ready', flush=True)\ntime.sleep(60)\n")
    from scheduler.executors.base import LaunchSpec

    res = app.queue.submit(request([__import__("sys").executable, "-c", script], run_now=True))
    job = res.job
    ex = LocalExecutor()
    out = tmp_path / "c.out"
    h = ex.launch(LaunchSpec(job=job, run_id=1, out_path=str(out), err_path=str(tmp_path / "c.err"),
                             env={"PATH": "/usr/bin:/bin"}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "ready" not in (out.read_text() if out.exists() else ""):
        time.sleep(0.05)
    t0 = time.monotonic()
    ex.cancel(h, grace_s=0.5)
    assert time.monotonic() - t0 < 5
    assert not ex.alive(Handle(h.handle))
    status = ex.poll(h)
    assert (status is not None and status.exit_code in (137, None)) or status.state == "lost"  # type: ignore[union-attr]


def test_job_forking_a_daemon_is_cleaned_up(app: App, tmp_path: Path) -> None:
    marker = tmp_path / "daemon.pid"
    script = (
        "import os,time,sys\n"
        "if os.fork()==0:\n"
        "    os.setsid() if False else None\n"
        f"    open({str(marker)!r},'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n"
        "    sys.exit(0)\n"
        "print('parent exits')\n"
    )
    res = app.queue.submit(request([__import__("sys").executable, "-c", script], run_now=True))
    _, lines = run_daemon(app)
    assert app.store.get_job(res.job.id).state is JobState.SUCCEEDED  # type: ignore[arg-type]
    pid = int(marker.read_text())
    time.sleep(0.3)
    from scheduler.executors.local import _pid_alive  # a zombie awaiting its reaper is dead

    assert not _pid_alive(pid), "the job's background child survived"
    assert any("left behind" in ln for ln in lines)
