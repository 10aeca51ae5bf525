"""A re-plan puts paused jobs' remaining work and waiting jobs through ONE plan() call, and
the planner's hysteresis is the only rule that keeps a placement in force (real planner,
real SQLite file, the dirty-middle trace, a clock that only moves when told)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import scheduler.queue.replan as replan_module
from scheduler.app import App
from scheduler.clock import ManualClock
from scheduler.model import JobState
from scheduler.planner import plan
from tests.integration.conftest import make_app
from tests.integration.test_interruptible import HOUR, ORIGIN, T17, T19, T20
from tests.planner import test_suspended_replan
from tests.planner.test_suspended_replan import paused_after_its_first_interval, req

app = test_suspended_replan.app  # the same fixture: an app on the dirty-middle trace


def test_paused_and_waiting_jobs_are_planned_in_one_call(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    paused = paused_after_its_first_interval(app)
    app.store.replan_suspended(paused, [(T20, T20 + HOUR)], app.clock.now())  # outdated
    waiting = app.queue.submit(req(1, deadline_h=6), now=app.clock.now()).job.id
    calls: list[list[int | None]] = []

    def counted(jobs, *args, **kw):  # type: ignore[no-untyped-def]
        calls.append([j.id for j in jobs])
        return plan(jobs, *args, **kw)

    monkeypatch.setattr(replan_module, "plan", counted)
    _, moved = app.queue.replan(app.clock.now())
    assert calls == [[paused, waiting]]  # was one plan() per paused job, then the queue's
    assert [e.intervals for j, e in moved if j.id == paused] == [((T19, T20),)]
    assert app.store.get_job(paused).state is JobState.SUSPENDED


def test_no_hysteresis_keeps_a_paused_job_past_its_deadline(app: App) -> None:
    # the queue's own copy of the rule priced any intervals in force, even ones ending after
    # the job's deadline (20:58), and a hysteresis it could not beat kept them there; the
    # planner keeps only a placement that still fits the job's window
    job_id = paused_after_its_first_interval(app)
    late = [(T20 + timedelta(minutes=30), T20 + timedelta(minutes=90))]
    assert app.store.replan_suspended(job_id, late, app.clock.now())
    (moved,) = app.queue.replan_suspended(app.clock.now(), hysteresis_pct=100.0)
    assert moved[1].intervals == ((T19, T20),)
    assert app.store.planned_intervals([job_id])[job_id] == [(T19, T20)]


def test_without_hysteresis_a_paused_job_moves_only_for_a_gain(tmp_path: Path) -> None:
    # clean 17:00, 19:00 and 21:00 (equal), dirty between: the job's last hour, in force at
    # 21:00, saves nothing at 19:00, so even with no hysteresis it stays (the queue's copy
    # of the rule did this; the planner now does it for every paused job's intervals)
    start = ORIGIN.replace(minute=0) - timedelta(days=2)
    clean = {T17, T19, T19 + 2 * HOUR}
    path = tmp_path / "trace.csv"
    path.write_text("time,intensity_g_per_kwh\n" + "".join(
        f"{(t := start + i * HOUR).strftime('%Y-%m-%dT%H:%M:%SZ')},{100 if t in clean else 600}\n"
        for i in range(24 * 5)))
    app = make_app(tmp_path, origin=ORIGIN, trace=path)
    app.clock = ManualClock(ORIGIN)
    try:
        job_id = paused_after_its_first_interval(app, deadline_h=6)
        later = [(T19 + 2 * HOUR, T20 + 2 * HOUR)]
        assert app.store.replan_suspended(job_id, later, app.clock.now())
        assert not app.queue.replan_suspended(app.clock.now(), hysteresis_pct=0.0)
        assert app.store.planned_intervals([job_id])[job_id] == later
    finally:
        app.close()
