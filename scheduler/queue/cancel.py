"""Cancelling: the one rule, for the CLI, the Python API and the queue itself.

A job may be cancelled by its owner (or an admin from config, or root) while it has not
ended; a sweep while one of its trials has not ended, by the owner of every trial.
:meth:`CancelService.check` says whether, writing nothing (the CLI checks every id first
and cancels none if one is refused); :meth:`CancelService.cancel` and
:meth:`CancelService.cancel_sweep` check the same way, then write. A cancelled job that
was running is stopped by its agent, or here (:meth:`CancelService.stop_here`) when it runs
on this host (an executor whose runs are processes of the host that launched them).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.domain.model import TERMINAL_STATES, Event, Job, JobState, Sweep, sweep_ref
from scheduler.errors import BadInput, NotOwner, no_job
from scheduler.queue.ports import UsesPorts

if TYPE_CHECKING:
    from scheduler.contracts import Executor
    from scheduler.queue.ports import QueuePorts

#: states a job may be cancelled from
CANCELLABLE = frozenset({JobState.PENDING, JobState.PLANNED, JobState.RUNNING, JobState.SUSPENDED})


def check_owner(job: Job, user: str, admins: frozenset[str] | set[str] | list[str] | tuple[str, ...]) -> None:
    """Only the owner (or an admin from config, or root) may cancel or change a job."""
    if job.owner and job.owner != user and user not in admins and user != "root":
        raise NotOwner(
            f"job {job.id} belongs to {job.owner!r}, not {user!r}: ask them, or an admin "
            "listed in the config's `admins`"
        )


def already_over(job: Job, suffix: str = "") -> BadInput:
    return BadInput(f"job {job.id} is already {job.state}: nothing to cancel{suffix}")


class CancelService(UsesPorts):
    """Check and cancel jobs and sweeps for the current user."""

    def __init__(self, ports: QueuePorts) -> None:
        self.ports = ports

    def check_owner(self, job: Job) -> None:
        check_owner(job, self.user, self.settings.admins)

    def job(self, job_id: int) -> Job:
        """The job; a database not made yet holds none (and asking makes none)."""
        if not self.ports.database_exists():
            raise no_job(job_id)
        return self.store.get_job(job_id)

    def check(self, kind: str, ref_id: int, *, suffix: str = "") -> Job | Sweep:
        """Whether the job (``kind="job"``) or sweep (``"sweep"``) ``ref_id`` may be
        cancelled by this user now; raise the refusal (``suffix`` appended) if not."""
        if kind == "sweep":
            sweep = self.store.get_sweep(ref_id)
            trials = self.store.list_jobs(sweep_id=ref_id)
            for j in trials:
                self.check_owner(j)
            if all(j.state in TERMINAL_STATES for j in trials):
                raise BadInput(f"sweep {sweep_ref(ref_id)} is already over "
                               f"({sweep.stop_reason or 'every trial ended'}): nothing to cancel{suffix}")
            return sweep
        job = self.job(ref_id)
        self.check_owner(job)
        if job.state not in CANCELLABLE:
            raise already_over(job, suffix)
        return job

    def cancel(self, job_id: int, *, now: datetime | None = None) -> tuple[Job, bool]:
        """Cancel a job. Returns the job and whether it was running (its agent, or
        :meth:`stop_here`, stops it)."""
        now = self.now(now)
        job = self.check("job", job_id)
        assert isinstance(job, Job)
        was_running = job.state in (JobState.RUNNING, JobState.SUSPENDED)
        who = self.user
        if not self.store.transition(job_id, JobState.CANCELLED, expected=set(CANCELLABLE),
                                     note="cancelled by " + who):
            raise already_over(self.store.get_job(job_id))
        self.store.add_event(Event(job_id, now, "cancelled", f"cancelled by {who}"))
        return self.store.get_job(job_id), was_running

    def cancel_sweep(self, sweep_id: int, *, now: datetime | None = None) -> tuple[Sweep, list[int], list[int]]:
        """Cancel a whole sweep: no trial is launched any more, the waiting ones become
        ``skipped`` and the running ones are cancelled (their agents stop them). Returns
        the sweep and the ids of the trials skipped and of those cancelled while running."""
        from scheduler.sweeps import CANCELLED_NOTE, stop

        now = self.now(now)
        self.check("sweep", sweep_id)
        skipped = stop(self.store, sweep_id, now, "sweep cancelled", CANCELLED_NOTE)
        cancelled = []
        for j in self.store.list_jobs([JobState.RUNNING, JobState.SUSPENDED], sweep_id=sweep_id):
            assert j.id is not None
            try:
                self.cancel(j.id, now=now)
            except BadInput:
                continue  # it ended meanwhile
            cancelled.append(j.id)
        return self.store.get_sweep(sweep_id), skipped, cancelled

    def stop_here(self, job_id: int, grace_s: float) -> bool:
        """Stop a cancelled job's run if it is processes of this host (its executor is
        :attr:`~scheduler.contracts.Executor.host_bound`: SIGTERM, then SIGKILL after
        ``grace_s``); an engine's run (Slurm) or another host's is stopped by its agent.
        Whether it stopped one."""
        import socket  # (only here: a few ms of every command that imports the queue)

        from scheduler.contracts import Handle

        host = socket.gethostname()
        stopped = False
        for run in self.store.open_runs():
            if run.job_id != job_id or not run.handle or run.host != host:
                continue
            executor = self._executor(run.executor)
            if executor is None or not executor.host_bound:
                continue
            executor.cancel(Handle(run.handle, host=host), grace_s=grace_s)
            stopped = True
        return stopped

    def _executor(self, name: str) -> Executor | None:
        if self.ports.executor is not None:
            return self.ports.executor(name)
        from scheduler.executors.registry import build_executor

        return build_executor(name, self.settings)


__all__ = ["CANCELLABLE", "CancelService", "already_over", "check_owner"]
