"""Re-planning a paused interruptible job's remaining work, and per-job transfer figures,
through the queue (real planner, real SQLite file, the dirty-middle trace, a clock that
only moves when told)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.clock import ManualClock
from scheduler.model import JobState, Policy, Run, Site
from scheduler.queue import SubmitRequest
from tests.integration.conftest import make_app
from tests.integration.test_interruptible import (
    HOUR,
    ORIGIN,
    T17,
    T18,
    T19,
    T20,
    dirty_middle_trace,
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = make_app(tmp_path, origin=ORIGIN, trace=dirty_middle_trace(tmp_path / "trace.csv"))
    a.clock = ManualClock(ORIGIN)
    yield a
    a.close()


def req(duration_h: float, *, deadline_h: float = 4, site: str | None = None, gpus: int = 0,
        **kw: object) -> SubmitRequest:
    return SubmitRequest(argv=["true"], duration_s=int(duration_h * 3600), site=site, gpus=gpus,
                         overrides=Policy(name="(flags)", deadline_s=int(deadline_h * 3600)),
                         submitter_env={"PATH": "/usr/bin:/bin"}, **kw)  # type: ignore[arg-type]


def paused_after_its_first_interval(app: App, **kw: object) -> int:
    """A 2 h job planned 17-18 + 19-20, run 17:00-18:00 and paused, as the daemon does."""
    res = app.queue.submit(req(2, pause_mode="stop", **kw))
    job_id = res.job.id
    assert job_id is not None and res.entry.intervals == ((T17, T18), (T19, T20))
    assert app.store.transition(job_id, JobState.RUNNING, expected={JobState.PLANNED})
    run = app.store.add_run(Run(job_id=job_id, site=res.entry.site, executor="local", started_at=T17))
    assert run.id is not None
    app.store.open_run_interval(run.id, T17)
    assert app.store.pause_run(job_id, run.id, T18, how="paused: SIGSTOP")
    app.clock.set(T18 + timedelta(minutes=5))  # type: ignore[attr-defined]
    return job_id


def test_a_paused_job_keeps_a_plan_that_is_still_good(app: App) -> None:
    job_id = paused_after_its_first_interval(app)
    _, moved = app.queue.replan(app.clock.now())
    assert all(j.id != job_id for j, _ in moved)
    assert app.store.planned_intervals([job_id])[job_id] == [(T17, T18), (T19, T20)]


def test_its_remaining_hour_moves_from_an_outdated_plan_to_the_clean_hour(app: App) -> None:
    job_id = paused_after_its_first_interval(app)
    assert app.store.replan_suspended(job_id, [(T20, T20 + HOUR)], app.clock.now())
    _, moved = app.queue.replan(app.clock.now())
    (entry,) = [e for j, e in moved if j.id == job_id]
    assert entry.intervals == ((T19, T20),)  # the hour it has left, in the clean hour
    assert app.store.planned_intervals([job_id])[job_id] == [(T19, T20)]
    job = app.store.get_job(job_id)
    assert job.state is JobState.SUSPENDED and "1h left" in job.note


def test_a_small_gain_does_not_move_it_under_the_hysteresis(app: App) -> None:
    job_id = paused_after_its_first_interval(app)
    # a minute later than the best: ~7% more gCO2 (one minute at 500 instead of 100)
    off = [(T19 + timedelta(minutes=1), T20 + timedelta(minutes=1))]
    assert app.store.replan_suspended(job_id, off, app.clock.now())
    assert not app.queue.replan_suspended(app.clock.now(), hysteresis_pct=10.0)
    assert app.store.planned_intervals([job_id])[job_id] == off
    (moved,) = app.queue.replan_suspended(app.clock.now(), hysteresis_pct=2.0)
    assert moved[1].intervals == ((T19, T20),)


def test_a_paused_job_holds_its_site_capacity(app: App) -> None:
    app.store.put_site(Site("box", "TRACE", gpus=1))
    job_id = paused_after_its_first_interval(app, site="box", gpus=1)
    app.queue.replan(app.clock.now())
    # another one-GPU job would like the clean 19:00 hour too, but it is held
    other = app.queue.submit(req(1, site="box", gpus=1), now=app.clock.now())
    (a, b), = other.entry.intervals
    assert b <= T19 or a >= T20, other.entry
    assert app.store.planned_intervals([job_id])[job_id][-1] == (T19, T20)


def test_per_job_transfer_figures_are_stored_and_used_by_the_planner(app: App) -> None:
    now = app.clock.now()
    for name in ("home", "away"):
        app.store.put_site(Site(name, "TRACE", gpus=1, transfer_delay_s=0))
    # the home GPU is taken for four hours: a job that must start at once has to move
    app.queue.submit(req(4, deadline_h=4, site="home", gpus=1), now=now)
    both = {"site": "home", "gpus": 1, "allowed_sites": ["home", "away"]}
    # with the destination site's figures (no delay) it would start at the clean 17:00
    plain, _, _ = app.queue.plan_one(app.queue.build_job(req(1, deadline_h=2, **both), now), now)
    assert plain.site == "away" and plain.start == T17
    moved = app.queue.submit(req(1, deadline_h=2, transfer_delay_s=1800, transfer_energy_j=1.8e6,
                                 **both), now=now)
    job = app.store.get_job(moved.job.id)  # type: ignore[arg-type]
    assert (job.transfer_delay_s, job.transfer_energy_j) == (1800, 1.8e6)
    assert moved.entry.site == "away" and "relocated" in moved.entry.reason
    assert moved.entry.start == now + timedelta(minutes=30)  # its own delay
    # and its own transfer energy: 0.5 kWh at the home zone's mean intensity, added
    assert moved.entry.expected_g > plain.expected_g + 50


def test_a_paused_stop_mode_job_holds_its_gpus_until_its_last_interval_ends() -> None:
    from dataclasses import replace

    from scheduler.holds import holds
    from tests.planner.helpers import job

    spans = [(T17, T18), (T19, T20)]
    base = replace(job(1, 2 * 3600, 0, 0, gpus=2, cpus=4, interruptible=True), planned_site="a")
    now = T18 + timedelta(minutes=5)
    stop = holds(replace(base, state=JobState.SUSPENDED, pause_mode="stop"), spans, now)
    assert ("a", now, T20, 2, 0) in stop  # frozen with its GPU memory: the GPUs stay taken
    assert ("a", T19, T20, 0, 4) in stop and all(g == 0 for *_, g, _ in stop[1:])
    ckpt = holds(replace(base, state=JobState.SUSPENDED, pause_mode="checkpoint"), spans, now)
    assert ckpt == [("a", T19, T20, 2, 4)]  # exited at its pause: holds only what it will run
