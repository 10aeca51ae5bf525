"""A cancel stops a running job here only when its executor declares its runs are processes
of this host (``Executor.host_bound``), whatever the executor is called: the queue asks the
executor it is handed, never its name (in memory, a fake engine, no processes)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.clock import ManualClock
from scheduler.config import load_settings
from scheduler.contracts import LaunchSpec
from scheduler.executors.fake import FakeExecutor, Script
from scheduler.model import Job, JobState, Run
from scheduler.queue import Queue
from scheduler.storage.memory import MemoryStore

T0 = datetime(2026, 3, 15, 12, tzinfo=UTC)


def _unused() -> Any:
    raise AssertionError("a cancel needs no forecast")


@pytest.mark.parametrize("host_bound", [True, False])
def test_a_cancel_stops_the_run_here_only_when_its_executor_is_host_bound(
        tmp_path: Path, host_bound: bool) -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    engine = FakeExecutor(clock, host_bound=host_bound, default=Script(duration_s=3600))
    settings = load_settings(env={"HOME": str(tmp_path)}, overrides={"data_dir": str(tmp_path)})
    queue = Queue(store=lambda: store, intensity=_unused, settings=lambda: settings, clock=lambda: clock,
                  user=lambda: "alice", executor=lambda name: engine if name == "any-name" else None)
    job = store.add_job(Job(name="j", argv=["true"], duration_s=600, zone="GB", submitted_at=T0,
                            earliest_start=T0, latest_start=T0 + timedelta(hours=1), deadline_at=None, owner="alice",
                            state=JobState.RUNNING, planned_start=T0, planned_site="local"))
    assert job.id is not None
    handle = engine.launch(LaunchSpec(job, 1, "out", "err", {}))
    store.add_run(Run(job_id=job.id, site="local", executor="any-name", started_at=T0,
                      host=socket.gethostname(), handle=handle.handle))
    _, was_running = queue.cancel(job.id)
    assert was_running
    assert queue.stop_here(job.id, 0.0) is host_bound
    assert engine.run_of(handle).cancelled is host_bound


def test_the_apps_lookup_stops_a_real_local_run_and_leaves_a_slurm_one(tmp_path: Path) -> None:
    """The App hands the queue the registry's engines: a real process under the local
    executor is stopped by the cancel; a run Slurm holds (host_bound false) is left to its agent."""
    import time

    from scheduler.executors.base import Handle
    from scheduler.executors.local import LocalExecutor
    from scheduler.model import Policy
    from scheduler.queue import SubmitRequest
    from tests.integration.conftest import make_app

    app = make_app(tmp_path)
    try:
        assert app.queue.ports.executor is not None and app.queue.ports.executor("slurm").host_bound is False  # type: ignore[union-attr]
        ids = []
        for _ in range(2):
            job = app.queue.submit(SubmitRequest(argv=["sleep", "60"], duration_s=600,
                                                 overrides=Policy(name="(flags)", run_now=True))).job
            assert job.id is not None and app.store.transition(job.id, JobState.RUNNING, expected={JobState.PLANNED})
            ids.append(job.id)
        local = LocalExecutor()
        out = tmp_path / "run.out"
        handle = local.launch(LaunchSpec(app.store.get_job(ids[0]), 1, str(out), str(tmp_path / "run.err"),
                                         {"PATH": "/usr/bin:/bin"}))
        host = socket.gethostname()
        app.store.add_run(Run(job_id=ids[0], site="local", executor="local", started_at=app.clock.now(),
                              host=host, handle=handle.handle))
        app.store.add_run(Run(job_id=ids[1], site="local", executor="slurm", started_at=app.clock.now(),
                              host=host, handle="12345"))
        for job_id in ids:
            assert app.queue.cancel(job_id)[1]
        assert app.queue.stop_here(ids[1], 0.5) is False
        assert app.queue.stop_here(ids[0], 0.5) is True
        deadline = time.monotonic() + 10
        while local.alive(Handle(handle.handle)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not local.alive(Handle(handle.handle))
    finally:
        app.close()
