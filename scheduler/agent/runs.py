"""The runs an agent follows: :class:`ActiveRun` and its explicit :class:`Phase`, the
registry (:data:`Active`), :class:`Events` (what the agent says), :class:`Poller` (one
``poll_many`` per executor) and the small facts read back about a run (its pid, GPUs, log)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path

from probes.sampler import Sampler
from scheduler.clock import Clock
from scheduler.contracts import Executor, ExitStatus, Handle, JobStore
from scheduler.domain.model import Event, Job, JobState, Run
from scheduler.errors import CarbonshiftError, ExecutorError

log = logging.getLogger("carbonshift.daemon")


class Phase(Enum):
    """Where a followed run stands between its intervals (:mod:`scheduler.agent.pauses`)."""

    #: its process (or engine job) runs
    RUNNING = "running"
    #: checkpoint mode: asked by its pause signal to save and exit, not exited yet
    ASKED = "asked"
    #: paused with its process kept: SIGSTOP, or the engine's suspend
    STOPPED = "stopped"
    #: checkpoint mode: exited after its pause signal; nothing runs until its re-launch
    CHECKPOINTED = "checkpointed"


@dataclass
class ActiveRun:
    """One run this agent follows, with what it knows of it beyond the database."""

    job: Job
    run: Run
    handle: Handle
    executor: Executor
    sampler: Sampler | None
    cancel_sent: bool = False
    notes: list[str] = field(default_factory=list)
    gpu_indices: tuple[int, ...] = ()
    #: the run's handle is not in the database yet (it refused the write): retried per tick
    unsaved: bool = False
    #: interruptible runs: the job's planned intervals (read again every tick)
    intervals: list[tuple[datetime, datetime]] = field(default_factory=list)
    phase: Phase = Phase.RUNNING
    #: :attr:`Phase.ASKED`: real monotonic time by which the signalled job must have exited
    pausing_until: float | None = None
    #: :attr:`Phase.ASKED`: it did not exit in time and was stopped
    pause_forced: bool = False
    #: stop mode: the resumption the supervisor was told to expect (its resume-by time)
    resume_at: datetime | None = None
    #: a pause or resumption the executor refused is tried again after this (monotonic)
    retry_at: float = 0.0
    #: the end of the run's lease as last renewed (Unix seconds), as its supervisor knows it
    lease_until_epoch_s: float | None = None

    @property
    def paused(self) -> bool:
        """Paused (the job is ``suspended``): any phase but :attr:`Phase.RUNNING`."""
        return self.phase is not Phase.RUNNING

    @property
    def process(self) -> bool:
        """Whether a process (or engine job) exists: not between a checkpoint and its re-launch."""
        return self.phase is not Phase.CHECKPOINTED

    @property
    def asked(self) -> bool:
        """Asked to checkpoint and exit, not exited yet."""
        return self.phase is Phase.ASKED

    def ask(self, deadline_monotonic_s: float) -> None:
        self.phase, self.pausing_until = Phase.ASKED, deadline_monotonic_s

    def stopped(self) -> None:
        self.phase, self.pausing_until = Phase.STOPPED, None

    def checkpointed(self) -> None:
        self.phase, self.pausing_until = Phase.CHECKPOINTED, None

    def running(self) -> None:
        self.phase, self.pausing_until, self.pause_forced = Phase.RUNNING, None, False


#: the registry: the runs an agent follows, by run id (shared by all the agent's parts)
Active = dict[int, ActiveRun]


class Events:
    """What the agent says: a job's events go to the store and every line to ``on_event``."""

    def __init__(self, store: JobStore, clock: Clock, on_event: Callable[[str], None]) -> None:
        self.store, self.clock, self.on_event = store, clock, on_event

    def emit(self, job_id: int | None, kind: str, message: str) -> None:
        now = self.clock.now()
        if job_id is not None:
            try:
                self.store.add_event(Event(job_id, now, kind, message))
            except CarbonshiftError as exc:
                log.warning("could not record event for job %s: %s", job_id, exc)
        self.on_event(f"{kind:<12} job {job_id}: {message}" if job_id is not None else f"{kind:<12} {message}")

    def say(self, line: str) -> None:
        """A line for the log only, recorded nowhere."""
        self.on_event(line)


class Poller:
    """The status of the runs whose executor's poll is due: one ``poll_many`` per executor
    for all its runs (one ``squeue`` for every Slurm run), at most every
    ``poll_interval_s`` real seconds. A failed query is retried at the next poll."""

    def __init__(self, events: Events) -> None:
        self.events = events
        #: when each executor's runs are polled next (``time.monotonic()``)
        self.next_poll: dict[Executor, float] = {}

    def poll(self, active: Active) -> dict[int, ExitStatus | None]:
        runs: dict[Executor, list[tuple[int, ActiveRun]]] = {}
        for run_id, act in active.items():
            if act.process:
                runs.setdefault(act.executor, []).append((run_id, act))
        statuses: dict[int, ExitStatus | None] = {}
        for executor, acts in runs.items():
            if time.monotonic() < self.next_poll.get(executor, 0.0):
                continue
            self.next_poll[executor] = time.monotonic() + executor.poll_interval_s
            try:
                got = executor.poll_many([act.handle for _, act in acts])
            except ExecutorError as exc:
                self.events.emit(None, "error", f"cannot follow {len(acts)} {executor.name} runs "
                                 f"(trying again in {executor.poll_interval_s:g} s): {exc}")
                continue
            statuses.update((run_id, got.get(act.handle)) for run_id, act in acts)
        return statuses


def cancel_in_background(act: ActiveRun, **kwargs: float) -> None:
    """Stop a run's processes without holding up the agent (``cancel`` waits its grace)."""
    threading.Thread(target=act.executor.cancel, args=(act.handle,), kwargs=kwargs, daemon=True).start()


def check_cancel(store: JobStore, events: Events, act: ActiveRun) -> None:
    """A followed run whose job was cancelled is stopped (once)."""
    if act.cancel_sent:
        return
    assert act.job.id is not None
    job = store.get_job(act.job.id)
    if job.state is JobState.CANCELLED:
        act.cancel_sent = True
        events.emit(job.id, "cancel", "stopping the job's processes (SIGTERM, then SIGKILL)")
        cancel_in_background(act)


def gpus_of_pid(pid: int | None) -> tuple[int, ...]:
    """The GPUs an adopted run was given: its supervisor's ``CUDA_VISIBLE_DEVICES``."""
    if pid is None:
        return ()
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return ()
    for item in env:
        if item.startswith(b"CUDA_VISIBLE_DEVICES="):
            text = item.split(b"=", 1)[1].decode(errors="replace")
            return tuple(int(x) for x in text.split(",") if x.strip().isdigit())
    return ()


def pid_of(handle: str) -> int | None:
    """The pid a host-bound run's handle starts with."""
    head = handle.split(":", 1)[0]
    return int(head) if head.isdigit() else None


def run_log_path(log_dir: Path, job_id: int, run_id: int) -> Path:
    """Where a run's stdout goes (its stderr: the same with ``.err``)."""
    return log_dir / f"job-{job_id}" / f"run-{run_id}.out"
