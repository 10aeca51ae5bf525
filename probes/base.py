"""The one interface to energy measurement: :class:`EnergyProbe`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from probes.model import Method, ProbeTarget, Sample


class EnergyProbe(ABC):
    """Measures the energy a target used between successive reads.

    ``begin`` takes the first reading at process start, each ``read`` returns the samples
    for the interval since the previous reading, ``end`` takes the last one at exit. Times
    are passed in (the scheduler's clock may be accelerated). Failures raise
    :class:`~probes.errors.ProbeError`; the sampler catches them and degrades.
    """

    method: Method

    #: What the probe's samples cover, for choosing one method per role: ``gpu``, ``cpu``,
    #: ``memory``, ``cpu-idle`` (the packages' idle power, :mod:`probes.idle`). Of several probes sharing a role the sampler uses the first that works
    #: and keeps the others on standby, to take over if it fails mid-run.
    roles: frozenset[str] = frozenset({"cpu"})

    @abstractmethod
    def begin(self, target: ProbeTarget, now: datetime) -> None:
        """Take the baseline reading."""

    @abstractmethod
    def read(self, now: datetime) -> list[Sample]:
        """Samples for ``[previous reading, now)``."""

    def end(self, now: datetime) -> list[Sample]:
        """The last samples, at process exit. Defaults to a final :meth:`read`."""
        return self.read(now)

    def observe_exit(self, *, cpu_s: float | None) -> None:  # noqa: B027 - optional hook
        """Told, before :meth:`end`, the reaped job's total CPU time (``os.wait4`` rusage).

        Probes that estimate from CPU time use it to make a short job's figure exact.
        """

    def drain_notes(self) -> list[str]:
        """Degradations noticed since the last call (a GPU lost, a share applied...)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles (NVML shutdown...)."""
