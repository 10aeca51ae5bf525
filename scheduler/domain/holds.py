"""What capacity a job holds on its site: the one rule, for planning, the queue and simulate.

A job placed in run intervals takes its GPUs and CPUs for each interval. A split job
paused by SIGSTOP (``stop`` mode) keeps its GPU memory, so it holds its GPUs from its first
interval's start to its last one's end; its CPUs, and a ``checkpoint``-mode job's GPUs,
only while it runs. A job that has started (running or suspended) holds at least until
now: an overrunning job still holds its site.

A trial of a sweep with a cap (``%N``: ``Job.sweep_limit``) also counts against its
sweep, across every site, while it runs: over each of its run intervals (paused between
them it is not running), a running one at least until now (:func:`sweep_holds`).

Pure: no clock, no I/O. Times may be datetimes or epoch seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from scheduler.domain.intervals import holds_gpus_when_paused
from scheduler.domain.model import Job, JobState

T = TypeVar("T")

#: ``(site, start, end, gpus, cpus)``: capacity held on a site over ``[start, end)``
Hold = tuple[str, datetime, datetime, int, int]
#: ``(sweep_id, start, end)``: one trial of a capped sweep running over ``[start, end)``
SweepHold = tuple[int, datetime, datetime]


def takes(job: Job, intervals: Sequence[tuple[T, T]]) -> list[tuple[T, T, int, int]]:
    """What ``job`` placed in ``intervals`` takes from its site: ``(start, end, gpus, cpus)``."""
    g, cp = job.gpus, job.cpus
    if len(intervals) > 1 and holds_gpus_when_paused(job.interruptible, g, job.pause_mode):
        return [(intervals[0][0], intervals[-1][1], g, 0), *((a, b, 0, cp) for a, b in intervals)]
    return [(a, b, g, cp) for a, b in intervals]


def holds(job: Job, spans: Sequence[tuple[datetime, datetime]] | None, now: datetime) -> list[Hold]:
    """The capacity a planned, running or suspended job holds from ``now`` on: its planned
    intervals still ahead (``spans``: an interruptible job the planner split), else its
    planned start and duration, taken as :func:`takes` says; a started job holds at least
    until now, and a paused ``stop``-mode job keeps its GPUs from now to its last interval."""
    site = job.planned_site or job.site
    if not spans:
        start = job.planned_start or now
        spans = [(start, start + timedelta(seconds=job.duration_s))]
    ahead = [(a, b) for a, b in spans if b > now]
    started = job.state is not JobState.PLANNED
    if started and ahead and (len(ahead) > 1 or job.state is JobState.SUSPENDED) and (
            holds_gpus_when_paused(job.interruptible, job.gpus, job.pause_mode)):
        # frozen with its GPU memory allocated between its intervals: its GPUs stay taken
        out = [(site, now, ahead[-1][1], job.gpus, 0), *((site, a, b, 0, job.cpus) for a, b in ahead)]
    else:
        out = [(site, a, b, g, c) for a, b, g, c in takes(job, ahead)]
    if job.state is JobState.RUNNING and not any(a <= now for _, a, _, _, _ in out):
        out.insert(0, (site, now, now + timedelta(seconds=1), job.gpus, job.cpus))
    if started and not out:
        out = [(site, now, now + timedelta(seconds=1), job.gpus, job.cpus)]
    return out


def sweep_holds(
    job: Job, spans: Sequence[tuple[datetime, datetime]] | None, now: datetime,
) -> list[SweepHold]:
    """What a trial of a capped sweep counts against the sweep's cap from ``now`` on: one
    over each of its run intervals still ahead (``spans``, else its planned start and
    duration); a running trial at least until now. Nothing for a job outside a capped sweep."""
    if job.sweep_id is None or job.sweep_limit is None:
        return []
    if not spans:
        start = job.planned_start or now
        spans = [(start, start + timedelta(seconds=job.duration_s))]
    out = [(job.sweep_id, a, b) for a, b in spans if b > now]
    if job.state is JobState.RUNNING and not any(a <= now for _, a, _ in out):
        out.insert(0, (job.sweep_id, now, now + timedelta(seconds=1)))
    return out


__all__ = ["Hold", "SweepHold", "holds", "sweep_holds", "takes"]
