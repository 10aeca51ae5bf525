"""Starting jobs: claim the due ones of this agent's sites (atomically: two agents never
start one job), gate a sweep's trials, allocate GPUs, launch through the site's executor,
record the run, and begin measuring it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from scheduler.agent.engines import Engines
from scheduler.agent.leases import LeaseTerms
from scheduler.agent.metering import Metering
from scheduler.agent.runs import Active, ActiveRun, Events, run_log_path
from scheduler.agent.trials import Trials
from scheduler.clock import Clock
from scheduler.contracts import JobStore, LaunchSpec
from scheduler.domain.intervals import position
from scheduler.domain.model import Job, JobState, Run, Site
from scheduler.errors import CarbonshiftError, ExecutorError, StorageError
from scheduler.executors.base import job_environment
from scheduler.leader import holder_name
from scheduler.text.times import format_duration, spans_text

log = logging.getLogger("carbonshift.daemon")

#: how many due jobs an agent claims at once; it claims again while time is left in the
#: tick, so a claim never waits long for its launch
CLAIM_BATCH = 2


class Launcher:
    def __init__(self, store: JobStore, clock: Clock, terms: LeaseTerms, active: Active,
                 engines: Engines, metering: Metering, events: Events, *,
                 sites: Iterable[str] | None, site_book: Callable[[], dict[str, Site]],
                 log_dir: Path, trials: Trials | None, stopping: threading.Event) -> None:
        self.store, self.clock, self.terms, self.active = store, clock, terms, active
        self.engines, self.metering, self.events = engines, metering, events
        self.sites = set(sites) if sites is not None else None
        self.site_book, self.log_dir, self.trials, self.stopping = site_book, log_dir, trials, stopping
        #: sweep trials put back to wait for a slot under their sweep's cap (logged once)
        self._deferred: set[int] = set()

    def launch_due(self) -> None:
        """Claim and launch the jobs of this agent's sites whose planned start has come.

        Timers launch jobs on time; this catches the rest (jobs due at once, clock jumps, a
        busy machine), claiming up to :data:`CLAIM_BATCH` per call atomically
        (``FOR UPDATE SKIP LOCKED`` on PostgreSQL): agents sharing a site split the due
        jobs between them instead of all contending for the same ones.
        """
        now = self.clock.now()
        lease = self.terms.lease
        budget = time.monotonic() + min(lease.total_seconds() / 4, 2.0)
        while not self.stopping.is_set():
            claimed = self.store.claim_due(now, sites=self.sites, limit=CLAIM_BATCH)
            deferred = False
            for job in claimed:
                # A claim with no run yet is planned again by other agents once it is a
                # lease old (its agent may have died); launching it later than half a lease
                # after the claim could start it twice. Leave such a claim to them.
                at = job.updated_at or self.terms.now()
                if self.terms.now() - at > lease / 2:
                    self.events.emit(job.id, "claim", "claimed too long ago to launch safely; other "
                                     "agents will plan it again")
                    continue
                if job.sweep_id is not None:
                    deferred = not self._launch_trial(job) or deferred
                    continue
                self.launch(job)
            # a trial put back to wait for its sweep's slot is due again at once: claiming
            # on would only take it back
            if deferred or len(claimed) < CLAIM_BATCH or time.monotonic() > budget:
                break  # nothing more due, or this tick's share of time is spent

    def fire(self, job_id: int) -> None:
        """A job's timer fired: claim it, then launch it."""
        try:
            job = self.store.get_job(job_id)
        except CarbonshiftError:
            return
        if job.state is not JobState.PLANNED or job.planned_start is None:
            return
        if self.clock.real_delay_s(job.planned_start) > 0.05:
            return  # moved later meanwhile; the next sync sets a new timer
        self.claim_and_launch(job)

    def claim_and_launch(self, job: Job) -> None:
        assert job.id is not None
        if self.sites is not None and (job.planned_site or job.site) not in self.sites:
            return
        if not self.store.transition(job.id, JobState.RUNNING, expected={JobState.PLANNED}):
            return  # another agent won, or it was cancelled
        job = self.store.get_job(job.id)
        if job.sweep_id is not None:
            self._launch_trial(job)
        else:
            self.launch(job)

    def _launch_trial(self, job: Job) -> bool:
        """Launch a claimed sweep trial if the sweep's rules allow
        (:func:`scheduler.sweeps.launch_gate`), holding the sweep's launch lease from the
        gate to the run's row so that agents sharing the queue never fill one free slot
        twice; log a skip, and a deferral the first time. Returns whether it launched."""
        assert job.sweep_id is not None and self.trials is not None
        name, holder, now = Trials.lease_name(job.sweep_id), holder_name(self.terms.host), self.terms.now()
        if self.store.acquire_lease(name, holder, now, now + self.terms.lease) is None:
            gate = self.trials.put_back(job, "another agent is launching a trial of this sweep")
        else:
            try:
                gate = self.trials.gate(job, self.clock.now())
                if gate.launch:
                    self._deferred.discard(job.id or 0)
                    self.launch(job)
                    return True
            finally:
                self.store.release_lease(name, holder)
        if gate.kind == "skipped":
            self.events.emit(job.id, "skipped", gate.message)
        elif job.id not in self._deferred:
            self._deferred.add(job.id or 0)
            self.events.say(f"{'deferred':<12} job {job.id}: {gate.message}")
        return False

    def launch(self, job: Job) -> None:
        """Start a claimed job (state ``running``) and its energy sampler."""
        assert job.id is not None
        now = self.clock.now()
        site_name = job.planned_site or job.site
        site = self.site_book().get(site_name)
        executor_name = site.executor if site is not None else "local"
        run = self._open_run(job, site_name, executor_name, now)
        assert run.id is not None and run.out_path is not None and run.err_path is not None
        gpus = self.allocate_gpus(job, site_name, site.gpus if site is not None else 0)
        lease_epoch = self.terms.epoch(run.lease_until)
        try:
            executor = self.engines.get(executor_name)
            handle = executor.launch(LaunchSpec(
                job=job, run_id=run.id, out_path=run.out_path, err_path=run.err_path,
                env=job_environment(job, run.id, run.site), begin_at=job.planned_start, gpu_indices=gpus,
                lease_until_epoch_s=lease_epoch,
            ))
        except (ExecutorError, OSError) as exc:
            self._launch_failed(job, run, exc)
            return
        run.handle = handle.handle
        # the process runs: follow it (and renew its lease) even if the database refuses
        # to record its handle right now; the write is retried each tick
        act = ActiveRun(job, run, handle, executor, None, gpu_indices=gpus,
                        lease_until_epoch_s=lease_epoch)
        if job.interruptible:
            act.intervals = self.store.planned_intervals([job.id]).get(job.id, [])
            try:
                self.store.set_interval_handle(run.id, handle.handle)
            except StorageError as exc:
                log.warning("run %s: could not record the process of its interval: %s", run.id, exc)
        self.active[run.id] = act
        try:
            self.store.update_run(run)
        except StorageError as exc:
            act.unsaved = True
            log.warning("run %s started but its handle is not recorded yet: %s", run.id, exc)
        act.sampler = self.metering.begin(job, run, handle, gpus)
        self.events.emit(job.id, "started", self._started(act, executor_name, now))

    def _open_run(self, job: Job, site_name: str, executor_name: str, now: datetime) -> Run:
        """The run's row (its interval, for an interruptible job) and its log paths."""
        assert job.id is not None
        # the claim counted the attempt; the lease runs in real time from now
        run = self.store.add_run(
            Run(job_id=job.id, site=site_name, executor=executor_name, started_at=now,
                host=self.terms.host, state=JobState.RUNNING,
                lease_until=self.terms.now() + self.terms.lease)
        )
        assert run.id is not None
        if job.interruptible:
            self.store.open_run_interval(run.id, now)
        out = run_log_path(self.log_dir, job.id, run.id)
        run.out_path = str(out)
        run.err_path = str(out.with_suffix(".err"))
        return run

    def _launch_failed(self, job: Job, run: Run, exc: Exception) -> None:
        assert job.id is not None and run.id is not None
        run.finished_at = self.clock.now()
        run.state = JobState.FAILED
        run.reason = f"launch failed: {exc}"
        self.store.update_run(run)
        if job.interruptible:
            self.store.close_run_interval(run.id, run.finished_at, run.reason)
        self.store.transition(job.id, JobState.FAILED, expected={JobState.RUNNING}, note=run.reason)
        self.events.emit(job.id, "failed", run.reason)

    def _started(self, act: ActiveRun, executor_name: str, now: datetime) -> str:
        """The "started" line: where, how contained, how late, which interval."""
        job, run = act.job, act.run
        late = (now - job.planned_start).total_seconds() if job.planned_start else 0.0
        late_real_s = late / self.clock.factor
        plan_text = ""
        if len(act.intervals) > 1:
            k, n = position(act.intervals, now)
            plan_text = (f"; interval {k} of {n} ({spans_text(act.intervals)}), paused between them "
                         f"({job.pause_mode or 'stop'})")
        contained = act.executor.containment()
        return (f"run {run.id} on {run.site} ({executor_name} {act.handle.handle.split(':')[0]}"
                + (f"; contained by {contained})" if contained else ")")
                + (f", {format_duration(late)} after its planned start" if late_real_s > 30 else "")
                + plan_text)

    def allocate_gpus(self, job: Job, site_name: str, site_gpus: int) -> tuple[int, ...]:
        """Distinct GPU indices for a local job: the lowest ones no active run holds."""
        if job.gpus <= 0 or site_gpus <= 0:
            return ()
        held = {i for a in self.active.values() if a.run.site == site_name for i in a.gpu_indices}
        free = [i for i in range(site_gpus) if i not in held]
        if len(free) < job.gpus:
            self.events.emit(job.id, "gpus", f"needs {job.gpus} GPUs but only {len(free)} are free on {site_name}; sharing")
            free += sorted(held)
        return tuple(free[: job.gpus])
