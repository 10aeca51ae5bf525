"""The daemon's decisions for an interruptible job's planned intervals (pure)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

from scheduler.intervals import PAUSE, RESUME, checkpoint_exit_ok, next_boundary, position

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)
SPANS = [(T0 + 2 * H, T0 + 3 * H), (T0, T0 + H)]  # any order


def test_a_running_job_pauses_at_the_end_of_an_interval_with_a_successor() -> None:
    assert next_boundary(SPANS, paused=False, now=T0 + 0.5 * H) == (PAUSE, T0 + H)
    # found running between intervals (late launch, restart): pause at once
    assert next_boundary(SPANS, paused=False, now=T0 + 1.5 * H) == (PAUSE, T0 + 1.5 * H)
    # in its last interval, or past it: runs until it exits
    assert next_boundary(SPANS, paused=False, now=T0 + 2.5 * H) is None
    assert next_boundary(SPANS, paused=False, now=T0 + 9 * H) is None
    assert next_boundary([], paused=False, now=T0) is None


def test_a_paused_job_resumes_at_the_next_interval_or_at_once() -> None:
    assert next_boundary(SPANS, paused=True, now=T0 + 1.5 * H) == (RESUME, T0 + 2 * H)
    assert next_boundary(SPANS, paused=True, now=T0 + 2.5 * H) == (RESUME, T0 + 2 * H)  # due
    # nothing ahead (the plan is gone or past): never left paused
    assert next_boundary(SPANS, paused=True, now=T0 + 5 * H) == (RESUME, T0 + 5 * H)
    assert next_boundary([], paused=True, now=T0) == (RESUME, T0)


def test_position_and_checkpoint_exits() -> None:
    assert position(SPANS, T0 + 0.5 * H) == (1, 2)
    assert position(SPANS, T0 + H) == (1, 2)
    assert position(SPANS, T0 + 2 * H) == (2, 2)
    usr1 = int(signal.SIGUSR1)
    assert checkpoint_exit_ok(0, usr1) and checkpoint_exit_ok(128 + usr1, usr1)
    assert not checkpoint_exit_ok(1, usr1) and not checkpoint_exit_ok(None, usr1)


def test_pause_signals_are_those_the_supervisor_passes_on() -> None:
    from scheduler.config import PAUSE_SIGNALS
    from scheduler.executors.supervise import FORWARDED_SIGNALS

    assert tuple(s.name for s in FORWARDED_SIGNALS) == PAUSE_SIGNALS


def test_a_projection_does_not_count_the_pauses_as_run_time() -> None:
    from probes.model import Method, Sample
    from scheduler.progress import project

    # ran 0-1 h and 3-3.5 h (paused 1-3 h) at 100 W; estimated 2 h in all
    samples = [Sample(T0 + k * 0.5 * H, T0 + (k + 1) * 0.5 * H, "cpu", 180_000.0, Method.RAPL)
               for k in (0, 1, 6)]
    p = project(samples, started_at=T0, now=T0 + 3.5 * H, duration_s=7200,
                intervals=[(T0, T0 + H), (T0 + 3 * H, None)])
    assert p.elapsed_s == 1.5 * 3600 and p.remaining_s == 0.5 * 3600
