"""NVML on a real GPU: a known workload measured by the energy counter and by power integration.

Marked ``gpu``; skipped where NVML cannot initialise (no driver, no GPU). The workload is
matrix products with torch on CUDA where torch is there, else the GPU idling.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest

from probes.model import Method, ProbeTarget
from probes.nvml import NvmlProbe, nvml_status

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def real_nvml() -> None:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception as exc:
        pytest.skip(f"NVML cannot initialise here: {exc}")


def _workload(seconds: float, tick: object) -> str:
    try:
        import torch

        if not torch.cuda.is_available():
            raise ImportError
    except ImportError:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            tick()  # type: ignore[operator]
            time.sleep(0.1)
        return "idle"
    a = torch.randn(8192, 8192, device="cuda")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(4):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
        tick()  # type: ignore[operator]
    return "torch matmul 8192x8192"


def test_status_on_a_real_gpu() -> None:
    rows = nvml_status()
    assert rows and rows[0][1] is True, rows


def test_known_workload_measured_both_ways() -> None:
    target = ProbeTarget(os.getpid(), gpu_indices=(0,))
    t0 = datetime.now(UTC)
    counter, integration = NvmlProbe(), NvmlProbe(use_counter=False)
    counter.begin(target, t0)
    integration.begin(target, t0)
    integrated_j = 0.0

    def tick() -> None:
        nonlocal integrated_j
        integrated_j += sum(s.energy_j for s in integration.read(datetime.now(UTC)))

    start = time.monotonic()
    workload = _workload(10.0, tick)
    elapsed_s = time.monotonic() - start
    tick()
    (sample,) = counter.read(datetime.now(UTC))
    counter.close()
    integration.close()
    assert sample.method is Method.NVML_ENERGY_COUNTER
    print(
        f"\n{workload}, {elapsed_s:.1f} s: counter {sample.energy_j:.1f} J ({sample.energy_j / elapsed_s:.1f} W), "
        f"power integration {integrated_j:.1f} J ({integrated_j / elapsed_s:.1f} W), "
        f"ratio {integrated_j / sample.energy_j:.3f}"
    )
    assert sample.energy_j > 0
    assert integrated_j == pytest.approx(sample.energy_j, rel=0.2)
