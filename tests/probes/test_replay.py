"""The replay probe: a recording read back as an EnergyProbe, exact and honest about its origin."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from probe_helpers import FakeClock

from probes.errors import ProbeError
from probes.model import Method, ProbeTarget, Sample
from probes.replay import ReplayProbe
from probes.sampler import Sampler

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
TARGET = ProbeTarget(pid=1, pgid=1)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_power_recording_is_integrated_exactly_between_and_inside_points() -> None:
    # 100 W for 10 s, then a ramp to 200 W over 10 s: 1000 J + 1500 J
    probe = ReplayProbe([(0, 100), (10, 100), (20, 200)], device="gpu:0", roles=frozenset({"gpu"}))
    probe.begin(TARGET, at(0))
    first = probe.read(at(5))
    second = probe.read(at(15))  # 5 s at 100 W + 5 s ramping 100 -> 150 W
    last = probe.end(at(20))
    assert [s.energy_j for s in first + second + last] == pytest.approx([500.0, 500.0 + 625.0, 875.0])
    assert sum(s.energy_j for s in first + second + last) == pytest.approx(2500.0)
    assert first[0] == Sample(at(0), at(5), "gpu:0", first[0].energy_j, Method.REPLAY, note="replay")
    assert str(first[0].method) == "replay" and not first[0].estimated


def test_energy_counter_is_interpolated_and_time_zero_is_begin() -> None:
    probe = ReplayProbe([(100, 5000), (110, 5400), (130, 5400)], kind="energy_j")
    probe.begin(TARGET, at(0))  # the recording's first point is time 0, whatever its clock said
    assert probe.read(at(5))[0].energy_j == pytest.approx(200.0)
    assert probe.read(at(30))[0].energy_j == pytest.approx(200.0)
    assert probe.duration_s == 30.0


def test_reading_past_the_end_raises_rather_than_inventing_energy() -> None:
    probe = ReplayProbe([(0, 10), (2, 10)])
    probe.begin(TARGET, at(0))
    with pytest.raises(ProbeError, match="outside the recording"):
        probe.read(at(3))


@pytest.mark.parametrize(
    ("points", "kw", "message"),
    [
        ([(0, 1)], {}, "two points"),
        ([(0, 1), (0, 2)], {}, "increase"),
        ([(0, -1), (1, 2)], {}, "negative"),
        ([(0, 5), (1, 4)], {"kind": "energy_j"}, "decrease"),
        ([(0, 5), (1, 4)], {"kind": "watts"}, "kind"),
    ],
)
def test_bad_recordings_are_refused(points: list[tuple[float, float]], kw: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReplayProbe(points, **kw)  # type: ignore[arg-type]


def test_csv_header_names_the_kind(tmp_path: Path) -> None:
    power = tmp_path / "power.csv"
    power.write_text("time_s,power_w\n0,50\n4,50\n")
    energy = tmp_path / "energy.csv"
    energy.write_text("time_s,energy_j\n0,0\n4,200\n")
    for path in (power, energy):
        probe = ReplayProbe.from_csv(path, device="cpu")
        probe.begin(TARGET, at(0))
        assert probe.end(at(4))[0].energy_j == pytest.approx(200.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("t,watts\n0,1\n")
    with pytest.raises(ValueError, match="header"):
        ReplayProbe.from_csv(bad)


def test_recorded_samples_replay_to_the_same_energy() -> None:
    recorded = [Sample(at(0), at(10), "gpu:0", 300.0, Method.NVML_ENERGY_COUNTER),
                Sample(at(10), at(40), "gpu:0", 600.0, Method.NVML_ENERGY_COUNTER)]
    probe = ReplayProbe.from_samples(recorded, roles=frozenset({"gpu"}))
    probe.begin(TARGET, at(1000))
    got = probe.read(at(1010)) + probe.end(at(1040))
    assert [s.energy_j for s in got] == pytest.approx([300.0, 600.0])
    assert {s.device for s in got} == {"gpu:0"}
    with pytest.raises(ValueError, match="contiguous"):
        ReplayProbe.from_samples([recorded[1], recorded[0]])


def test_sampler_over_a_replay_delivers_the_recordings_energy_then_falls_back_at_its_end() -> None:
    clock = FakeClock(start=T0, step=timedelta(seconds=10))
    got: list[Sample] = []
    short = ReplayProbe([(0, 3), (25, 3)])  # 25 s of recording; the clock moves 10 s per reading
    longer = ReplayProbe([(0, 1), (3600, 1)], method=Method.CPU_TIME_ESTIMATE, estimated=True)
    s = Sampler(TARGET, now=clock, sink=got.extend, interval_s=0.005, probes=[short, longer])
    s.start()
    deadline = time.monotonic() + 20
    while not any("failed mid-run" in n for n in s.notes) and time.monotonic() < deadline:
        time.sleep(0.005)
    s.stop()
    replayed = [x for x in got if x.method == Method.REPLAY]
    assert sum(x.energy_j for x in replayed) == pytest.approx(3 * 20)  # readings at 10 s and 20 s
    assert s.methods == ["replay", "cpu_time_estimate"]
    assert any("replay failed mid-run" in n and "outside the recording" in n for n in s.notes)
