"""A fake of the few ``pynvml`` calls ``probes.nvml`` makes, injected at that one module.

GPUs hold an energy counter (mJ), a power reading (mW), processes, utilisation samples and
MIG instances; tests change them between readings, or make a call fail with an NVML code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_DEVICE_MIG_ENABLE = 1


class NVMLError(Exception):
    """Like pynvml's: carries the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"NVML error code {self.value}"


def proc(pid: int, used_bytes: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(pid=pid, usedGpuMemory=used_bytes)


def util(pid: int, sm: int, ts: int = 1) -> SimpleNamespace:
    return SimpleNamespace(pid=pid, smUtil=sm, memUtil=0, timeStamp=ts)


@dataclass
class FakeGpu:
    energy_mj: int = 1_000_000
    power_mw: int = 100_000
    counter: bool = True
    lost: bool = False
    memory_total_b: int = 80 * 2**30
    processes: list[SimpleNamespace] = field(default_factory=list)
    utilisation: list[SimpleNamespace] | None = None  # None: NOT_FOUND (no samples)
    mig: list[FakeGpu] | None = None  # None: MIG not supported


class FakeNvml:
    """Module-like: the attributes ``probes.nvml`` looks up on ``pynvml``."""

    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.inits = 0
        self.shutdowns = 0
        for name, value in globals().items():
            if name.startswith("NVML_"):
                setattr(self, name, value)

    def _check(self, gpu: FakeGpu) -> FakeGpu:
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        if not 0 <= index < len(self.gpus):
            raise NVMLError(2)
        return self._check(self.gpus[index])

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:
        self._check(gpu)
        if not gpu.counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.energy_mj

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        return self._check(gpu).power_mw

    def nvmlDeviceGetMigMode(self, gpu: FakeGpu) -> tuple[int, int]:
        self._check(gpu)
        if gpu.mig is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return (1, 1)

    def nvmlDeviceGetMaxMigDeviceCount(self, gpu: FakeGpu) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, gpu: FakeGpu, i: int) -> FakeGpu:
        assert gpu.mig is not None
        if i >= len(gpu.mig):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return gpu.mig[i]

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> Any:
        return SimpleNamespace(total=self._check(gpu).memory_total_b, used=0, free=0)

    def nvmlDeviceGetComputeRunningProcesses(self, gpu: FakeGpu) -> list[SimpleNamespace]:
        return list(self._check(gpu).processes)

    def nvmlDeviceGetProcessUtilization(
        self, gpu: FakeGpu, last_seen: int
    ) -> list[SimpleNamespace]:
        self._check(gpu)
        if gpu.utilisation is None:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return [s for s in gpu.utilisation if s.timeStamp > last_seen]
