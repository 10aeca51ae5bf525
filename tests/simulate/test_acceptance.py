"""The queue and the simulator refuse the same job with the same earliest finish: both ask
scheduler.domain.acceptance (the one rule) of a placement the planner makes past the
deadline, and the simulated user submits again with exactly the figure the queue names
(real planner, real SQLite file, a clock that only moves when told)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intensity.model import IntensityPoint, Kind
from scheduler.app import App
from scheduler.clock import ManualClock
from scheduler.domain.acceptance import DeadlineRefusal, give_deadline
from scheduler.model import Policy, Site
from scheduler.queue import SubmitRequest
from scheduler.simulate import SimJob, TraceIndex, perfect_forecaster, run_mode
from tests.integration.conftest import make_app

HOUR = timedelta(hours=1)
T17 = datetime(2026, 3, 15, 17, tzinfo=UTC)
START = T17 - timedelta(days=2)
HOURS = [START + i * HOUR for i in range(24 * 5)]


def value_at(t: datetime) -> float:
    return 100.0 + 50.0 * (t.hour % 5)  # any shape: with the GPU taken, only capacity decides


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    path = tmp_path / "trace.csv"
    path.write_text("time,intensity_g_per_kwh\n" + "".join(
        f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{value_at(t)}\n" for t in HOURS))
    a = make_app(tmp_path, origin=T17, trace=path)
    a.clock = ManualClock(T17)
    a.store.put_site(Site("box", "TRACE", gpus=1))
    yield a
    a.close()


def req(duration_s: int, deadline_s: int) -> SubmitRequest:
    return SubmitRequest(argv=["true"], duration_s=duration_s, site="box", gpus=1,
                         overrides=Policy(name="(flags)", deadline_s=deadline_s),
                         submitter_env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(("second_s", "deadline_s"), [(5400, 7200), (3600, 9000)])
def test_queue_and_simulate_refuse_with_the_same_earliest_finish(
        app: App, second_s: int, deadline_s: int) -> None:
    # a 2 h job that must start now takes the one GPU 17:00-19:00; a second job due
    # before the GPU frees up plus its own length is refused
    assert app.queue.submit(req(7200, 7200)).entry.start == T17
    with pytest.raises(DeadlineRefusal) as refusal:
        app.queue.submit(req(second_s, deadline_s))
    queue_fits = refusal.value.earliest_finish
    assert queue_fits == T17 + 2 * HOUR + timedelta(seconds=second_s)
    assert give_deadline(queue_fits, T17) in str(refusal.value)

    points = [IntensityPoint("TRACE", t, t + HOUR, value_at(t), Kind.ACTUAL, "test") for t in HOURS]
    traces = {"TRACE": TraceIndex(points)}
    workload = [SimJob(1, T17, 7200, T17 + timedelta(seconds=7200), "TRACE", gpus=1),
                SimJob(2, T17, second_s, T17 + timedelta(seconds=deadline_s), "TRACE", gpus=1)]
    res = run_mode("carbon-aware", workload, {"TRACE": Site("TRACE", "TRACE", gpus=1)}, traces,
                   perfect_forecaster(traces), one_at_a_time=True)
    first, second = res.outcomes[1], res.outcomes[2]
    assert not first.refused and first.refused_with is None
    assert second.refused and second.refused_with == queue_fits
    assert second.intervals[-1][1] == queue_fits and not second.missed
