"""The one place that knows which engine an executor name means (a site's ``executor``,
a run's ``executor`` column). The agent builds its engines here (``agent/engines.py``); a
process that is no agent (a cancel stopping a run of this host) asks :func:`build_executor`.
Everything else asks the executor itself (:class:`~scheduler.contracts.Executor`'s declared
capabilities)."""

from __future__ import annotations

from collections.abc import Callable

from probes.detect import ProbeConfig
from scheduler.config import Settings
from scheduler.contracts import Executor
from scheduler.leader import LeaseTiming


def _local(settings: Settings, timing: LeaseTiming, interval_s: float, probe: ProbeConfig) -> Executor:
    from scheduler.executors.local import LocalExecutor

    return LocalExecutor(log_max_bytes=settings.log_max_bytes, lease=timing,
                         run_as_owner=settings.run_as_owner, owner_root_jobs=settings.run_as_owner_root_jobs)


def _slurm(settings: Settings, timing: LeaseTiming, interval_s: float, probe: ProbeConfig) -> Executor:
    from scheduler.executors.measured import wrapper_argv
    from scheduler.executors.slurm import SlurmExecutor

    # measured on the node by our wrapper unless Slurm accounts energy itself
    return SlurmExecutor(wrapper=wrapper_argv(settings.db, interval_s=interval_s, probe=probe),
                         poll_interval_s=settings.slurm_poll_s)


#: how to build each engine a site may name
BUILDERS: dict[str, Callable[[Settings, LeaseTiming, float, ProbeConfig], Executor]] = {
    "local": _local, "slurm": _slurm,
}


def build_executor(name: str, settings: Settings) -> Executor | None:
    """The executor ``name`` as an agent on ``settings`` would build it; ``None`` for a
    name no engine answers to."""
    from scheduler.measuring import probe_config

    build = BUILDERS.get(name)
    if build is None:
        return None
    return build(settings, LeaseTiming(settings.lease_s), settings.sampling_interval_s, probe_config(settings))


__all__ = ["BUILDERS", "build_executor"]
