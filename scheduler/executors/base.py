"""The interface to the engines that run jobs; its contracts (:class:`Executor`,
:class:`LaunchSpec`, :class:`Handle`, :class:`ExitStatus`) are documented in
:mod:`scheduler.contracts` and re-exported here, beside :func:`job_environment`, the one
rule for a run's environment."""

from __future__ import annotations

from scheduler.contracts import Executor, ExitStatus, Handle, LaunchSpec
from scheduler.domain.model import Job


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


__all__ = ["Executor", "ExitStatus", "Handle", "LaunchSpec", "job_environment"]
