"""Re-planning: waiting jobs and paused jobs' remaining work, in ONE :func:`plan` call.

Placements in force move only for a gain above the hysteresis, and that rule lives in the
planner alone (``PlanOptions.hysteresis_pct``): a waiting job's placement in force is
handed in as ``current`` (site, start), a paused job's intervals ahead as ``current_runs``
(site, intervals), and the planner prices each where it is, inside the same call. Paused
jobs are ``committed`` (placed before any job that has not started) and pinned to the
site their run is on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from scheduler.domain.model import WAITING_STATES, Job, JobState, Plan, PlanEntry, Site
from scheduler.planning import plan
from scheduler.queue.catalog import zone_of
from scheduler.queue.ports import UsesPorts
from scheduler.queue.submit import apply_entry
from scheduler.text.times import format_duration

if TYPE_CHECKING:
    from scheduler.queue.capacity import HeldCapacity
    from scheduler.queue.ports import Catalog, QueuePorts

Spans = list[tuple[datetime, datetime]]


def consume(spans: Sequence[tuple[datetime, datetime]], work_s: float) -> Spans:
    """How a paused job would run ``work_s`` seconds along ``spans``: interval after
    interval, the last one stretched or cut to what is left (the daemon never pauses a
    job in its last interval, and it ends when the job exits)."""
    out: Spans = []
    left = work_s
    for i, (a, b) in enumerate(spans):
        if left <= 0:
            break
        length = (b - a).total_seconds()
        take = left if i == len(spans) - 1 else min(left, length)
        out.append((a, a + timedelta(seconds=take)))
        left -= take
    return out


def _same_runs(a: Sequence[tuple[datetime, datetime]], b: Sequence[tuple[datetime, datetime]]) -> bool:
    """The same run intervals, to the second the planner works in."""
    return len(a) == len(b) and all(
        abs((x0 - y0).total_seconds()) < 1 and abs((x1 - y1).total_seconds()) < 1
        for (x0, x1), (y0, y1) in zip(a, b, strict=True))


@dataclass(frozen=True)
class Paused:
    """A suspended job's remaining work, as the planner sees it (``probe``), with the
    intervals it has in force ahead."""

    job: Job
    probe: Job
    site: str
    remaining_s: int
    ahead: Spans


class ReplanService(UsesPorts):
    """Re-plan the queue with fresh forecasts and write the moves."""

    def __init__(self, ports: QueuePorts, catalog: Catalog, held: HeldCapacity) -> None:
        self.ports, self.catalog, self.held = ports, catalog, held

    def paused(self, now: datetime) -> list[Paused]:
        """Suspended jobs whose remaining work can be re-planned: its duration less what
        its run has run so far, on the run's site, before its finish-by time. A job still
        checkpointing (its last interval open) or without an open run is left alone."""
        suspended = self.store.list_jobs([JobState.SUSPENDED])
        if not suspended:
            return []
        stored = self.store.planned_intervals(j.id for j in suspended if j.id is not None)
        out: list[Paused] = []
        for job in suspended:
            assert job.id is not None
            runs = self.store.runs_for_job(job.id)
            run = runs[-1] if runs and runs[-1].finished_at is None else None
            if run is None or run.id is None:
                continue
            done = self.store.run_intervals(run.id)
            if not done or any(iv.end is None for iv in done):
                continue
            ran_s = sum((iv.end - iv.start).total_seconds() for iv in done if iv.end is not None)
            remaining = max(60, math.ceil(job.duration_s - ran_s))
            finish_by = job.deadline_at or (job.latest_start + timedelta(seconds=job.duration_s))
            probe = replace(
                job, state=JobState.PLANNED, duration_s=remaining, site=run.site,
                allowed_sites=[], earliest_start=now,
                latest_start=max(now, finish_by - timedelta(seconds=remaining)),
                run_now=False, threshold_g_per_kwh=None,
            )
            ahead = consume([(max(a, now), b) for a, b in stored.get(job.id, []) if b > now], remaining)
            out.append(Paused(job, probe, run.site, remaining, ahead))
        return out

    def replan(
        self, now: datetime, *, hysteresis_pct: float | None = None, waiting: bool = True,
    ) -> tuple[Plan, list[tuple[Job, PlanEntry]]]:
        """Re-plan every paused job's remaining work and (``waiting``) every waiting job
        with fresh forecasts, in one plan; write the moves. Returns the plan and the list
        of (job, new entry) actually moved, paused jobs first."""
        hysteresis = self.settings.replan_hysteresis_pct if hysteresis_pct is None else hysteresis_pct
        paused = self.paused(now)
        # a planned job whose start has come is due, not re-planned: the daemon launches it
        jobs = [
            j for j in self.store.list_jobs(WAITING_STATES)
            if not (j.state is JobState.PLANNED and j.planned_start is not None and j.planned_start <= now)
        ] if waiting else []
        if not jobs and not paused:
            return Plan(), []
        sites = self.catalog.sites()
        probes = [p.probe for p in paused]
        # every zone a job may run in: a site without a forecast is not an option, and a job
        # planned there would be moved home
        forecasts, sources = self.catalog.forecasts_for([*probes, *jobs], sites, now, fresh=True)
        replanned = {p.job.id for p in paused if p.job.id is not None}
        managed = any(s.gpus > 0 or s.cpus > 0 for s in sites.values())
        # running, suspended (but those re-planned here) and due jobs hold their capacity
        running = self.held.started(now, skip=replanned) if managed else []
        capped = any(j.sweep_limit for j in [*probes, *jobs])
        # the whole queue together: capacity per site per slot; placements in force move only
        # for a gain above the hysteresis, inside the planner (which prices them where they
        # are, transfer included), so a kept job's capacity is never handed to another and a
        # move forced by another job's move is written
        in_force = {
            j.id: (j.planned_site or j.site, j.planned_start) for j in jobs
            if j.id is not None and j.state is JobState.PLANNED and j.planned_start is not None
            and j.planned_start >= now
        }
        new_plan = plan([*probes, *jobs], forecasts, sites, now, self.catalog.plan_options(
            reserved=tuple(running), current=in_force, hysteresis_pct=hysteresis,
            current_runs={p.job.id: (p.site, tuple(p.ahead)) for p in paused if p.ahead},
            committed=frozenset(replanned),
            sweep_reserved=self.held.started_sweeps(now, skip=replanned) if capped else (),
        ))
        moved = self._write_paused(paused, new_plan, sources, sites, now)
        moved += self._write_waiting(jobs, new_plan, sources, sites, now)
        return new_plan, moved

    def _write_paused(self, paused: list[Paused], new_plan: Plan, sources: dict[str, tuple[str, bool]],
                      sites: Mapping[str, Site], now: datetime) -> list[tuple[Job, PlanEntry]]:
        moved: list[tuple[Job, PlanEntry]] = []
        for p in paused:
            assert p.job.id is not None
            entry = new_plan.entries.get(p.job.id)
            if entry is None or (p.ahead and _same_runs(entry.intervals, p.ahead)):
                continue
            source = sources[zone_of(p.site, sites, p.job.zone)][0]
            note = (f"re-planned while paused: {format_duration(p.remaining_s)} left in "
                    f"{len(entry.intervals)} interval(s); {entry.reason}; {source}")
            if self.store.replan_suspended(p.job.id, entry.intervals, now, note=note):
                p.job.note = note
                moved.append((p.job, entry))
        return moved

    def _write_waiting(self, jobs: list[Job], new_plan: Plan, sources: dict[str, tuple[str, bool]],
                       sites: Mapping[str, Site], now: datetime) -> list[tuple[Job, PlanEntry]]:
        moved: list[tuple[Job, PlanEntry]] = []
        keep = Plan()
        for j in jobs:
            assert j.id is not None
            entry = new_plan.entries.get(j.id)
            if entry is None:
                continue
            if j.state is JobState.PLANNED and entry.start == j.planned_start and (
                    entry.site == (j.planned_site or j.site)):
                continue
            keep.entries[j.id] = entry
            apply_entry(j, entry, *sources[zone_of(entry.site, sites, j.zone)])
            moved.append((j, entry))
        if keep.entries:
            self.store.apply_plan(keep, now)
            for j, _entry in moved:
                # only while still waiting: an agent may have claimed it since apply_plan
                self.store.update_job(j, expected=WAITING_STATES)
        return moved


__all__ = ["Paused", "ReplanService", "consume"]
