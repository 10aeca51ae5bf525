"""The job's share of the CPU packages' idle power (``cpu_idle_share``, optional).

The CPU-time estimate (``cpu_time_estimate``) charges a job only for the CPU seconds it
used, at the per-thread share of the TDP: the power the package draws anyway, busy or not,
is charged to nobody. That is why it reads 10-60x lower than CodeCarbon, which charges the
whole machine's CPU power to whatever runs. With ``cpu_idle_share = true`` this probe adds,
on its own device ``cpu-idle`` and flagged ``estimated``, the job's share of the idle power:

    energy_j = cpu_idle_w x real seconds of the interval
               x job CPU seconds / all busy CPU seconds of the machine (``/proc/stat``)

The share is the rule RAPL's job share already uses (:mod:`probes.rapl`): idle power
follows CPU use, so a job alone on its machine carries all of it, two equal jobs half each,
and a job that used no CPU in an interval (waiting on a GPU, on I/O) none. ``cpu_idle_w``
is the machine's CPU idle power (all packages): configured, or
:func:`probes.cpupower.cpu_idle_w` (an assumed fraction of the matched TDP).

Where RAPL is readable its job share is of the whole package energy, idle power included:
:class:`~probes.rapl.RaplProbe` then covers the ``cpu-idle`` role too, and this probe only
stands by (it takes over if RAPL fails mid-run), so idle power is never counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from probes.base import EnergyProbe
from probes.energy import share
from probes.errors import ProbeError
from probes.model import Method, ProbeTarget, Sample
from probes.process import ProcessTree
from probes.rapl import machine_busy_cpu_s

DEVICE = "cpu-idle"


def idle_share_j(idle_w: float, elapsed_s: float, job_cpu_s: float, machine_cpu_s: float) -> float:
    """The job's share of ``idle_w`` over ``elapsed_s``: by its part of the machine's busy
    CPU seconds (a job's own seconds count as busy even if the machine's figure lags)."""
    if idle_w <= 0 or elapsed_s <= 0:
        return 0.0
    return idle_w * elapsed_s * share(job_cpu_s, max(machine_cpu_s, job_cpu_s))


class CpuIdleShareProbe(EnergyProbe):
    """The job's share of the CPU idle power per interval; device ``cpu-idle``, estimated."""

    method = Method.CPU_IDLE_SHARE
    roles = frozenset({DEVICE})

    def __init__(
        self,
        cpu_idle_w: float,
        *,
        tree: ProcessTree | None = None,
        source: str = "",
        machine_cpu_s: Callable[[], float] = machine_busy_cpu_s,
    ) -> None:
        if not cpu_idle_w > 0:
            raise ValueError(f"cpu_idle_w must be positive, got {cpu_idle_w}")
        self.cpu_idle_w = cpu_idle_w
        self.tree = tree if tree is not None else ProcessTree(with_memory=False)
        self.source = source
        self._machine_cpu_s = machine_cpu_s
        self._prev_at: datetime | None = None
        self._prev_job_cpu_s = 0.0
        self._prev_machine_cpu_s = 0.0
        self._prev_mono_s = 0.0

    def begin(self, target: ProbeTarget, now: datetime) -> None:
        state = self.tree.attach(target, key=now)
        self._prev_at = now
        self._prev_job_cpu_s = state.job_cpu_s
        self._prev_machine_cpu_s = self._machine_cpu_s()
        self._prev_mono_s = state.monotonic_s

    def observe_exit(self, *, cpu_s: float | None) -> None:
        self.tree.observe_exit(cpu_s)

    def read(self, now: datetime) -> list[Sample]:
        if self._prev_at is None:
            raise ProbeError("idle-share probe read before begin")
        state = self.tree.read(key=now)
        machine_s = self._machine_cpu_s()
        elapsed_s = max(0.0, state.monotonic_s - self._prev_mono_s)
        job_s = max(0.0, state.job_cpu_s - self._prev_job_cpu_s)
        machine_delta_s = max(0.0, machine_s - self._prev_machine_cpu_s)
        energy_j = idle_share_j(self.cpu_idle_w, elapsed_s, job_s, machine_delta_s)
        job_share = share(job_s, max(machine_delta_s, job_s))
        note = (f"share {job_share:.3f} ({job_s:.3f} of {machine_delta_s:.3f} busy CPU s)"
                f" of {self.cpu_idle_w:g} W idle x {elapsed_s:.2f} s")
        if self.source:
            note += f" ({self.source})"
        sample = Sample(self._prev_at, now, DEVICE, energy_j, self.method, True, note)
        self._prev_at, self._prev_mono_s, self._prev_machine_cpu_s = now, state.monotonic_s, machine_s
        self._prev_job_cpu_s = max(self._prev_job_cpu_s, state.job_cpu_s)
        return [sample]
