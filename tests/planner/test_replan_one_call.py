"""A re-plan puts paused jobs' remaining work and waiting jobs through ONE plan() call, and
the planner's hysteresis is the only rule that keeps a placement in force (real planner,
real SQLite file, the dirty-middle trace, a clock that only moves when told)."""

from __future__ import annotations

from datetime import timedelta

import pytest

import scheduler.queue.replan as replan_module
from scheduler.app import App
from scheduler.model import JobState
from scheduler.planner import plan
from tests.integration.test_interruptible import HOUR, T19, T20
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
