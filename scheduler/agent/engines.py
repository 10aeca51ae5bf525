"""The executors an agent drives, built by name on first use (which engine a name means is
:mod:`scheduler.executors.registry`'s to say). Everything else asks the executor itself
(:class:`~scheduler.contracts.Executor`'s declared capabilities)."""

from __future__ import annotations

from probes.detect import ProbeConfig
from scheduler.config import Settings
from scheduler.contracts import Executor
from scheduler.errors import ExecutorError
from scheduler.executors.registry import BUILDERS
from scheduler.leader import LeaseTiming


class Engines:
    """The executors by name: those given (tests, a shared one), else built from the settings."""

    def __init__(self, settings: Settings, timing: LeaseTiming, *, sample_interval_s: float,
                 probe: ProbeConfig, given: dict[str, Executor] | None = None) -> None:
        self.settings, self.timing, self.sample_interval_s, self.probe = settings, timing, sample_interval_s, probe
        #: built or given so far (the daemon's ``executors``)
        self.by_name: dict[str, Executor] = given or {}

    def get(self, name: str) -> Executor:
        if name not in self.by_name:
            build = BUILDERS.get(name)
            if build is None:
                raise ExecutorError(f"unknown executor {name!r}: use local or slurm")
            self.by_name[name] = build(self.settings, self.timing, self.sample_interval_s, self.probe)
        return self.by_name[name]

    def host_bound(self, name: str) -> bool:
        """Whether runs of the executor ``name`` are processes of the host that launched them
        (:attr:`Executor.host_bound`); an executor this agent cannot drive is not."""
        try:
            return self.get(name).host_bound
        except ExecutorError:
            return False
