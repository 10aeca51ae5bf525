"""The memory estimate: resident memory x W/GB x real seconds, its own device."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from probe_helpers import reap, spawn

from probes.memory import BYTES_PER_GB, MemoryEstimateProbe
from probes.model import Method, ProbeTarget
from probes.process import ProcessTree

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Mono:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def test_memory_energy_of_a_process_holding_256_mib() -> None:
    code = "import time\nb = b'\\x01' * (256 * 2**20)\ntime.sleep(30)\n"
    proc = spawn(code)
    try:
        deadline = time.monotonic() + 10
        while (
            psutil.Process(proc.pid).memory_info().rss < 256 * 2**20 and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        mono = Mono()
        probe = MemoryEstimateProbe(2.0, tree=ProcessTree(monotonic=mono))
        probe.begin(ProbeTarget(proc.pid, proc.pid), T0)
        mono.t += 10.0  # ten real seconds; the scheduler clock says one
        (sample,) = probe.read(T0 + timedelta(seconds=1))
        rss_gb = sample.energy_j / 2.0 / 10.0
        assert 0.25 <= rss_gb <= 0.25 + 0.05
        assert (
            sample.device == "memory"
            and sample.method is Method.MEMORY_ESTIMATE
            and sample.estimated
        )
        assert "W/GB" in sample.note
    finally:
        proc.kill()
        reap(proc)


def test_memory_constants() -> None:
    assert BYTES_PER_GB == 2**30
    with pytest.raises(ValueError):
        MemoryEstimateProbe(-0.1)
