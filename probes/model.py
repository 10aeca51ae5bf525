"""Energy samples: what a run used in one interval, per device, and how it was measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Method(StrEnum):
    """How an energy figure was obtained, best first."""

    NVML_ENERGY_COUNTER = "nvml_energy_counter"
    NVML_POWER_INTEGRATION = "nvml_power_integration"
    RAPL = "rapl"
    CPU_TIME_ESTIMATE = "cpu_time_estimate"
    MEMORY_ESTIMATE = "memory_estimate"
    CPU_IDLE_SHARE = "cpu_idle_share"
    SLURM_ACCOUNTING = "slurm_accounting"
    #: Replayed from a recording (:mod:`probes.replay`): tests and demos, never a live measurement.
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class Sample:
    """Energy ``energy_j`` used on ``device`` over ``[start, end)``.

    ``device`` is ``gpu:0``, ``cpu``, ``cpu:package-0``, ``dram``, ``memory``, ``cpu-idle``...;
    ``estimated`` is true for modelled figures (CPU time x power, memory x W/GB, a GPU share).
    """

    start: datetime
    end: datetime
    device: str
    energy_j: float
    method: Method
    estimated: bool = False
    note: str = ""

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def power_w(self) -> float:
        d = self.duration_s
        return self.energy_j / d if d > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What to measure: a job's process group, and the GPUs the scheduler gave it."""

    pid: int
    pgid: int | None = None
    gpu_indices: tuple[int, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)
