"""Faults around a running daemon: a locked database, a full disk, the log directory
removed, the clock jumping, a job flooding stdout. Each ends in a clear message and a
recoverable state; ``carbonshift db check`` finds the queue consistent afterwards."""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.cli.db import _check
from scheduler.clock import ManualClock
from scheduler.dispatch import Daemon
from scheduler.errors import StorageError
from scheduler.model import JobState
from scheduler.storage.store import HEAD_REVISION, SqlStore, open_store
from tests.cli.conftest import CS
from tests.integration.conftest import ORIGIN, PY, burn, make_app, request, run_daemon

pytestmark = pytest.mark.slow


def _consistent(app: App) -> None:
    store = open_store(app.settings.db, migrate=False)
    try:
        report = _check(store, HEAD_REVISION)
    finally:
        store.close()
    assert report["consistent"], report["problems"]
    assert not report["open_runs"], report


def _use_busy_timeout(app: App, seconds: float) -> None:
    app.close()
    app._store = open_store(app.settings.db, busy_timeout_s=seconds)


class _Locker:
    """Another process's writer holding the SQLite write lock."""

    def __init__(self, db: Path) -> None:
        self.con = sqlite3.connect(db, isolation_level=None, timeout=10)

    def __enter__(self) -> _Locker:
        self.con.execute("BEGIN IMMEDIATE")
        self.con.execute("UPDATE jobs SET priority = priority WHERE id = -1")
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.execute("COMMIT")
        self.con.close()


# -- the database locked by another writer for longer than the busy timeout ---------------
def test_submit_while_locked_fails_with_a_clear_message_then_recovers(app: App, tmp_path: Path) -> None:
    _use_busy_timeout(app, 0.3)
    db = tmp_path / "cs.db"
    with _Locker(db):
        t0 = time.monotonic()
        with pytest.raises(StorageError) as err:
            app.queue.submit(request(["true"], run_now=True))
        assert time.monotonic() - t0 < 3
    msg = str(err.value)
    assert "locked" in msg and "busy timeout" in msg and "\n" not in msg, msg
    assert app.store.list_jobs() == []  # nothing half-written
    res = app.queue.submit(request(["true"], run_now=True))  # the lock is gone: it works
    assert app.store.get_job(res.job.id).state is JobState.PLANNED  # type: ignore[arg-type]
    _consistent(app)


def test_cli_reports_a_locked_database_in_one_line(cs: CS) -> None:
    assert cs("db", "upgrade").code == 0
    with _Locker(cs.db_path):
        r = cs("policy", "set", "nightly", "--deadline", "12h")
    assert r.code == 1, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "locked" in lines[0] and "busy timeout" in lines[0], r.err
    assert "Traceback" not in r.err
    assert cs("policy", "set", "nightly", "--deadline", "12h").code == 0  # recovered
    assert cs("db", "check").code == 0


def test_daemon_rides_out_a_long_lock(app: App, tmp_path: Path) -> None:
    _use_busy_timeout(app, 0.2)
    ids = [app.queue.submit(request(burn(0.3), run_now=True)).job.id for _ in range(3)]
    lines: list[str] = []
    daemon = Daemon(app, sample_interval_s=0.1, tick_s=0.1, exit_when_idle=True, on_event=lines.append)
    t = threading.Thread(target=daemon.run_forever, daemon=True)
    with _Locker(tmp_path / "cs.db"):
        t.start()
        time.sleep(2.0)  # ten busy timeouts
    t.join(60)
    assert not t.is_alive(), lines
    assert any("database trouble" in ln and "locked" in ln for ln in lines), lines
    for job_id in ids:
        assert app.store.get_job(job_id).state is JobState.SUCCEEDED, lines  # type: ignore[arg-type]
        assert len(app.store.runs_for_job(job_id)) == 1  # type: ignore[arg-type]
    _consistent(app)


# -- disk full ---------------------------------------------------------------------------
@pytest.fixture
def tiny_fs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    size = getattr(request, "param", "256k")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_for_logs_the_job_still_finishes_and_says_output_was_dropped(
    tmp_path: Path, tiny_fs: Path
) -> None:
    from dataclasses import replace

    app = make_app(tmp_path)
    app.settings = replace(app.settings, data_dir=tiny_fs)
    try:
        flood = [PY, "-c", "import sys\nfor i in range(4000): print('x' * 200)\nprint('end')"]  # ~800 kB
        res = app.queue.submit(request(flood, run_now=True))
        _, lines = run_daemon(app)
        job = app.store.get_job(res.job.id)  # type: ignore[arg-type]
        assert job.state is JobState.SUCCEEDED, lines
        run = app.store.runs_for_job(job.id)[-1]  # type: ignore[arg-type]
        assert run.exit_code == 0
        assert len(app.store.runs_for_job(job.id)) == 1  # type: ignore[arg-type]
        # the exit record was written into space reserved at start; the loss is named
        assert "could not be logged" in run.reason and "disk full" in run.reason, run.reason
        assert job.note and "could not be logged" in job.note
    finally:
        app.close()


