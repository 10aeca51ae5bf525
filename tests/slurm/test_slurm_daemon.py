"""A Slurm site through the daemon, against the real single-node Slurm of ``.ci/run``.

The agent of a site with ``executor = "slurm"`` submits each job at its planned start with
``sbatch --begin``, records the Slurm job id on the run, follows it, and accounts it from
the samples our wrapper wrote on the node (this Slurm accounts no energy). Refusals and
vanished jobs end as Slurm says. Skipped without Slurm on a workstation; FAILS in CI.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from probes.model import Method
from scheduler.app import App
from scheduler.config import load_settings
from scheduler.dispatch import MAX_LOST_RUNS, Daemon
from scheduler.executors.base import Handle
from scheduler.executors.slurm import SlurmExecutor
from scheduler.history import history_rows
from scheduler.model import TERMINAL_STATES, JobState, Policy, Run, Site
from scheduler.queue import SubmitRequest
from tests.slurm.test_slurm_executor import _slurm_problem

pytestmark = pytest.mark.slurm

SITE = "hpc"
CPU_W_PER_CORE = 77.0


@pytest.fixture(scope="module")
def slurm_up() -> None:
    problem = _slurm_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"Slurm is required in CI and is not usable: {problem}", pytrace=False)
        pytest.skip(f"no usable Slurm here: {problem}")


@pytest.fixture
def app(slurm_up: None, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """An app on the shared PostgreSQL (the node's wrapper writes samples there; SQLite
    when no server answers) with a Slurm site, on the real clock."""
    try:
        url = request.getfixturevalue("pg_url")
    except pytest.skip.Exception:
        url = f"sqlite:///{tmp_path / 'cs.db'}"
    config = tmp_path / "config.toml"
    config.write_text('[intensity]\nproviders = ["static"]\n')
    # squeue every 2 s (the default, 15 s, would slow the tests down)
    env = {"HOME": str(tmp_path), "PATH": "/usr/local/bin:/usr/bin:/bin",
           "CARBONSHIFT_SLURM_POLL_S": "2"}
    settings = load_settings(env=env, config_path=str(config),
                             overrides={"db": url, "data_dir": str(tmp_path / "data")})
    # a user's own CPU power figure: the node's wrapper must measure with it, as a local run would
    settings = replace(settings, default_zone="GB", lease_s=30.0, cpu_w_per_core=CPU_W_PER_CORE)
    application = App(settings, env=env)
    application.store.put_site(Site(name=SITE, zone="GB", executor="slurm", cpus=0))
    yield application
    for run in application.store.open_runs():  # leave nothing queued in Slurm
        if run.handle and run.handle.isdigit():
            SlurmExecutor().cancel(Handle(run.handle))
    application.close()


def submit(app: App, argv: list[str], *, start_in_s: float = 0.0, gpus: int = 0,
           workdir: Path) -> tuple[int, datetime]:
    not_before = datetime.now(UTC) + timedelta(seconds=start_in_s) if start_in_s else None
    res = app.queue.submit(SubmitRequest(
        argv=argv, duration_s=60, name="slurm-job", site=SITE, cwd=str(workdir), gpus=gpus,
        submitter_env={"PATH": "/usr/local/bin:/usr/bin:/bin"}, not_before=not_before,
        overrides=Policy(name="(flags)", run_now=True, deadline_s=6 * 3600),
    ))
    assert res.job.id is not None
    return res.job.id, res.entry.start


def run_daemon(app: App, *, until: object, timeout_s: float,
               slurm_bin_dir: str | None = None) -> list[str]:
    lines: list[str] = []
    daemon = Daemon(app, sites=[SITE], sample_interval_s=0.5, tick_s=0.5,
                    on_event=lines.append, agent="slurm-agent")
    if slurm_bin_dir is not None:  # the daemon's own Slurm executor, commands from there
        executor = daemon.executor_for("slurm")
        assert isinstance(executor, SlurmExecutor)
        executor.bin_dir = slurm_bin_dir
    t = threading.Thread(target=daemon.run_forever, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until():  # type: ignore[operator]
            time.sleep(0.5)
    finally:
        daemon.stop()
        t.join(30)
    return lines


def test_planned_job_runs_at_its_time_in_slurm_is_measured_and_in_history(
    app: App, tmp_path: Path
) -> None:
    marker = tmp_path / "started.txt"
    burn = (f"import time; open({str(marker)!r}, 'w').write(repr(time.time())); end = time.time() + 3\n"
            "while time.time() < end: pass\nprint('done')")
    job_id, planned = submit(app, [sys.executable, "-c", burn], start_in_s=20, workdir=tmp_path)
    assert planned > datetime.now(UTC) + timedelta(seconds=15)

    def done() -> bool:
        return app.store.get_job(job_id).state in (JobState.SUCCEEDED, JobState.FAILED, JobState.LOST)

    lines = run_daemon(app, until=done, timeout_s=150)
    job = app.store.get_job(job_id)
    assert job.state is JobState.SUCCEEDED, "\n".join(lines)
    (run,) = app.store.runs_for_job(job_id)
    assert run.executor == "slurm" and run.handle is not None and run.handle.isdigit()
    assert run.host == "slurm-agent"
    # it ran at its planned time: not before, and within Slurm's scheduling pass after
    started = datetime.fromtimestamp(float(marker.read_text()), UTC)
    assert started >= planned, (started, planned)
    assert (started - planned).total_seconds() < 60, (started, planned)
    assert run.started_at >= planned - timedelta(seconds=1)  # Slurm's own start time
    assert Path(run.out_path or "").read_text().strip() == "done"
    # measured on the node by the wrapper, into the shared database
    samples = app.store.samples_for_run(run.id or 0)
    assert samples, "\n".join(lines)
    cpu = [s for s in samples if s.method is Method.CPU_TIME_ESTIMATE]
    assert sum(s.energy_j for s in cpu) > 0
    # with the user's settings (cpu_w_per_core), not the node's defaults
    assert all(f" x {CPU_W_PER_CORE:g} W/core" in s.note for s in cpu), [s.note for s in cpu]
    acct = app.store.get_run(run.id or 0).accounting
    assert acct is not None and acct.energy_j > 0 and acct.emissions_g > 0
    # and it shows up in history
    rows = {r.id: r for r in history_rows(app.store)}
    row = rows[job_id]
    assert row.state == "succeeded" and row.site == SITE
    assert row.energy_kwh is not None and row.energy_kwh > 0
    assert "cpu_time_estimate" in (row.energy_method or "")
    print(f"\nslurm job {run.handle}: planned {planned:%H:%M:%S}, started {started:%H:%M:%S.%f} "
          f"({(started - planned).total_seconds():.1f} s after), {acct.energy_j:.1f} J")


def test_sbatch_refusal_fails_the_job_with_slurms_message(app: App, tmp_path: Path) -> None:
    job_id, _ = submit(app, ["/bin/true"], gpus=64, workdir=tmp_path)

    def done() -> bool:
        return app.store.get_job(job_id).state is JobState.FAILED

    lines = run_daemon(app, until=done, timeout_s=60)
    job = app.store.get_job(job_id)
    assert job.state is JobState.FAILED, "\n".join(lines)
    (run,) = app.store.runs_for_job(job_id)
    assert "sbatch refused" in run.reason and "gres" in run.reason.lower(), run.reason
    assert "sbatch refused" in job.note


def test_job_vanished_from_slurm_is_lost_with_the_reason(app: App, tmp_path: Path) -> None:
    job_id, _ = submit(app, ["/bin/true"], workdir=tmp_path)
    # an earlier agent of this name submitted it as a Slurm job that Slurm no longer knows;
    # it has lost all the runs it may, so the job is not requeued but lost
    for _ in range(MAX_LOST_RUNS - 1):
        app.store.add_run(Run(job_id=job_id, site=SITE, executor="slurm", host="slurm-agent",
                              started_at=datetime.now(UTC), finished_at=datetime.now(UTC),
                              state=JobState.LOST, reason="an earlier lost run"))
    assert app.store.transition(job_id, JobState.RUNNING, expected={JobState.PLANNED})
    app.store.add_run(Run(job_id=job_id, site=SITE, executor="slurm", host="slurm-agent",
                          started_at=datetime.now(UTC), handle="999999",
                          lease_until=datetime.now(UTC) + timedelta(seconds=30)))

    def done() -> bool:
        return app.store.get_job(job_id).state is JobState.LOST

    lines = run_daemon(app, until=done, timeout_s=60)
    assert app.store.get_job(job_id).state is JobState.LOST, "\n".join(lines)
    run = app.store.runs_for_job(job_id)[-1]
    assert run.state is JobState.LOST
    assert "Slurm job 999999 vanished" in run.reason and "squeue" in run.reason, run.reason
    assert "vanished" in app.store.get_job(job_id).note


def test_cancel_stops_the_slurm_job(app: App, tmp_path: Path) -> None:
    job_id, _ = submit(app, ["/bin/sleep", "120"], workdir=tmp_path)
    cancelled: dict[str, bool] = {}

    def until() -> bool:
        runs = app.store.runs_for_job(job_id)
        if runs and runs[-1].handle and not cancelled:
            state = SlurmExecutor().state(Handle(runs[-1].handle))
            if state is JobState.RUNNING:
                app.queue.cancel(job_id)
                cancelled["at"] = True
        return bool(runs) and runs[-1].finished_at is not None

    lines = run_daemon(app, until=until, timeout_s=120)
    (run,) = app.store.runs_for_job(job_id)
    assert app.store.get_job(job_id).state is JobState.CANCELLED, "\n".join(lines)
    assert run.state is JobState.CANCELLED and run.finished_at is not None
    info = SlurmExecutor().info(Handle(run.handle or ""))
    assert info is not None and info.state.startswith("CANCELLED"), info


def test_cancel_stops_what_the_slurm_job_left_its_session_for(app: App, tmp_path: Path) -> None:
    """A job whose child calls ``setsid`` (and so leaves the job's group and session, which
    Slurm's process tracking follows by parent pid): the node's wrapper keeps it as its own
    and stops it with the job when it is cancelled."""
    pidfile = tmp_path / "escaped.pid"
    script = (f"setsid sh -c 'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 60' & "
              "exec sleep 120")
    job_id, _ = submit(app, ["/bin/sh", "-c", script], workdir=tmp_path)
    seen: dict[str, int] = {}

    def until() -> bool:
        if pidfile.exists() and not seen:
            seen["pid"] = int(pidfile.read_text())
            seen["sid"] = os.getsid(seen["pid"])  # its own session: it left the job's
            app.queue.cancel(job_id)
        runs = app.store.runs_for_job(job_id)
        return bool(runs) and runs[-1].finished_at is not None

    lines = run_daemon(app, until=until, timeout_s=120)
    assert seen and seen["sid"] == seen["pid"], (seen, "\n".join(lines))
    assert app.store.get_job(job_id).state is JobState.CANCELLED, "\n".join(lines)
    escaped = seen["pid"]
    deadline = time.monotonic() + 30
    while escaped and _alive(escaped) and time.monotonic() < deadline:
        time.sleep(0.2)
    survived = bool(escaped) and _alive(escaped)
    if survived:
        os.kill(escaped, 9)
    assert not survived, "the setsid grandchild outlived the cancelled Slurm job"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def counting_shims(tmp_path: Path, log: Path) -> str:
    """A bin dir of Slurm's commands that each log the time and their argv, then run the
    real command."""
    bin_dir = tmp_path / "shims"
    bin_dir.mkdir()
    for name in ("sbatch", "squeue", "sacct", "scontrol", "scancel"):
        real = shutil.which(name)
        if real is None:
            continue
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\necho "$(date +%s.%N) {name} $*" >> {shlex.quote(str(log))}\n'
                        f'exec {shlex.quote(real)} "$@"\n')
        shim.chmod(0o755)
    return str(bin_dir)


def test_one_squeue_call_per_poll_follows_all_runs(app: App, tmp_path: Path) -> None:
    """Issue 15: the agent follows its N Slurm runs with ONE squeue call naming all of them
    every slurm_poll_s (2 s here), not one call per run per tick; nothing else is asked
    while they are live (no scontrol, no sacct)."""
    n = 5
    log = tmp_path / "slurm-calls.log"
    assert app.settings.slurm_poll_s == 2.0
    for _ in range(n):
        submit(app, ["/bin/sleep", "120"], workdir=tmp_path)  # 2 run, 3 pend (2 CPUs)

    def calls() -> list[tuple[float, str]]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [(float(t), rest) for t, _, rest in (ln.partition(" ") for ln in lines)]

    def after_launches() -> list[tuple[float, str]]:
        seen = calls()
        launches = [i for i, (_, c) in enumerate(seen) if c.startswith("sbatch ")]
        return seen[launches[-1] + 1 :] if len(launches) == n else []

    lines = run_daemon(app, until=lambda: len(after_launches()) >= 4, timeout_s=120,
                       slurm_bin_dir=counting_shims(tmp_path, log))
    followed = after_launches()
    assert len(followed) >= 4, "\n".join(lines + [c for _, c in calls()])
    handles = {r.handle for r in app.store.open_runs()}
    assert len(handles) == n and all(h and h.isdigit() for h in handles)
    for _, call in followed:
        assert call.startswith("squeue "), call  # nothing but the one squeue per poll
        job_ids = call.split(" -j ", 1)[1].split(" ", 1)[0].split(",")
        assert sorted(job_ids) == sorted(handles), call  # all N runs in that one call
    # at most one call per 2 s poll (a slow machine only spaces them out more)
    window_s = followed[-1][0] - followed[0][0]
    assert len(followed) <= window_s / 2.0 + 3, (window_s, followed)


def test_shadowing_job_folder_neither_breaks_nor_unmeasures_a_slurm_run(
    app: App, tmp_path: Path
) -> None:
    """Issue 15.3 on Slurm: the job's folder holds scheduler.py, intensity.py and
    probes/__init__.py, each raising on import, and the job's environment names that folder
    in PYTHONPATH, so the batch script exports it before it starts our wrapper on the node
    (tests/slurm/test_slurm_isolation.py sets it for the job only). The wrapper runs
    isolated (helper_argv), so the job runs, imports its own module, and is measured."""
    proj = tmp_path / "proj"
    for name in ("scheduler.py", "intensity.py", "probes/__init__.py"):
        (proj / name).parent.mkdir(parents=True, exist_ok=True)
        (proj / name).write_text(f"raise RuntimeError('shadowed: {name} from the job folder')\n")
    (proj / "mine.py").write_text("NAME = 'mine'\n")
    (proj / "job.py").write_text(
        "import time, mine\nend = time.time() + 3\nwhile time.time() < end: pass\nprint(mine.NAME)\n")
    res = app.queue.submit(SubmitRequest(
        argv=[sys.executable, "job.py"], duration_s=60, name="shadowed", site=SITE, cwd=str(proj),
        submitter_env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(proj)},
        overrides=Policy(name="(flags)", run_now=True, deadline_s=6 * 3600),
    ))
    job_id = res.job.id
    assert job_id is not None

    def done() -> bool:
        return app.store.get_job(job_id).state in TERMINAL_STATES | {JobState.LOST}

    lines = run_daemon(app, until=done, timeout_s=150)
    job = app.store.get_job(job_id)
    run = app.store.runs_for_job(job_id)[-1]
    err = Path(run.err_path or "").read_text() if run.err_path else ""
    assert job.state is JobState.SUCCEEDED, (job.note, err, "\n".join(lines))
    assert "shadowed" not in err, err
    assert Path(run.out_path or "").read_text().strip() == "mine"  # the job's own import
    samples = app.store.samples_for_run(run.id or 0)
    assert samples and sum(s.energy_j for s in samples) > 0, ("unmeasured", err)
