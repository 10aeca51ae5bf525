"""Every contract of the scheduler, in one documented file.

A contract is what one part of the scheduler asks of another, written as an abstract class
(something to implement) or a :class:`~typing.Protocol` (something to provide). The agent
(:mod:`scheduler.agent`) and the services depend on these names only, never on an
implementation:

- :class:`Executor` runs jobs on one kind of engine, with :class:`LaunchSpec` (what to
  start), :class:`Handle` (how to find it again) and :class:`ExitStatus` (how it ended).
  What an engine can do beyond launch, poll, alive and cancel is *declared* on the class
  (:attr:`Executor.host_bound`, :attr:`Executor.can_ask`, and methods with a "cannot"
  default), so the agent asks the executor: it never probes for methods (``getattr``) and
  never branches on an executor's name. Implementations: ``executors/local.py``,
  ``executors/slurm.py``, and ``executors/fake.py`` (scripted exits, for tests).
- :class:`JobStore` is the queue's database (defined in :mod:`scheduler.storage.base`,
  re-exported here), with :class:`Lease`, a named lease as stored.
- :class:`Clock` is time as the agent reads it (defined in :mod:`scheduler.clock`).
- :class:`AccountingPoints` is what accounting asks of the intensity service.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from intensity.model import IntensityPoint
from probes.model import Sample
from scheduler.clock import Clock
from scheduler.domain.model import Job
from scheduler.storage.base import JobStore, Lease


class AccountingPoints(Protocol):
    """The intensity a finished run is accounted with (:class:`intensity.chain.IntensityService`)."""

    def points_for_accounting(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Actual intensities over ``[start, end)`` in ``zone`` (forecasts where none)."""
        ...


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything an executor needs to start one run of a job.

    ``env`` is the job's final environment (submitter's values plus the allow-list, never
    the daemon's whole environment). ``begin_at`` is the planned start, for engines that
    can hold a job until then (Slurm ``--begin``).
    """

    job: Job
    run_id: int
    out_path: str
    err_path: str
    env: dict[str, str]
    gpu_indices: tuple[int, ...] = ()
    begin_at: datetime | None = None
    #: the end of the run's lease (Unix seconds, ``time.time()``): a local run's supervisor
    #: stops the job when it comes near unrenewed (``scheduler.leader.LeaseTiming``)
    lease_until_epoch_s: float | None = None


@dataclass(frozen=True, slots=True)
class Handle:
    """How to find a launched run again: a pid, a Slurm job id..."""

    handle: str
    host: str = ""
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a run ended. ``state`` is one of our job states' values."""

    exit_code: int | None
    state: str
    reason: str = ""
    cpu_s: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Executor(ABC):
    """Launches, follows, pauses and stops runs on one kind of engine.

    What an engine can do beyond launch, poll, alive and cancel is declared here, with a
    default, so the agent asks the executor instead of branching on its name or probing
    for methods: :attr:`host_bound`, :attr:`can_ask` (with :meth:`ask`), :meth:`resume_by`,
    :meth:`cleanup_group`, :meth:`find`, :meth:`energy`, :meth:`suspend`/:meth:`resume`.
    """

    name: str = "executor"

    #: A run is processes on the host that launched it (its handle starts with their pid):
    #: only that host follows, signals and fences it; it pauses with signals (SIGSTOP, or
    #: the job's checkpoint signal) and a run whose agent died is reclaimed, never taken
    #: over. ``False``: an engine (Slurm) holds the run, any agent may take it over, and it
    #: pauses with the engine's own :meth:`suspend`.
    host_bound: bool = True

    #: The run can be asked by a signal to checkpoint and exit (:meth:`ask`).
    can_ask: bool = False

    @abstractmethod
    def launch(self, spec: LaunchSpec) -> Handle:
        """Start the run; raise :class:`~scheduler.errors.ExecutorError` if the engine refuses."""

    @abstractmethod
    def poll(self, handle: Handle) -> ExitStatus | None:
        """``None`` while the run is alive, else how it ended."""

    #: real seconds the agent waits between two :meth:`poll_many` of its runs (0: every tick)
    poll_interval_s: float = 0.0

    def poll_many(self, handles: Sequence[Handle]) -> dict[Handle, ExitStatus | None]:
        """:meth:`poll` of several runs; an engine with a batch query (Slurm's ``squeue``)
        answers them all with one call."""
        return {handle: self.poll(handle) for handle in handles}

    @abstractmethod
    def alive(self, handle: Handle) -> bool:
        """Whether the run's process (or engine job) still exists, e.g. after a daemon restart."""

    @abstractmethod
    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        """Terminate the run (SIGTERM, then SIGKILL after ``grace_s``; ``scancel``)."""

    def suspend(self, handle: Handle) -> None:
        """Pause an interruptible run."""
        raise NotImplementedError(f"{self.name} cannot suspend runs")

    def resume(self, handle: Handle) -> None:
        """Resume a paused run."""
        raise NotImplementedError(f"{self.name} cannot resume runs")

    def ask(self, handle: Handle, signum: int) -> None:
        """Send the job its pause signal once (only when :attr:`can_ask`)."""
        raise NotImplementedError(f"{self.name} cannot ask runs to checkpoint")

    def resume_by(self, handle: Handle, at_epoch_s: float | None) -> bool:
        """Have a stopped run continue by itself at this real time (``time.time()`` seconds)
        unless resumed first; ``None`` takes it back. Returns whether the engine does that
        (by default it does not: a stopped run waits for an agent)."""
        return False

    def cleanup_group(self, handle: Handle) -> bool:
        """End what a finished run left behind (processes it forked); returns whether
        anything was left. By default the engine leaves nothing."""
        return False

    def find(self, out_path: str) -> Handle | None:
        """The handle of a run launched with ``out_path`` whose handle was never recorded
        (the agent died between starting it and saving it), if the engine can tell."""
        return None

    def detach(self, handle: Handle) -> None:  # noqa: B027 - optional hook, no-op by default
        """The agent stops cleanly and leaves the run running for its successor."""

    def adopt(self, handle: Handle) -> None:  # noqa: B027 - optional hook, no-op by default
        """This agent follows the run from now on (after a restart or a take-over)."""

    def renewed(self, handle: Handle, until_epoch_s: float | None) -> None:  # noqa: B027
        """The run's lease was renewed in the database until this real time (``time.time()``
        seconds; ``None``: parked, no end). An engine that fences its runs by lease time
        (the local supervisor) is told; others need not be."""

    def containment(self) -> str:
        """What holds a run's processes together here, in words (shown when a run starts;
        empty when the engine says nothing)."""
        return ""

    def energy(self, handle: Handle) -> list[Sample] | None:
        """Energy the engine itself accounted (Slurm ``ConsumedEnergyRaw``), if any."""
        return None


__all__ = ["AccountingPoints", "Clock", "Executor", "ExitStatus", "Handle", "JobStore", "LaunchSpec",
           "Lease"]