@pytest.mark.parametrize("tiny_fs", ["16m"], indirect=True)
def test_disk_full_for_samples_is_reported_and_recovers(tmp_path: Path, tiny_fs: Path) -> None:
    """The database's disk fills up while a job runs; space comes back; nothing is lost."""
    app = make_app(tmp_path, factor=1.0)
    db = tiny_fs / "cs.db"
    app.close()
    shutil.copy(tmp_path / "cs.db", db)
    app._store = open_store(f"sqlite:///{db}", busy_timeout_s=0.5)
    filler = tiny_fs / "filler"
    try:
        res = app.queue.submit(request(burn(2.5), run_now=True))
        free = shutil.disk_usage(tiny_fs).free
        lines: list[str] = []
        daemon = Daemon(app, sample_interval_s=0.1, tick_s=0.1, exit_when_idle=True, on_event=lines.append)
        t = threading.Thread(target=daemon.run_forever, daemon=True)
        t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not app.store.open_runs():
            time.sleep(0.05)
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)  # fill the disk
        try:
            os.write(fd, b"\0" * free)
        except OSError:
            pass
        os.close(fd)
        time.sleep(1.5)
        filler.unlink()  # space again
        t.join(60)
        assert not t.is_alive(), "\n".join(lines)
        assert any("disk is full" in ln for ln in lines), lines  # it was said, in one line
        job = app.store.get_job(res.job.id)  # type: ignore[arg-type]
        assert job.state is JobState.SUCCEEDED, lines
        assert len(app.store.runs_for_job(job.id)) == 1  # type: ignore[arg-type]
        run = app.store.runs_for_job(job.id)[-1]  # type: ignore[arg-type]
        samples = app.store.samples_for_run(run.id)  # type: ignore[arg-type]
        assert samples and run.accounting is not None
        covered = max(s.end for s in samples) - min(s.start for s in samples)
        assert covered >= (run.finished_at - run.started_at) * 0.5  # type: ignore[operator]
        store = app.store
        assert isinstance(store, SqlStore) and store.integrity_problems() == []
    finally:
        if filler.exists():
            filler.unlink()
        app.close()


# -- the log directory removed under a running job ------------------------------------------
def test_log_directory_removed_under_a_running_job(app: App) -> None:
    # the job waits (a go file) between its first lines and the rest, so the directory is
    # removed while it runs however loaded the machine is
    go = app.settings.log_dir.parent / "go-on"
    talk = [PY, "-c", "import os, sys, time\n"
            "for i in range(30):\n"
            "    print('line', i, flush=True)\n"
            "    while i == 4 and not os.path.exists(sys.argv[1]):\n"
            "        time.sleep(0.02)\n", str(go)]
    res = app.queue.submit(request(talk, run_now=True))
    lines: list[str] = []
    daemon = Daemon(app, sample_interval_s=0.1, tick_s=0.05, exit_when_idle=True, on_event=lines.append)
    t = threading.Thread(target=daemon.run_forever, daemon=True)
    t.start()
    log_root = app.settings.log_dir
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            "line 4" in p.read_text() for p in log_root.glob("job-*/run-*.out")):
        time.sleep(0.02)
    shutil.rmtree(log_root)
    go.write_text("")
    t.join(60)
    assert not t.is_alive()
    job = app.store.get_job(res.job.id)  # type: ignore[arg-type]
    assert job.state is JobState.SUCCEEDED, lines
    run = app.store.runs_for_job(job.id)[-1]  # type: ignore[arg-type]
    assert run.exit_code == 0
    out = Path(run.out_path).read_text()  # type: ignore[arg-type]
    assert "line 29" in out  # logging went on into a re-created directory
    assert oct(Path(run.out_path).parent.stat().st_mode & 0o777) == oct(0o700)  # type: ignore[arg-type]


