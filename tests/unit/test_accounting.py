"""Accounting: actual-else-forecast intensity per sample, PUE, and the run-now counterfactual."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from intensity.model import IntensityPoint, Kind, Source
from probes.model import Method, Sample
from scheduler.accounting import J_PER_KWH, account, mean_power_w

T0 = datetime(2026, 5, 1, 0, tzinfo=UTC)


def pt(hour: int, value: float, kind: Kind = Kind.ACTUAL, source: Source = Source.PROVIDER,
       issued: datetime | None = None, provider: str = "test") -> IntensityPoint:
    return IntensityPoint("Z", T0 + timedelta(hours=hour), T0 + timedelta(hours=hour + 1), value,
                          kind, provider, issued_at=issued, source=source)


def smp(start_h: float, end_h: float, joules: float, method: Method = Method.RAPL,
        estimated: bool = False, device: str = "cpu") -> Sample:
    return Sample(T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h), device, joules, method, estimated)


def test_energy_times_actual_intensity_and_pue() -> None:
    pts = [pt(h, 100.0 * (h + 1)) for h in range(6)]
    samples = [smp(3, 4, J_PER_KWH)]  # 1 kWh during hour 3 (400 g/kWh)
    a = account(samples, pts, started_at=T0 + timedelta(hours=3), submitted_at=T0, pue=1.5)
    assert a.energy_j == J_PER_KWH and a.facility_energy_j == 1.5 * J_PER_KWH
    assert a.emissions_g == pytest.approx(1.5 * 400)
    # same profile started at submission: hour 0 at 100 g/kWh
    assert a.counterfactual_g == pytest.approx(1.5 * 100)
    assert a.saved_g == pytest.approx(-450)
    assert a.intensity_kind == "actual" and a.actual_share == pytest.approx(1.0)
    assert a.energy_method == "rapl" and a.measured_share == 1.0


def test_sub_interval_overlap_is_weighted() -> None:
    pts = [pt(0, 100.0), pt(1, 300.0)]
    a = account([smp(0.5, 1.5, J_PER_KWH)], pts, started_at=T0, submitted_at=T0)
    assert a.emissions_g == pytest.approx(200.0)


def test_actual_preferred_then_latest_forecast_then_static() -> None:
    early = T0 - timedelta(hours=5)
    late = T0 - timedelta(hours=1)
    pts = [
        pt(0, 999.0, Kind.FORECAST, issued=early),
        pt(0, 200.0, Kind.FORECAST, issued=late),          # newest vintage wins over the older
        pt(1, 50.0, Kind.ACTUAL),                          # actual beats any forecast
        pt(1, 500.0, Kind.FORECAST, issued=late),
        pt(2, 300.0, Kind.FORECAST, Source.STATIC, provider="static"),  # only the static average
    ]
    a = account([smp(0, 1, J_PER_KWH), smp(1, 2, J_PER_KWH), smp(2, 3, J_PER_KWH)], pts,
                started_at=T0, submitted_at=T0)
    assert a.emissions_g == pytest.approx(200 + 50 + 300)
    assert a.intensity_kind == "mixed"
    assert a.actual_share == pytest.approx(50 / 550)
    assert set(a.intensity_provider.split("+")) == {"test", "static"}


def test_methods_listed_by_energy_and_measured_share() -> None:
    pts = [pt(0, 100.0)]
    samples = [smp(0, 0.5, 3000.0, Method.NVML_ENERGY_COUNTER, device="gpu:0"),
               smp(0, 0.5, 1000.0, Method.CPU_TIME_ESTIMATE, estimated=True)]
    a = account(samples, pts, started_at=T0, submitted_at=T0)
    assert a.energy_method == "nvml_energy_counter+cpu_time_estimate"
    assert a.measured_share == pytest.approx(0.75)


def test_no_samples_no_figures() -> None:
    a = account([], [pt(0, 100.0)], started_at=T0, submitted_at=T0)
    assert a.energy_j == 0 and a.emissions_g == 0 and a.intensity_kind == "none"


def test_mean_power() -> None:
    assert mean_power_w([smp(0, 1, 3600.0), smp(0, 1, 3600.0, device="gpu:0")]) == pytest.approx(2.0)
    assert mean_power_w([]) is None


def test_a_paused_run_counts_only_its_intervals_and_run_now_has_no_pauses() -> None:
    # submitted at 0; ran hours 1-2 and 4-5 (paused 2-4); 1 kWh in each interval
    from scheduler.accounting import counterfactual_window

    pts = [pt(h, v) for h, v in enumerate([100, 200, 900, 900, 300, 50, 50])]
    samples = [smp(1, 1.5, J_PER_KWH / 2), smp(1.5, 2, J_PER_KWH / 2), smp(4, 5, J_PER_KWH)]
    intervals = [(T0 + timedelta(hours=1), T0 + timedelta(hours=2)),
                 (T0 + timedelta(hours=4), T0 + timedelta(hours=5))]
    a = account(samples, pts, started_at=T0 + timedelta(hours=1), submitted_at=T0,
                intervals=intervals)
    assert a.emissions_g == pytest.approx(200 + 300)
    # run now: the same two kWh laid end to end from submission, hours 0 and 1
    assert a.counterfactual_g == pytest.approx(100 + 200)
    assert counterfactual_window(samples, started_at=T0 + timedelta(hours=1), submitted_at=T0,
                                 intervals=intervals) == (T0, T0 + timedelta(hours=2))
    # without the intervals the pause would be shifted along: hour 3 (900) for the second
    b = account(samples, pts, started_at=T0 + timedelta(hours=1), submitted_at=T0)
    assert b.counterfactual_g == pytest.approx(100 + 900)
    assert b.emissions_g == a.emissions_g
