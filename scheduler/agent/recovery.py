"""Runs and claims left behind by agents that died.

- :meth:`Recovery.recover` (at start-up): this agent's open runs from an earlier life are
  adopted when their process still lives (paused ones as paused) and closed when not
  (from the supervisor's exit record, else ``lost`` and requeued).
- :meth:`Recovery.reclaim_expired` (every tick): runs of this agent's sites whose lease ran
  out. An engine-side run (Slurm) is taken over and followed on; a local one is closed
  as ``lost``.
- :meth:`Recovery.unstarted_claims`: THE one sweep for jobs claimed (``running``) more
  than a lease ago with no open run, run by both.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from scheduler.agent.engines import Engines
from scheduler.agent.leases import Leases, LeaseTerms
from scheduler.agent.metering import Metering
from scheduler.agent.outcome import Outcome
from scheduler.agent.pauses import Pauses
from scheduler.agent.runs import Active, ActiveRun, Events, Phase, gpus_of_pid, pid_of, run_log_path
from scheduler.clock import Clock
from scheduler.contracts import Handle, JobStore
from scheduler.domain.model import TERMINAL_STATES, Job, JobState, Run
from scheduler.errors import CarbonshiftError, ExecutorError

NEVER_STARTED = "claimed but never started (its agent died first); planned again"


class Recovery:
    def __init__(self, store: JobStore, clock: Clock, terms: LeaseTerms, active: Active,
                 engines: Engines, metering: Metering, outcome: Outcome, pauses: Pauses,
                 leases: Leases, events: Events, *, sites: Iterable[str] | None, log_dir: Path,
                 tick_s: float) -> None:
        self.store, self.clock, self.terms, self.active = store, clock, terms, active
        self.engines, self.metering, self.outcome, self.pauses = engines, metering, outcome, pauses
        self.leases, self.events = leases, events
        self.sites = set(sites) if sites is not None else None
        self.log_dir, self.tick_s = log_dir, tick_s
        now = terms.now()
        self._next_sweep: datetime = now
        self._next_claim_sweep: datetime = now

    # -- start-up ----------------------------------------------------------------------------
    def recover(self) -> None:
        """Adopt live runs left by an earlier daemon on this host; close dead ones; then
        the claims that never started."""
        for run in self.store.open_runs(host=self.terms.host):
            if run.id is None or run.id in self.active:
                continue
            job = self.store.get_job(run.job_id)
            if self.sites is not None and run.site not in self.sites:
                continue
            if job.interruptible and job.state is JobState.SUSPENDED and self._adopt_paused(job, run):
                continue
            self._recover_run(job, run)
        self.unstarted_claims(self.terms.now())

    def _recover_run(self, job: Job, run: Run) -> None:
        assert run.id is not None
        if not run.handle:
            run.handle = self._find_launched(run)
        if not run.handle:
            run.finished_at = self.clock.now()
            run.state = JobState.LOST
            run.reason = "the daemon stopped while launching this run"
            self.store.update_run(run)
            self.outcome.lost(job, run, run.reason)
            return
        if not run.out_path:
            out = run_log_path(self.log_dir, run.job_id, run.id)
            run.out_path, run.err_path = str(out), str(out.with_suffix(".err"))
            self.store.update_run(run)  # the handle, found by _find_launched
        executor = self.engines.get(run.executor)
        pid = pid_of(run.handle) if executor.host_bound else None  # not a Slurm id
        handle = Handle(run.handle, host=run.host, pid=pid)
        if executor.alive(handle):
            executor.adopt(handle)
            if job.interruptible and job.state is JobState.RUNNING and executor.host_bound:
                # the last agent may have died between stopping it and recording
                # the pause: it runs now, and is paused again if it should be
                executor.resume(handle)
            gpus = gpus_of_pid(handle.pid)
            sampler = self.metering.begin(job, run, handle, gpus)
            self.active[run.id] = ActiveRun(job, run, handle, executor, sampler, gpu_indices=gpus)
            self.events.emit(job.id, "adopted", f"run {run.id} is still running; measuring it again")
            return
        status = executor.poll(handle)
        if status is not None:
            self.outcome.finish(ActiveRun(job, run, handle, executor, None), status)

    def _adopt_paused(self, job: Job, run: Run) -> bool:
        """Recovery of a run whose job is ``suspended``: adopted as paused. Returns
        ``False`` when there is nothing to adopt (the generic recovery then closes it)."""
        assert run.id is not None and job.id is not None
        executor = self.engines.get(run.executor)
        spans = self.store.planned_intervals([job.id]).get(job.id, [])
        done = self.store.run_intervals(run.id)
        checkpointing = executor.host_bound and job.pause_mode == "checkpoint"
        open_interval = bool(done) and done[-1].end is None
        pid = pid_of(run.handle) if run.handle and executor.host_bound else None
        handle = Handle(run.handle or "", host=run.host, pid=pid)
        act = ActiveRun(job, run, handle, executor, None, phase=Phase.STOPPED, intervals=spans,
                        gpu_indices=gpus_of_pid(pid))
        if checkpointing and not open_interval:
            act.checkpointed()  # between its checkpoint and its re-launch: nothing runs
            self.active[run.id] = act
            self.events.emit(job.id, "adopted", f"run {run.id} is paused (checkpointed); it is launched "
                             "again at its next interval")
            return True
        if not run.handle:
            return False
        if not executor.alive(handle):
            status = executor.poll(handle)
            if status is None or not checkpointing:
                return False
            act.ask(time.monotonic())  # it exited while the last agent waited
            if self.pauses.checkpointed(act, status):
                self.active[run.id] = act
            else:
                self.outcome.finish(act, status)
            return True
        executor.adopt(handle)
        if checkpointing:
            act.ask(time.monotonic() + self.pauses.grace_s(job))
            self.events.emit(job.id, "adopted", f"run {run.id} was asked to checkpoint; waiting for it to exit")
        else:
            if executor.host_bound:  # stopped already; again in case the last agent died first
                executor.suspend(handle)
            self.events.emit(job.id, "adopted", f"run {run.id} is paused; it resumes at its next interval")
        self.active[run.id] = act
        return True

    def _find_launched(self, run: Run) -> str | None:
        """The handle of a run recorded without one: the daemon may have died just after
        starting its process. Executors that can look (``find``) are asked."""
        if run.id is None:
            return None
        try:
            executor = self.engines.get(run.executor)
        except ExecutorError:
            return None
        handle = executor.find(run.out_path or str(run_log_path(self.log_dir, run.job_id, run.id)))
        return handle.handle if handle is not None else None

    # -- dead agents --------------------------------------------------------------------------
    def reclaim_expired(self) -> None:
        """Runs of this agent's sites whose lease ran out: their agent is dead.

        Engine-side runs (Slurm) are taken over and followed on. Local runs are closed as
        ``lost`` with the reason and their job requeued if its deadline allows (at least
        once). Jobs claimed by an agent that died before it recorded a run are planned
        again. Nothing is reclaimed until this agent has been connected for one lease.
        """
        now, lease = self.terms.now(), self.terms.lease
        if now < self._next_sweep or now - self.leases.connected_since < lease:
            return
        self._next_sweep = now + min(lease / 3, timedelta(seconds=max(self.tick_s, 1.0)))
        # past the lease's end by a margin: a local run's supervisor stopped the job first
        cutoff = now - timedelta(seconds=self.terms.timing.reclaim_after_s)
        for run in self.store.expired_runs(cutoff, sites=self.sites):
            if run.id is None or run.id in self.active:
                continue
            ago = (now - run.lease_until).total_seconds() if run.lease_until else 0.0
            why = (f"agent {run.host or '?'} stopped renewing the lease of run {run.id} "
                   f"({ago:.1f} s ago, lease {lease.total_seconds():g} s): presumed dead")
            if run.handle and not self.engines.host_bound(run.executor):
                self._take_over(run, now, why)
                continue
            if not self.store.reclaim_run(run.id, now, reason=why):
                continue  # renewed, or reclaimed by another agent, meanwhile
            run.finished_at, run.state, run.reason = self.clock.now(), JobState.LOST, why
            try:
                job = self.store.get_job(run.job_id)
            except CarbonshiftError:
                continue
            self.outcome.lost(job, run, why)
        if now >= self._next_claim_sweep:  # a heavier query (running jobs): less often
            self._next_claim_sweep = now + lease / 2
            self.unstarted_claims(now)

    def _take_over(self, run: Run, now: datetime, why: str) -> None:
        assert run.id is not None
        host = self.terms.host
        if not self.store.take_over_run(run.id, now, host=host, lease_until=now + self.terms.lease):
            return
        job = self.store.get_job(run.job_id)
        executor = self.engines.get(run.executor)
        handle = Handle(run.handle or "", host=run.host, pid=None)
        executor.adopt(handle)
        run.host = host
        self.active[run.id] = ActiveRun(job, run, handle, executor, None,
                                        phase=Phase.STOPPED if job.state is JobState.SUSPENDED else Phase.RUNNING)
        self.events.emit(job.id, "taken over", f"{why}; {run.executor} job {run.handle} still runs in the "
                         f"engine: this agent ({host}) follows it on")

    def unstarted_claims(self, now: datetime) -> None:
        """Jobs claimed (``running``) more than a lease ago that have no open run: the agent
        that claimed them died before it recorded one (planned again), or after its run
        ended but before it closed the job (closed from the run: planning it again would
        run it twice)."""
        for job in self.store.list_jobs([JobState.RUNNING], sites=self.sites):
            if job.id is None or job.updated_at is None or now - job.updated_at < self.terms.lease:
                continue  # maybe another agent's launch in flight: a later sweep decides
            runs = self.store.runs_for_job(job.id)
            if runs and runs[-1].finished_at is None:
                continue  # an open run: its lease decides
            last = runs[-1] if runs else None
            if last is not None and job.attempts <= len(runs):
                # the run of the latest claim ended but its agent died before closing the job
                if last.state is JobState.LOST:
                    self.outcome.lost(job, last, last.reason or "lost")
                elif last.state in TERMINAL_STATES and self.store.transition(
                    job.id, last.state, expected={JobState.RUNNING}, note=last.reason or None
                ):
                    self.events.emit(job.id, "recovered", f"run {last.id} had ended ({last.state}); job closed")
                continue
            if self.store.transition(job.id, JobState.PLANNED, expected={JobState.RUNNING}, note=NEVER_STARTED):
                self.events.emit(job.id, "recovered", NEVER_STARTED)