# -- the clock jumping forward and back ------------------------------------------------------
def test_clock_jumps_forward_and_back(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    clock = ManualClock(ORIGIN)
    app.clock = clock
    lines: list[str] = []
    try:
        ids = []
        for i, after_h in enumerate((0, 2, 5, 9)):
            req = request(burn(0.3), duration="30m", deadline_s=int((after_h + 3) * 3600), name=f"j{i}")
            req.not_before = ORIGIN + timedelta(hours=after_h) if after_h else None
            ids.append(app.queue.submit(req, now=ORIGIN).job.id)
        daemon = Daemon(app, sample_interval_s=0.1, tick_s=0.05, on_event=lines.append)
        daemon.recover()
        daemon.replan()

        def spin(seconds: float, step_s: float = 0.0) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                daemon.tick()
                if step_s:
                    clock.advance(step_s)
                time.sleep(0.05)

        spin(0.5)  # j0 starts
        clock.advance(6 * 3600)  # jump forward 6 h: j1 (and j2) are due now, late
        spin(1.5)
        clock.advance(-4 * 3600)  # jump back 4 h, while jobs may be running
        spin(1.5)
        clock.advance(8 * 3600)  # forward past j3's start
        end = time.monotonic() + 30
        while time.monotonic() < end and any(
            app.store.get_job(j).state is not JobState.SUCCEEDED for j in ids  # type: ignore[arg-type]
        ):
            spin(0.2)
        daemon.detach()
        for job_id in ids:
            job = app.store.get_job(job_id)  # type: ignore[arg-type]
            assert job.state is JobState.SUCCEEDED, (job.name, job.state, lines)
            runs = app.store.runs_for_job(job_id)  # type: ignore[arg-type]
            assert len(runs) == 1, (job.name, runs)
            assert runs[0].finished_at is not None
        _consistent(app)
        text = "\n".join(lines)
        assert "after -" not in text, text  # no negative run time reported
    finally:
        app.close()


# -- a job writing a gigabyte to stdout ---------------------------------------------------
def test_gigabyte_of_stdout_is_capped_and_the_queue_stays_responsive(tmp_path: Path) -> None:
    from dataclasses import replace

    app = make_app(tmp_path)
    app.settings = replace(app.settings, log_max_bytes=1024 * 1024)
    gib = [PY, "-c", "import sys\nb = b'y' * 1048575 + b'\\n'\nw = sys.stdout.buffer.write\n"
                     "for _ in range(1024): w(b)\nsys.stdout.flush()"]
    try:
        res = app.queue.submit(request(gib, run_now=True, name="flood"))
        for _ in range(20):
            app.queue.submit(request(["true"], duration="1h", deadline_s=12 * 3600))
        lines: list[str] = []
        daemon = Daemon(app, sample_interval_s=0.2, tick_s=0.1, on_event=lines.append)
        t = threading.Thread(target=daemon.run_forever, daemon=True)
        t.start()
        latencies = []
        deadline = time.monotonic() + 120
        from scheduler.cli import main

        while time.monotonic() < deadline and app.store.get_job(res.job.id).state is not JobState.SUCCEEDED:  # type: ignore[arg-type]
            t0 = time.monotonic()
            app.store.list_jobs()  # what `carbonshift queue` reads
            latencies.append(time.monotonic() - t0)
            time.sleep(0.1)
        daemon.stop()
        t.join(30)
        _ = main
        job = app.store.get_job(res.job.id)  # type: ignore[arg-type]
        assert job.state is JobState.SUCCEEDED, lines
        run = app.store.runs_for_job(job.id)[-1]  # type: ignore[arg-type]
        out = Path(run.out_path)  # type: ignore[arg-type]
        total = sum(p.stat().st_size for p in out.parent.glob(out.name + "*"))
        assert total <= 2 * 1024 * 1024 + 65536, total  # the file and one rotation
        assert latencies and statistics.median(latencies) < 0.5, latencies
        print(f"\nqueue reads during a 1 GiB flood: n={len(latencies)} median={statistics.median(latencies)*1000:.1f} ms "
              f"max={max(latencies)*1000:.1f} ms")
    finally:
        app.close()


# -- a job ignoring SIGTERM, cancelled through the queue while the daemon runs it ------------
def test_cancel_escalates_to_sigkill_through_the_daemon(app: App, tmp_path: Path) -> None:
    """Issue 2's executor test calls ``cancel`` directly; here the owner cancels through the
    queue and the daemon stops the group: SIGTERM, then SIGKILL after the grace."""
    marker = tmp_path / "child.pid"
    script = ("import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "if os.fork() == 0:\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              f"    open({str(marker)!r}, 'w').write(str(os.getpid()))\n    time.sleep(120)\n"
              "time.sleep(120)\n")
    res = app.queue.submit(request([PY, "-c", script], run_now=True, duration="1h"))
    lines: list[str] = []
    daemon = Daemon(app, sample_interval_s=0.2, tick_s=0.1, exit_when_idle=True, on_event=lines.append)
    t = threading.Thread(target=daemon.run_forever, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.05)
    assert marker.exists(), lines
    t0 = time.monotonic()
    app.queue.cancel(res.job.id)  # type: ignore[arg-type]
    t.join(60)
    assert not t.is_alive(), lines
    assert time.monotonic() - t0 < 30  # the 10 s grace, then SIGKILL
    from scheduler.executors.local import _pid_alive

    assert not _pid_alive(int(marker.read_text())), "the forked child survived the cancel"
    job = app.store.get_job(res.job.id)  # type: ignore[arg-type]
    run = app.store.runs_for_job(job.id)[-1]  # type: ignore[arg-type]
    assert job.state is JobState.CANCELLED and run.state is JobState.CANCELLED, (job, run)
    assert run.exit_code == 137 or run.exit_code is None, run  # killed by SIGKILL
    assert any("cancel" in ln for ln in lines), lines
    _consistent(app)
