"""The progress protocol and the projection of a running job's total."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intensity.model import IntensityPoint, Kind
from probes.model import Method, Sample
from scheduler.model import Event
from scheduler.progress import (
    Progress,
    last_projection,
    parse_progress,
    progress_path_for,
    project,
    projection_error_pct,
    projection_message,
    read_progress,
    recent_power_w,
    write_progress,
)

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _samples(n: int, watts: float = 100.0, step_s: int = 10) -> list[Sample]:
    return [
        Sample(T + timedelta(seconds=i * step_s), T + timedelta(seconds=(i + 1) * step_s), "cpu",
               watts * step_s, Method.RAPL)
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("text", "fraction", "desc"),
    [
        ('{"done": 3, "total": 10, "unit": "epoch"}', 0.3, "epoch 3/10"),
        ('{"fraction": 0.25}', 0.25, "25%"),
        ("epoch 4/8", 0.5, "epoch 4/8"),
        ("7/7\n", 1.0, "7/7"),
        ('{"done": 12, "total": 10}', 1.0, "12/10"),
    ],
)
def test_parse_progress(text: str, fraction: float, desc: str) -> None:
    p = parse_progress(text)
    assert p is not None
    assert p.fraction == pytest.approx(fraction)
    assert p.describe() == desc


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '{"done": 3}', '{"done": 1, "total": 0}',
                                  "hello", '{"fraction": true}', '{"fraction": NaN}'])
def test_garbled_progress_is_no_progress(text: str) -> None:
    assert parse_progress(text) is None


def test_write_then_read_progress_atomically(tmp_path: Path) -> None:
    target = tmp_path / "run-1.progress.json"
    assert write_progress(2, 5, unit="epoch", env={"CARBONSHIFT_PROGRESS_FILE": str(target)})
    assert json.loads(target.read_text())["done"] == 2
    p = read_progress(target)
    assert p is not None and p.fraction == pytest.approx(0.4) and p.unit == "epoch"
    assert not list(tmp_path.glob(".progress-*"))  # no temporary file left behind
    # without the variable the helper is a no-op, so scripts run without carbonshift
    assert write_progress(1, 2, env={}) is False
    assert read_progress(tmp_path / "missing.json") is None
    (tmp_path / "huge.json").write_text("x" * 10000)
    assert read_progress(tmp_path / "huge.json") is None


def test_progress_path_follows_the_log_path() -> None:
    assert progress_path_for("/d/logs/job-3/run-7.out") == "/d/logs/job-3/run-7.progress.json"


def test_recent_power_sums_devices() -> None:
    s = _samples(10) + [Sample(x.start, x.end, "gpu:0", 200.0 * 10, Method.NVML_ENERGY_COUNTER)
                        for x in _samples(10)]
    assert recent_power_w(s, T + timedelta(seconds=100), 30) == pytest.approx(300.0)
    assert recent_power_w([], T) == 0.0


def test_projection_from_duration() -> None:
    # 100 s at 100 W so far of a 400 s job: 10 kJ so far, 30 kJ to go
    p = project(_samples(10), started_at=T, now=T + timedelta(seconds=100), duration_s=400)
    assert p.basis == "duration"
    assert p.energy_j == pytest.approx(10_000)
    assert p.remaining_s == pytest.approx(300)
    assert p.total_energy_j == pytest.approx(40_000)
    assert p.fraction_done == pytest.approx(0.25)
    assert p.total_emissions_g is None  # no intensity known


def test_projection_from_progress_beats_the_duration() -> None:
    prog = Progress(0.5, 5, 10, "epoch")
    p = project(_samples(10), started_at=T, now=T + timedelta(seconds=100), duration_s=400,
                progress=prog)
    assert p.basis == "progress"
    assert p.total_energy_j == pytest.approx(20_000)
    assert p.remaining_s == pytest.approx(100)
    assert "epoch 5/10" in p.describe()


def test_projection_past_the_estimate_is_a_lower_bound() -> None:
    p = project(_samples(10), started_at=T, now=T + timedelta(seconds=100), duration_s=50)
    assert p.basis == "overrun" and p.remaining_s is None
    assert p.total_energy_j == pytest.approx(p.energy_j)
    assert "at least" in p.describe()


def test_projected_emissions_use_the_forecast_for_the_rest() -> None:
    # 200 g/kWh until 12:05, then 100 g/kWh; 10 kJ so far, 30 kJ over the next 300 s
    pts = [
        IntensityPoint("GB", T, T + timedelta(minutes=5), 200.0, Kind.ACTUAL, "replay"),
        IntensityPoint("GB", T + timedelta(minutes=5), T + timedelta(hours=1), 100.0, Kind.FORECAST, "replay"),
    ]
    p = project(_samples(10), started_at=T, now=T + timedelta(seconds=100), duration_s=400, points=pts)
    assert p.emissions_g == pytest.approx(10_000 / 3.6e6 * 200)
    # the remaining 300 s: 200 s at 200 g/kWh, 100 s at 100 g/kWh
    rest = 30_000 / 3.6e6 * (200 * 200 + 100 * 100) / 300
    assert p.total_emissions_g == pytest.approx(p.emissions_g + rest)
    assert p.intensity_now_g_per_kwh == 200.0


def test_projection_event_round_trip_and_error() -> None:
    p = project(_samples(10), started_at=T, now=T + timedelta(seconds=100), duration_s=400,
                progress=Progress(0.5, 5, 10, "epoch"))
    msg = projection_message(p)
    events = [Event(1, T, "started", "run 1"), Event(1, T + timedelta(seconds=100), "projection", msg),
              Event(1, T + timedelta(seconds=200), "finished", "ok")]
    stored = last_projection(events)
    assert stored is not None
    assert stored.energy_kwh == pytest.approx(20_000 / 3.6e6, rel=1e-5)
    assert stored.fraction_done == pytest.approx(0.5)
    assert stored.emissions_g is None
    assert projection_error_pct(stored.energy_kwh, 20_000 / 3.6e6 * 1.25) == pytest.approx(-20.0, rel=1e-4)
    assert projection_error_pct(1.0, 0.0) is None
    assert last_projection([Event(1, T, "projection", "garbage")]) is None


def test_projection_event_of_a_tiny_job_has_no_e_notation() -> None:
    """`show` lists projection events: their figures are plain decimals that parse back."""
    from dataclasses import replace

    p = project(_samples(10), started_at=T, now=T + timedelta(seconds=100), duration_s=400,
                progress=Progress(0.5, 5, 10, "epoch"))
    tiny = replace(p, total_energy_j=1.234567e-4, total_emissions_g=3.663e-8)
    msg = projection_message(tiny)
    assert "projected total 0.0000000342935 Wh, 0.0000000366300 gCO2e" in msg, msg
    stored = last_projection([Event(1, T, "projection", msg)])
    assert stored is not None and stored.energy_kwh == pytest.approx(1.234567e-4 / 3.6e6, rel=1e-5)
    assert stored.emissions_g == pytest.approx(3.663e-8, rel=1e-5)


def test_recorder_writes_sparingly(tmp_path: Path) -> None:
    from scheduler.app import App
    from scheduler.config import load_settings
    from scheduler.progress import ProjectionRecorder

    app = App(load_settings(env={"HOME": str(tmp_path)}, overrides={"db": "sqlite://"}))
    from report_seed import seed_store

    ids = seed_store(app.store)
    job_id = ids["waiting"]
    clock = [1000.0]
    rec = ProjectionRecorder(min_s=10, max_s=300)
    rec._mono = lambda: clock[0]  # type: ignore[method-assign]
    now = T + timedelta(seconds=100)

    def proj(progress: Progress | None):  # type: ignore[no-untyped-def]
        return project(_samples(10), started_at=T, now=now, duration_s=400, progress=progress)

    assert rec.offer(app, job_id, proj(None), now)  # the first
    clock[0] += 1
    assert not rec.offer(app, job_id, proj(None), now)  # nothing new
    assert rec.offer(app, job_id, proj(Progress(0.1, 1, 10, "epoch")), now)  # first progress: at once
    clock[0] += 2
    assert not rec.offer(app, job_id, proj(Progress(0.2, 2, 10, "epoch")), now)  # moved, too soon
    clock[0] += 10
    assert rec.offer(app, job_id, proj(Progress(0.3, 3, 10, "epoch")), now)  # moved, 12 s later
    clock[0] += 299
    assert not rec.offer(app, job_id, proj(Progress(0.3, 3, 10, "epoch")), now)
    clock[0] += 2
    assert rec.offer(app, job_id, proj(Progress(0.3, 3, 10, "epoch")), now)  # every 5 minutes anyway
    kinds = [e for e in app.store.events_for_job(job_id) if e.kind == "projection"]
    assert len(kinds) == 4 and "epoch 3/10" in kinds[-1].message
    app.close()
