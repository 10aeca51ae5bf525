"""Simulate and the live queue hold the same capacity for a split stop-mode GPU job: frozen
with its GPU memory through its pause, it keeps its GPU from its first interval's start to
its last one's end (scheduler.holds, the one rule), so a job submitted while it runs cannot
take the cheap hour in its pause, in the simulation as in the queue (real planner, real
SQLite file, a clock that only moves when told)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intensity.model import IntensityPoint, Kind
from scheduler.app import App
from scheduler.clock import ManualClock
from scheduler.model import JobState, Policy, Run, Site
from scheduler.queue import SubmitRequest
from scheduler.simulate import SimJob, TraceIndex, perfect_forecaster, run_mode
from tests.integration.conftest import make_app

HOUR = timedelta(hours=1)
ORIGIN = datetime(2026, 3, 15, 16, 58, tzinfo=UTC)
T17, T18, T19, T20 = (datetime(2026, 3, 15, h, tzinfo=UTC) for h in (17, 18, 19, 20))
B_SUBMIT = T17 + timedelta(minutes=30)
#: clean 17:00 and 19:00, a cheap 18:00 (the pause), dirty from 20:00
SPECIAL = {T17: 100.0, T18: 200.0, T19: 100.0}


def value_at(t: datetime) -> float:
    return SPECIAL.get(t, 900.0 if t >= T20 else 300.0)


def hours() -> list[datetime]:
    start = ORIGIN.replace(minute=0) - timedelta(days=2)
    return [start + i * HOUR for i in range(24 * 5)]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    path = tmp_path / "trace.csv"
    path.write_text("time,intensity_g_per_kwh\n" + "".join(
        f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{value_at(t)}\n" for t in hours()))
    a = make_app(tmp_path, origin=ORIGIN, trace=path)
    a.clock = ManualClock(ORIGIN)
    a.store.put_site(Site("box", "TRACE", gpus=1))
    yield a
    a.close()


def req(duration_h: float, deadline_h: float, **kw: object) -> SubmitRequest:
    return SubmitRequest(argv=["true"], duration_s=int(duration_h * 3600), site="box", gpus=1,
                         overrides=Policy(name="(flags)", deadline_s=int(deadline_h * 3600)),
                         submitter_env={"PATH": "/usr/bin:/bin"}, **kw)  # type: ignore[arg-type]


def live_start_of_the_second_job(app: App, pause_mode: str) -> datetime:
    """A 2 h interruptible job split 17-18 + 19-20 and started at 17:00; at 17:30 a 1 h
    job is submitted on the same one-GPU site: where does the queue plan it?"""
    first = app.queue.submit(req(2, 4, pause_mode=pause_mode))
    job_id = first.job.id
    assert job_id is not None and first.entry.intervals == ((T17, T18), (T19, T20))
    assert app.store.transition(job_id, JobState.RUNNING, expected={JobState.PLANNED})
    run = app.store.add_run(Run(job_id=job_id, site="box", executor="local", started_at=T17))
    assert run.id is not None
    app.store.open_run_interval(run.id, T17)
    app.clock.set(B_SUBMIT)  # type: ignore[attr-defined]
    return app.queue.submit(req(1, 6)).entry.start


def simulated_start_of_the_second_job() -> datetime:
    points = [IntensityPoint("TRACE", t, t + HOUR, value_at(t), Kind.ACTUAL, "test") for t in hours()]
    traces = {"TRACE": TraceIndex(points)}
    workload = [
        SimJob(1, ORIGIN, 2 * 3600, ORIGIN + 4 * HOUR, "TRACE", gpus=1, interruptible=True),
        SimJob(2, B_SUBMIT, 3600, B_SUBMIT + 6 * HOUR, "TRACE", gpus=1),
    ]
    res = run_mode("carbon-aware", workload, {"TRACE": Site("TRACE", "TRACE", gpus=1)}, traces,
                   perfect_forecaster(traces))
    assert res.outcomes[1].intervals == ((T17, T18), (T19, T20))
    return res.outcomes[2].intervals[0][0]


def test_a_split_stop_mode_job_keeps_its_gpu_through_its_pause_in_both(app: App) -> None:
    live = live_start_of_the_second_job(app, "stop")
    assert live == simulated_start_of_the_second_job() == T20  # not the cheap 18:00 hour


def test_a_checkpointing_job_gives_its_gpu_back_in_its_pause(app: App) -> None:
    # the control: a job that exits at its pause holds nothing in it, so the hour is taken
    assert live_start_of_the_second_job(app, "checkpoint") == T18
