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
