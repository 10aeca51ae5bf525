"""The one interface to the engines that run jobs: :class:`Executor`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from probes.model import Sample
from scheduler.model import Job


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


def job_environment(job: Job, run_id: int, site: str) -> dict[str, str]:
    """A run's environment: the job's own plus what it knows of itself, the same on every
    executor: ``CARBONSHIFT_JOB_ID``, ``CARBONSHIFT_RUN_ID``, ``CARBONSHIFT_SITE`` and, for
    a checkpointing job, ``CARBONSHIFT_PAUSE_SIGNAL`` (the signal that asks it to save and
    exit); for a sweep's trial, ``CARBONSHIFT_SWEEP_ID`` (``s3``'s 3) and
    ``CARBONSHIFT_ARRAY_INDEX`` (like Slurm's ``SLURM_ARRAY_TASK_ID``). The executor adds
    ``CARBONSHIFT_PROGRESS_FILE`` where it keeps one."""
    env = dict(job.env)
    env.update(CARBONSHIFT_JOB_ID=str(job.id), CARBONSHIFT_RUN_ID=str(run_id), CARBONSHIFT_SITE=site)
    if job.pause_mode == "checkpoint" and job.pause_signal:
        env["CARBONSHIFT_PAUSE_SIGNAL"] = job.pause_signal
    if job.sweep_id is not None:
        env["CARBONSHIFT_SWEEP_ID"] = str(job.sweep_id)
        if job.array_index is not None:
            env["CARBONSHIFT_ARRAY_INDEX"] = str(job.array_index)
    return env


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
    """Launches, follows, pauses and stops runs on one kind of engine."""

    name: str = "executor"

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
