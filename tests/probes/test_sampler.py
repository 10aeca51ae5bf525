"""The background sampler: first and last readings, fallbacks, batches, a failing sink."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime

import pytest
from probe_helpers import FakeClock, burner_code, reap, spawn

from probes.base import EnergyProbe
from probes.detect import ProbeConfig, default_probes
from probes.errors import ProbeError, ProbeUnavailable
from probes.model import Method, ProbeTarget, Sample
from probes.replay import ReplayProbe
from probes.sampler import Sampler

TARGET = ProbeTarget(pid=1, pgid=1)


class FakeProbe(EnergyProbe):
    """1 J per reading on ``device``; fails at begin or at the ``fail_at``-th read if told."""

    def __init__(
        self,
        method: Method,
        roles: frozenset[str],
        device: str,
        *,
        fail_begin: bool = False,
        fail_at: int | None = None,
    ) -> None:
        self.method = method
        self.roles = roles
        self.device = device
        self.fail_begin = fail_begin
        self.fail_at = fail_at
        self.reads = 0
        self.prev: datetime | None = None
        self.closed = False
        self.exit_cpu_s: float | None = None
        self.ended = False

    def begin(self, target: ProbeTarget, now: datetime) -> None:
        if self.fail_begin:
            raise ProbeUnavailable("no such device here")
        self.prev = now

    def read(self, now: datetime) -> list[Sample]:
        self.reads += 1
        if self.fail_at is not None and self.reads >= self.fail_at:
            raise ProbeError("device went away")
        assert self.prev is not None
        start, self.prev = self.prev, now
        return [Sample(start, now, self.device, 1.0, self.method)]

    def end(self, now: datetime) -> list[Sample]:
        self.ended = True
        return self.read(now)

    def observe_exit(self, *, cpu_s: float | None) -> None:
        self.exit_cpu_s = cpu_s

    def close(self) -> None:
        self.closed = True


def rapl(**kw: object) -> FakeProbe:
    return FakeProbe(Method.RAPL, frozenset({"cpu"}), "cpu", **kw)  # type: ignore[arg-type]


def estimate(**kw: object) -> FakeProbe:
    return FakeProbe(Method.CPU_TIME_ESTIMATE, frozenset({"cpu"}), "cpu", **kw)  # type: ignore[arg-type]


def gpu(**kw: object) -> FakeProbe:
    return FakeProbe(Method.NVML_ENERGY_COUNTER, frozenset({"gpu"}), "gpu:0", **kw)  # type: ignore[arg-type]


def test_short_job_gets_first_and_last_reading_and_one_flush(clock: FakeClock) -> None:
    batches: list[list[Sample]] = []
    probe = rapl()
    s = Sampler(TARGET, now=clock, sink=batches.append, interval_s=60, probes=[probe])
    s.start()
    s.stop(final_cpu_s=1.5)
    assert probe.ended and probe.closed and probe.exit_cpu_s == 1.5
    assert len(batches) == 1 and [x.energy_j for x in batches[0]] == [1.0]
    assert batches[0][0].start < batches[0][0].end
    assert s.methods == ["rapl"] and s.notes == []


def test_reads_every_interval_in_real_seconds_with_timestamps_from_now(clock: FakeClock) -> None:
    got: list[Sample] = []
    probe = rapl()
    s = Sampler(TARGET, now=clock, sink=got.extend, interval_s=0.02, probes=[probe], batch_size=1)
    s.start()
    time.sleep(0.3)
    s.stop()
    assert probe.reads >= 4
    # contiguous intervals on the injected clock
    assert all(a.end == b.start for a, b in itertools.pairwise(got))
    assert got[0].start.year == 2026


def test_fallback_probe_of_same_role_is_on_standby_only(clock: FakeClock) -> None:
    got: list[Sample] = []
    best, fallback = rapl(), estimate()
    s = Sampler(TARGET, now=clock, sink=got.extend, interval_s=0.01, probes=[best, fallback])
    s.start()
    time.sleep(0.05)
    s.stop()
    assert fallback.reads > 0  # read on standby...
    assert {x.method for x in got} == {Method.RAPL}  # ...but never counted twice
    assert s.methods == ["rapl"]


def test_probe_failing_mid_run_is_dropped_and_fallback_takes_over(clock: FakeClock) -> None:
    got: list[Sample] = []
    notes: list[str] = []
    best, fallback = rapl(fail_at=3), estimate()
    s = Sampler(
        TARGET,
        now=clock,
        sink=got.extend,
        interval_s=0.01,
        probes=[best, fallback],
        on_note=notes.append,
    )
    s.start()
    time.sleep(0.15)
    s.stop()
    assert best.closed
    assert s.methods == ["rapl", "cpu_time_estimate"]
    assert any(
        "rapl failed mid-run" in n and "cpu: fell back to cpu_time_estimate" in n for n in notes
    )
    assert notes == s.notes
    # the interval in which RAPL failed is covered by the fallback: no gap in time
    cpu = sorted(got, key=lambda x: x.start)
    assert all(a.end == b.start for a, b in itertools.pairwise(cpu))


def test_unavailable_at_start_says_why_and_what_measures_instead(clock: FakeClock) -> None:
    s = Sampler(
        TARGET,
        now=clock,
        sink=lambda b: None,
        probes=[gpu(fail_begin=True), rapl(fail_begin=True), estimate()],
    )
    s.start()
    s.stop()
    assert s.notes == [
        "nvml_energy_counter not available: no such device here; gpu: not measured",
        "rapl not available: no such device here; cpu: fell back to cpu_time_estimate",
    ]


def test_sink_failure_keeps_samples_and_retries(clock: FakeClock) -> None:
    calls: list[int] = []
    delivered: list[Sample] = []
    failing = threading.Event()
    failing.set()

    def sink(batch: list[Sample]) -> None:
        calls.append(len(batch))
        if failing.is_set():
            raise OSError("database is locked")
        delivered.extend(batch)

    recording = ReplayProbe([(0, 2.0), (3600, 2.0)])  # 2 W for an hour of the fake clock
    s = Sampler(TARGET, now=clock, sink=sink, interval_s=0.01, probes=[recording], batch_size=2)
    s.start()
    time.sleep(0.1)
    assert len(calls) >= 2 and not delivered
    failing.clear()
    s.stop()
    assert s.unflushed == []
    # every reading delivered exactly once, contiguous: the energy is the recording's, to the joule
    assert all(a.end == b.start for a, b in itertools.pairwise(delivered))
    span_s = (delivered[-1].end - delivered[0].start).total_seconds()
    assert sum(x.energy_j for x in delivered) == pytest.approx(2.0 * span_s)
    assert any("sink failed" in n and "database is locked" in n for n in s.notes)


def test_sink_still_failing_at_stop_leaves_samples_for_the_caller(clock: FakeClock) -> None:
    def sink(batch: list[Sample]) -> None:
        raise OSError("disk full")

    s = Sampler(TARGET, now=clock, sink=sink, interval_s=60, probes=[rapl()])
    s.start()
    s.stop()
    assert len(s.unflushed) == 1
    assert s.flush() is False
    assert any("sink still failing at stop" in n for n in s.notes)


def test_sink_failing_once_at_stop_is_retried(clock: FakeClock) -> None:
    delivered: list[Sample] = []
    failures = [OSError("database is locked")]

    def sink(batch: list[Sample]) -> None:
        if failures:
            raise failures.pop()
        delivered.extend(batch)

    s = Sampler(TARGET, now=clock, sink=sink, interval_s=60, probes=[rapl()])
    s.start()
    s.stop()
    assert len(delivered) == 1 and s.unflushed == []


def test_batches_are_flushed_at_batch_size(clock: FakeClock) -> None:
    sizes: list[int] = []
    s = Sampler(
        TARGET,
        now=clock,
        sink=lambda b: sizes.append(len(b)),
        interval_s=0.005,
        probes=[rapl()],
        batch_size=5,
        flush_interval_s=60.0,
    )
    s.start()
    time.sleep(0.2)
    s.stop()
    assert sizes[:-1] and all(n >= 5 for n in sizes[:-1])


def test_by_default_every_reading_reaches_the_sink_at_once(clock: FakeClock) -> None:
    """Bounded by time: with no flush interval given, a reading waits for no batch."""
    delivered: list[int] = []
    s = Sampler(TARGET, now=clock, sink=lambda b: delivered.append(len(b)), interval_s=0.05,
                probes=[rapl()])
    s.start()
    deadline = time.monotonic() + 30
    while not delivered and time.monotonic() < deadline:
        time.sleep(0.01)
    first = s.unflushed
    s.stop()
    assert delivered and first == []


def test_invalid_arguments_are_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        Sampler(TARGET, now=clock, sink=lambda b: None, interval_s=0, probes=[])
    with pytest.raises(ValueError):
        Sampler(TARGET, now=clock, sink=lambda b: None, batch_size=0, probes=[])


def test_real_job_with_default_probes(clock: FakeClock) -> None:
    proc = spawn(burner_code(root_s=0.2, children=2, child_s=0.1))
    got: list[Sample] = []
    config = ProbeConfig(cpu_w_per_core=10.0, sysfs_root="/nonexistent", use_nvml=False)
    s = Sampler(
        ProbeTarget(proc.pid, proc.pid),
        now=clock,
        sink=got.extend,
        interval_s=0.05,
        probes=default_probes(config),
    )
    s.start()
    cpu_s = reap(proc)
    s.stop(final_cpu_s=cpu_s)
    cpu_j = sum(x.energy_j for x in got if x.device == "cpu")
    assert cpu_j == pytest.approx(cpu_s * 10.0, abs=0.2)
    assert s.methods == ["cpu_time_estimate", "memory_estimate"]
    assert all(x.estimated for x in got)
    assert sum(x.energy_j for x in got if x.device == "memory") > 0
