"""Memory energy, estimated from the job's resident memory (``memory_estimate``).

Energy over an interval is the mean of the job's resident set size at its two ends
(in GB, meaning 2**30 bytes as memory sizes are quoted) x ``memory_w_per_gb`` x the real
seconds elapsed. The default 0.375 W/GB is the figure codecarbon uses (3 W per 8 GB of
DRAM, after Micron's DDR4 power guidance); it is reported as its own device ``memory`` and
never added into CPU. RSS counts shared pages once per process, so a tree of forked
workers sharing memory is over-estimated; the figure is flagged ``estimated``.
"""

from __future__ import annotations

from datetime import datetime

from probes.base import EnergyProbe
from probes.errors import ProbeError
from probes.model import Method, ProbeTarget, Sample
from probes.process import ProcessTree

DEFAULT_MEMORY_W_PER_GB = 0.375
BYTES_PER_GB = 2**30


class MemoryEstimateProbe(EnergyProbe):
    """Resident memory x W/GB x real seconds, per interval; device ``memory``."""

    method = Method.MEMORY_ESTIMATE
    roles = frozenset({"memory"})

    def __init__(
        self, memory_w_per_gb: float = DEFAULT_MEMORY_W_PER_GB, *, tree: ProcessTree | None = None
    ) -> None:
        if memory_w_per_gb < 0:
            raise ValueError(f"memory_w_per_gb must not be negative, got {memory_w_per_gb}")
        self.memory_w_per_gb = memory_w_per_gb
        self.tree = tree if tree is not None else ProcessTree(with_memory=True)
        self._prev_at: datetime | None = None
        self._prev_rss_bytes = 0
        self._prev_mono_s = 0.0

    def begin(self, target: ProbeTarget, now: datetime) -> None:
        state = self.tree.attach(target, key=now)
        self._prev_at = now
        self._prev_rss_bytes = state.rss_bytes
        self._prev_mono_s = state.monotonic_s

    def read(self, now: datetime) -> list[Sample]:
        if self._prev_at is None:
            raise ProbeError("memory probe read before begin")
        state = self.tree.read(key=now)
        elapsed_s = max(0.0, state.monotonic_s - self._prev_mono_s)
        mean_gb = (self._prev_rss_bytes + state.rss_bytes) / 2 / BYTES_PER_GB
        energy_j = mean_gb * self.memory_w_per_gb * elapsed_s
        sample = Sample(
            self._prev_at,
            now,
            "memory",
            energy_j,
            self.method,
            True,
            f"mean RSS {mean_gb:.3f} GB x {self.memory_w_per_gb:g} W/GB x {elapsed_s:.2f} s",
        )
        self._prev_at, self._prev_rss_bytes, self._prev_mono_s = (
            now,
            state.rss_bytes,
            state.monotonic_s,
        )
        return [sample]
