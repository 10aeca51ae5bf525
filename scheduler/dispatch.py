"""The daemon: plans, waits, launches, measures, accounts.

The database is the source of truth. APScheduler (3.x) is only this process's timer: at
start-up a date trigger is created for every planned job of this agent's sites, and the
set is kept in step with the database every tick (new submissions, re-plans,
cancellations). A timer that fires must first win an atomic claim of its job
(``planned -> running``) before launching it, so two daemons never start one job.

On start-up the daemon looks at the runs left open by an earlier daemon on this host: a
run whose process still lives is adopted and measured on; a dead one is closed from the
supervisor's exit record, or marked ``lost`` with the reason and requeued when its
deadline still allows. Stopping the daemon (Ctrl-C) leaves running jobs running and
recorded; the next daemon adopts them.

Several agents, one queue (PostgreSQL, or SQLite for processes of one host). Each agent
has a name (``agent_name``, default the host name) recorded on its runs; a restarted agent
of the same name adopts them. Only the holder of the ``planner`` lease re-plans
(:mod:`scheduler.leader`); agents started with ``planner=False`` never plan. A job starts
only through an atomic claim, so two agents never start one job. Every tick an agent
renews the lease of each run it follows (``lease_s``, real seconds) and looks for runs of
its sites whose lease has run out: their agent is dead. A local run is then marked
``lost`` with the reason and its job requeued while its deadline allows; an engine-side
run (Slurm) still runs in the engine, so it is taken over and followed on, never started
again. Delivery is therefore at least once for killed local runs: a job may run again from
the start after its agent died. It never runs twice at once, because the lease is the
proof of life, fenced by time (the margins are :class:`~scheduler.leader.LeaseTiming`'s): a
local run's supervisor stops the job when its agent has been gone for a third of the lease
(``supervise.AgentWatch``) and, since a stopped or hung agent keeps its pid, when the
lease that the agent mirrors into a file for it (``supervise.LeaseWatch``) comes near its
end unrenewed; an agent that cannot renew its leases stops its local runs itself at the
same point; a run is reclaimed only a margin after its lease ran out, and an agent waits
one lease after starting or after a database outage before reclaiming anything (the others
may not have been able to renew either). A cleanly
stopped agent parks its runs' leases (no expiry): they wait for the next agent of that
name.

Interruptible jobs follow their planned run intervals (:mod:`scheduler.intervals`): the
agent that follows a run pauses it at the end of each interval that has a successor and
resumes it at the next one's start, through APScheduler timers (each tick checks too).
Each transition is won in the database first (``running -> suspended`` and back, with the
run's interval closed or opened in the same transaction), so a cancel or another agent
always finds one consistent state. Two pause modes: ``stop`` sends SIGSTOP to the job's
process group and SIGCONT at resumption (one process throughout); ``checkpoint`` sends
the job's pause signal (default SIGUSR1), gives it ``pause_grace_s`` real seconds to save
its state and exit (then stops it), and resumes by launching the same command again in
the same run. A Slurm run is paused with ``scontrol suspend/resume``. The energy sampler
is stopped at each pause and started again at each resumption, so paused time is never
measured. A restarted agent adopts paused runs as they are and carries on with their
intervals; an agent that adopts a running one continues its group first (it may have
died between stopping it and recording the pause).
"""

from __future__ import annotations

import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probes.detect import default_probes
from probes.model import ProbeTarget, Sample
from probes.sampler import Sampler
from scheduler.accounting import account, counterfactual_window
from scheduler.errors import CarbonshiftError, DatabaseUnreachable, ExecutorError, StorageError
from scheduler.executors.base import Executor, ExitStatus, Handle, LaunchSpec, job_environment
from scheduler.intervals import (
    PAUSE,
    checkpoint_exit_ok,
    next_boundary,
    position,
    signal_number,
)
from scheduler.leader import Leadership, LeaseTiming, holder_name, real_now
from scheduler.measuring import probe_config
from scheduler.mlflow_log import log_job_metrics, metric_names
from scheduler.model import TERMINAL_STATES, Event, Job, JobState, Run, Site
from scheduler.presence import Presence
from scheduler.progress import progress_path_for, read_progress
from scheduler.storage.base import Lease
from scheduler.storage.watch import FileLost
from scheduler.timeutil import format_duration, iso, spans_text
from scheduler.units import fmt_energy_kwh, fmt_less, fmt_mass_g

if TYPE_CHECKING:
    from scheduler.app import App

log = logging.getLogger("carbonshift.daemon")

#: A lost run (its agent, supervisor or host died; its lease ran out) is not an attempt of
#: the job: the job did not fail, and nothing else counts against it, however often
#: carbonshift crashes. Only a job whose runs keep being lost this often is given up (it
#: may be what brings its host down: out of memory, a kernel panic), so that it is not
#: retried forever.
MAX_LOST_RUNS = 10
#: how many due jobs an agent claims at once; it claims again while time is left in the
#: tick, so a claim never waits long for its launch
CLAIM_BATCH = 2


@dataclass
class ActiveRun:
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
    #: paused (the job is ``suspended``)
    paused: bool = False
    #: whether a process (or engine job) exists: not for a checkpointed job between its
    #: exit and its re-launch
    process: bool = True
    #: checkpoint mode: real monotonic time by which the signalled job must have exited
    pausing_until: float | None = None
    #: checkpoint mode: it did not exit in time and was stopped
    pause_forced: bool = False
    #: stop mode: the resumption the supervisor was told to expect (its resume-by time)
    resume_at: datetime | None = None
    #: a pause or resumption the executor refused is tried again after this (monotonic)
    retry_at: float = 0.0
    #: the end of the run's lease as last renewed (Unix seconds), as its supervisor knows it
    lease_until_epoch_s: float | None = None


class Daemon:
    """One agent: launches the jobs planned on its sites and follows them to the end."""

    def __init__(
        self,
        app: App,
        *,
        sites: Iterable[str] | None = None,
        executors: dict[str, Executor] | None = None,
        sample_interval_s: float | None = None,
        tick_s: float = 1.0,
        exit_when_idle: bool = False,
        on_event: Callable[[str], None] | None = None,
        planner: bool = True,
        agent: str | None = None,
        lease_now: Callable[[], datetime] = real_now,
    ) -> None:
        self.app = app
        self.store = app.store
        self.clock = app.clock
        self.sites = set(sites) if sites else None
        #: this agent's name, recorded on its runs (``host`` for history's sake)
        self.host = agent or app.settings.agent_name or socket.gethostname()
        #: leases are real time, whatever the scheduler's clock
        self.lease_now = lease_now
        self.lease = timedelta(seconds=app.settings.lease_s)
        #: the fencing margins and heartbeat that follow from the lease, in one place
        self.timing = LeaseTiming(app.settings.lease_s)
        self.leadership: Leadership | None = None
        if planner:
            self.leadership = Leadership(
                app.store, holder_name(self.host), ttl_s=app.settings.lease_s, now=lease_now,
                on_change=self._leadership_changed,
            )
        #: the ``serves:`` leases saying which sites have an agent (``wait`` reads them)
        self.presence = Presence(app.store, holder_name(self.host), self.sites,
                                 ttl_s=app.settings.lease_s, now=lease_now)
        self._connected_since: datetime = lease_now()
        self._renewed_at: datetime = lease_now()
        self._next_sweep: datetime = lease_now()
        self._next_claim_sweep: datetime = lease_now()
        self._heartbeat: threading.Thread | None = None
        self._sites_cache: tuple[float, dict[str, Site]] | None = None
        self._refused: set[int] = set()
        #: sweep trials put back to wait for a slot under their sweep's cap (logged once)
        self._deferred: set[int] = set()
        self._fence_due = False
        self.executors: dict[str, Executor] = executors or {}
        self.sample_interval_s = sample_interval_s or app.settings.sampling_interval_s
        self.tick_s = tick_s
        self.exit_when_idle = exit_when_idle
        self.on_event = on_event or (lambda line: log.info("%s", line))
        self.planner = planner
        self.active: dict[int, ActiveRun] = {}
        self._timers: dict[int, datetime] = {}
        self._boundary_timers: dict[int, datetime] = {}
        #: when each executor's runs are polled next (``time.monotonic()``)
        self._next_poll: dict[Executor, float] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._scheduler: Any = None
        self._last_replan: datetime | None = None
        #: set when the database file was deleted or replaced under this daemon
        self._file_lost: FileLost | None = None
        #: what ``carbonshift run`` exits with (1: it stopped for a lost database file)
        self.exit_code = 0
        self._probe_config = probe_config(app.settings)

    # -- executors ----------------------------------------------------------------------
    def executor_for(self, name: str) -> Executor:
        if name not in self.executors:
            if name == "local":
                from scheduler.executors.local import LocalExecutor

                self.executors[name] = LocalExecutor(
                    log_max_bytes=self.app.settings.log_max_bytes,
                    lease=self.timing,
                    run_as_owner=self.app.settings.run_as_owner,
                    owner_root_jobs=self.app.settings.run_as_owner_root_jobs,
                )
            elif name == "slurm":
                from scheduler.executors.measured import wrapper_argv
                from scheduler.executors.slurm import SlurmExecutor

                # measured on the node by our wrapper unless Slurm accounts energy itself
                self.executors[name] = SlurmExecutor(
                    wrapper=wrapper_argv(self.app.settings.db, interval_s=self.sample_interval_s,
                                         probe=self._probe_config),
                    poll_interval_s=self.app.settings.slurm_poll_s,
                )
            else:
                raise ExecutorError(f"unknown executor {name!r}: use local or slurm")
        return self.executors[name]

    def _host_bound(self, name: str) -> bool:
        """Whether runs of the executor ``name`` are processes of the host that launched them
        (:attr:`Executor.host_bound`); an executor this agent cannot drive is not."""
        try:
            return self.executor_for(name).host_bound
        except ExecutorError:
            return False

    def _emit(self, job_id: int | None, kind: str, message: str) -> None:
        now = self.clock.now()
        if job_id is not None:
            try:
                self.store.add_event(Event(job_id, now, kind, message))
            except CarbonshiftError as exc:
                log.warning("could not record event for job %s: %s", job_id, exc)
        self.on_event(f"{kind:<12} job {job_id}: {message}" if job_id is not None else f"{kind:<12} {message}")

    # -- life cycle ---------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        """Recover, plan, then tick until stopped (or idle, with ``exit_when_idle``)."""
        from apscheduler.schedulers.background import BackgroundScheduler

        if not self._start():
            return
        self.presence.hold()
        ended = threading.Event()  # set when this run ends, idle or stopped
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, args=(ended,),
                                           name="heartbeat", daemon=True)
        self._heartbeat.start()
        if self.leading():
            self.replan()
        sched = BackgroundScheduler(timezone=UTC, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
        self._scheduler = sched
        sched.start()
        try:
            self.sync_timers()
            while not self._stop.is_set():
                lost = self.store.file_lost()
                if lost is not None:  # see scheduler/storage/watch.py
                    sched.pause()
                    with self._lock:
                        self.follow_runs()
                        self.follow_intervals()
                    self._file_lost = self._file_lost or FileLost(self.store, lost)
                    line = self._file_lost.update(len(self.active))
                    if line:
                        self._emit(None, "error", line)
                    if not self.active:
                        self._emit(None, "error", self._file_lost.final())
                        self.exit_code = 1
                        break
                    self._stop.wait(self.tick_s)
                    continue
                try:
                    self.tick()
                except StorageError as exc:
                    self._emit(None, "error", f"database trouble, retrying: {exc}")
                    self._connected_since = self.lease_now()  # others may not renew either
                    self._stop.wait(min(30.0, self.tick_s * 5))
                    continue
                if self.exit_when_idle and self.idle():
                    break
                self._stop.wait(self.tick_s)
        finally:
            sched.shutdown(wait=False)
            self._scheduler = None
            self.detach()
            if self._heartbeat is not None:
                ended.set()  # an idle exit sets no stop: without this the join waits 10 s
                self._heartbeat.join(10)
                self._heartbeat = None
            if self.leadership is not None:
                self.leadership.release()
            self.presence.release()

    def _start(self) -> bool:
        """Recover this agent's runs, retrying with backoff while the database is unreachable.

        Returns ``False`` when stopped before the database answered. Each retry is logged;
        the wait doubles from 1 s up to 60 s, so a service manager sees no crash loop.
        """
        delay = 1.0
        while True:
            try:
                self.recover()
                self._connected_since = self.lease_now()
                self.heartbeat()  # adopted runs: renew before their supervisors fence them
                return True
            except StorageError as exc:
                trouble = "unreachable" if isinstance(exc, DatabaseUnreachable) else "error"
                self._emit(None, "error", f"database {trouble}, retrying in {delay:g} s: {exc}")
            if self._stop.wait(delay):
                return False
            delay = min(60.0, delay * 2)

    def idle(self) -> bool:
        if self.active:
            return False
        waiting = self.store.list_jobs(
            [JobState.PENDING, JobState.PLANNED, JobState.RUNNING, JobState.SUSPENDED],
            sites=self.sites, limit=1,
        )
        return not waiting

    def detach(self) -> None:
        """Stop measuring (flushing samples) but leave jobs running, recorded as running.

        Their leases are parked (no expiry), so other agents leave them to this agent's
        successor instead of reclaiming them.
        """
        with self._lock:
            try:
                parked = self.store.renew_leases(list(self.active), None, host=self.host)
            except CarbonshiftError as exc:
                log.warning("could not park the leases of %d runs: %s", len(self.active), exc)
            else:
                self._mirror_leases(parked, None)  # else their supervisors fence them in time
            for act in list(self.active.values()):
                try:
                    act.executor.detach(act.handle)
                except Exception as exc:
                    log.warning("detaching run %s: %s", act.run.id, exc)
                if act.sampler is not None:
                    try:
                        act.sampler.stop()
                    except Exception as exc:
                        log.warning("sampler of run %s: %s", act.run.id, exc)
                if act.paused:
                    self._emit(act.job.id, "detached", "daemon stopped; the job stays paused and the next "
                               "daemon resumes it" + (f" (its supervisor continues it by itself if no daemon has soon after {iso(act.resume_at)})"
                                                      if act.resume_at is not None and act.process else ""))
                else:
                    self._emit(act.job.id, "detached", "daemon stopped; the job keeps running and will be adopted by the next daemon")
            self.active.clear()

    def tick(self) -> None:
        """One round: follow running jobs, renew leases, reclaim dead agents' runs, launch
        due jobs, re-plan when due (planner lease holder only), sync timers."""
        with self._lock:
            self.follow_runs()
            self.follow_intervals()
            self.reclaim_expired()
            self.launch_due()
        now = self.clock.now()
        interval = timedelta(seconds=self.app.settings.replan_interval_s)
        if not self.leading():
            pass
        elif self._last_replan is None or now - self._last_replan >= interval:
            self.replan()
        else:
            self.plan_pending()
        self.sync_timers()

    def _sites(self) -> dict[str, Site]:
        """The sites, read at most every few seconds (they change rarely; launching many
        quick jobs would otherwise read them twice per job)."""
        now = time.monotonic()
        if self._sites_cache is None or now - self._sites_cache[0] > 5.0:
            self._sites_cache = (now, self.app.queue.sites())
        return self._sites_cache[1]

    # -- leadership -----------------------------------------------------------------------
    def leading(self) -> bool:
        """Whether this agent plans now: it holds the planner lease (taken or renewed here)."""
        return self.leadership is not None and self.leadership.hold()

    def _leadership_changed(self, leading: bool, lease: Lease | None) -> None:
        if leading and lease is not None:
            self._last_replan = None  # plan at once: the previous planner may be long gone
            self._emit(None, "leader", f"this agent ({self.host}) plans the queue now (term {lease.term})")
        elif lease is not None and lease.until > self.lease_now():
            self._emit(None, "leader", f"planning is left to {lease.holder} (term {lease.term})")
        else:
            self._emit(None, "leader", "this agent no longer holds the planner lease")

    # -- dead agents ----------------------------------------------------------------------
    def reclaim_expired(self) -> None:
        """Runs of this agent's sites whose lease ran out: their agent is dead.

        Engine-side runs (Slurm) are taken over and followed on. Local runs are closed as
        ``lost`` with the reason and their job requeued if its deadline allows (at least
        once). Jobs claimed by an agent that died before it recorded a run are planned
        again. Nothing is reclaimed until this agent has been connected for one lease.
        """
        now = self.lease_now()
        if now < self._next_sweep or now - self._connected_since < self.lease:
            return
        self._next_sweep = now + min(self.lease / 3, timedelta(seconds=max(self.tick_s, 1.0)))
        # past the lease's end by a margin: a local run's supervisor stopped the job first
        cutoff = now - timedelta(seconds=self.timing.reclaim_after_s)
        for run in self.store.expired_runs(cutoff, sites=self.sites):
            if run.id is None or run.id in self.active:
                continue
            ago = (now - run.lease_until).total_seconds() if run.lease_until else 0.0
            why = (f"agent {run.host or '?'} stopped renewing the lease of run {run.id} "
                   f"({ago:.1f} s ago, lease {self.lease.total_seconds():g} s): presumed dead")
            if run.handle and not self._host_bound(run.executor):
                self._take_over(run, now, why)
                continue
            if not self.store.reclaim_run(run.id, now, reason=why):
                continue  # renewed, or reclaimed by another agent, meanwhile
            run.finished_at, run.state, run.reason = self.clock.now(), JobState.LOST, why
            try:
                job = self.store.get_job(run.job_id)
            except CarbonshiftError:
                continue
            self._lost(job, run, why)
        if now >= self._next_claim_sweep:  # a heavier query (running jobs): less often
            self._next_claim_sweep = now + self.lease / 2
            self._replan_unstarted_claims(now)

    def _take_over(self, run: Run, now: datetime, why: str) -> None:
        assert run.id is not None
        if not self.store.take_over_run(run.id, now, host=self.host, lease_until=now + self.lease):
            return
        job = self.store.get_job(run.job_id)
        executor = self.executor_for(run.executor)
        handle = Handle(run.handle or "", host=run.host, pid=None)
        executor.adopt(handle)
        run.host = self.host
        self.active[run.id] = ActiveRun(job, run, handle, executor, None,
                                        paused=job.state is JobState.SUSPENDED)
        self._emit(job.id, "taken over", f"{why}; {run.executor} job {run.handle} still runs in the "
                   f"engine: this agent ({self.host}) follows it on")

    def _replan_unstarted_claims(self, now: datetime) -> None:
        """Jobs claimed (``running``) more than a lease ago that have no open run: the agent
        that claimed them died before it recorded one."""
        for job in self.store.list_jobs([JobState.RUNNING], sites=self.sites):
            if job.id is None or job.updated_at is None or now - job.updated_at < self.lease:
                continue
            runs = self.store.runs_for_job(job.id)
            if runs and runs[-1].finished_at is None:
                continue  # an open run: its lease decides
            last = runs[-1] if runs else None
            if last is not None and job.attempts <= len(runs):
                # the run of the latest claim ended but its agent died before closing the job
                if last.state is JobState.LOST:
                    self._lost(job, last, last.reason or "lost")
                elif last.state in TERMINAL_STATES and self.store.transition(
                    job.id, last.state, expected={JobState.RUNNING}, note=last.reason or None
                ):
                    self._emit(job.id, "recovered", f"run {last.id} had ended ({last.state}); job closed")
                continue
            if self.store.transition(job.id, JobState.PLANNED, expected={JobState.RUNNING},
                                     note="claimed but never started (its agent died first); planned again"):
                self._emit(job.id, "recovered", "claimed but never started (its agent died first); planned again")

    # -- planning -----------------------------------------------------------------------
    def replan(self) -> None:
        now = self.clock.now()
        self._last_replan = now
        try:
            _, moved = self.app.queue.replan(now)
        except CarbonshiftError as exc:
            self._emit(None, "error", f"re-planning failed: {exc}")
            return
        for job, entry in moved:
            saving = ""
            if math.isfinite(entry.run_now_g) and entry.run_now_g > 0 and math.isfinite(entry.expected_g):
                saving = f", expected {fmt_mass_g(entry.expected_g)} vs {fmt_mass_g(entry.run_now_g)} run now ({fmt_less(100 * (entry.run_now_g - entry.expected_g) / entry.run_now_g, 0)})"
            self._emit(job.id, "planned", f"start {iso(entry.start)} (in {format_duration(max(0.0, (entry.start - now).total_seconds()))}) on {entry.site} ({entry.reason}{saving})")

    def plan_pending(self) -> None:
        """Plan jobs that are pending (requeued) without waiting for the next re-plan
        (planner lease holder only)."""
        if self.leading() and self.store.list_jobs([JobState.PENDING], limit=1):
            self.replan()

    # -- timers -------------------------------------------------------------------------
    def sync_timers(self) -> None:
        sched = self._scheduler
        if sched is None:
            return
        # jobs already due are launch_due's
        planned = self.store.planned_starts(after=self.clock.now(), sites=self.sites)
        for job_id in list(self._timers):
            if job_id not in planned:
                self._timers.pop(job_id, None)
                try:
                    sched.remove_job(f"job-{job_id}")
                except Exception:
                    pass
        for job_id, start in planned.items():
            if self._timers.get(job_id) == start:
                continue
            run_at = datetime.now(UTC) + timedelta(seconds=self.clock.real_delay_s(start))
            sched.add_job(
                self._fire, "date", run_date=run_at, args=[job_id], id=f"job-{job_id}",
                replace_existing=True,
            )
            self._timers[job_id] = start
        self._sync_boundary_timers(sched)

    def _sync_boundary_timers(self, sched: Any) -> None:
        """A timer for each interruptible run's next pause or resumption."""
        with self._lock:
            now = self.clock.now()
            wanted: dict[int, datetime] = {}
            for run_id, act in self.active.items():
                if not act.job.interruptible or act.pausing_until is not None:
                    continue
                step = next_boundary(act.intervals, paused=act.paused, now=now)
                if step is not None and step[1] > now:
                    wanted[run_id] = step[1]
        for run_id in list(self._boundary_timers):
            if run_id not in wanted:
                self._boundary_timers.pop(run_id, None)
                try:
                    sched.remove_job(f"run-{run_id}")
                except Exception:
                    pass
        for run_id, at in wanted.items():
            if self._boundary_timers.get(run_id) == at:
                continue
            run_at = datetime.now(UTC) + timedelta(seconds=self.clock.real_delay_s(at))
            sched.add_job(self._fire_boundary, "date", run_date=run_at, args=[run_id],
                          id=f"run-{run_id}", replace_existing=True)
            self._boundary_timers[run_id] = at

    def _fire(self, job_id: int) -> None:
        """A timer fired: claim the job, then launch it."""
        with self._lock:
            self._timers.pop(job_id, None)
            try:
                job = self.store.get_job(job_id)
            except CarbonshiftError:
                return
            if job.state is not JobState.PLANNED or job.planned_start is None:
                return
            if self.clock.real_delay_s(job.planned_start) > 0.05:
                return  # moved later meanwhile; sync_timers sets a new timer
            self._claim_and_launch(job)

    def launch_due(self) -> None:
        """Claim and launch the jobs of this agent's sites whose planned start has come.

        Timers launch jobs on time; this catches the rest (jobs due at once, clock jumps, a
        busy machine), claiming up to :data:`CLAIM_BATCH` per call atomically
        (``FOR UPDATE SKIP LOCKED`` on PostgreSQL): agents sharing a site split the due
        jobs between them instead of all contending for the same ones.
        """
        now = self.clock.now()
        budget = time.monotonic() + min(self.lease.total_seconds() / 4, 2.0)
        while not self._stop.is_set():
            claimed = self.store.claim_due(now, sites=self.sites, limit=CLAIM_BATCH)
            deferred = False
            for job in claimed:
                # A claim with no run yet is planned again by other agents once it is a
                # lease old (its agent may have died); launching it later than half a lease
                # after the claim could start it twice. Leave such a claim to them.
                at = job.updated_at or self.lease_now()
                if self.lease_now() - at > self.lease / 2:
                    self._emit(job.id, "claim", "claimed too long ago to launch safely; other "
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

    def _launch_trial(self, job: Job) -> bool:
        """Launch a claimed sweep trial if the sweep's rules allow
        (:func:`scheduler.sweeps.launch_gate`), holding the sweep's launch lease from the
        gate to the run's row so that agents sharing the queue never fill one free slot
        twice; log a skip, and a deferral the first time. Returns whether it launched."""
        from scheduler import sweeps

        assert job.sweep_id is not None
        name, holder, now = sweeps.launch_lease(job.sweep_id), holder_name(self.host), self.lease_now()
        if self.store.acquire_lease(name, holder, now, now + self.lease) is None:
            gate = sweeps.put_back(self.app, job, "another agent is launching a trial of this sweep")
        else:
            try:
                gate = sweeps.launch_gate(self.app, job, self.clock.now())
                if gate.launch:
                    self._deferred.discard(job.id or 0)
                    self.launch(job)
                    return True
            finally:
                self.store.release_lease(name, holder)
        if gate.kind == "skipped":
            self._emit(job.id, "skipped", gate.message)
        elif job.id not in self._deferred:
            self._deferred.add(job.id or 0)
            self.on_event(f"{'deferred':<12} job {job.id}: {gate.message}")
        return False

    def _check_sweep_budget(self, job: Job) -> None:
        """After a trial's run is accounted: stop its sweep if the rest would break its budget."""
        if job.sweep_id is None:
            return
        from scheduler import sweeps

        try:
            sweep = self.store.get_sweep(job.sweep_id)
            line = sweeps.check_budget(self.app, sweep, self.clock.now())
        except CarbonshiftError as exc:
            log.warning("sweep of job %s: could not check its budget: %s", job.id, exc)
            return
        if line is not None:
            self._emit(None, "sweep", line)

    def _claim_and_launch(self, job: Job) -> None:
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

    # -- launching ----------------------------------------------------------------------
    def launch(self, job: Job) -> None:
        """Start a claimed job (state ``running``) and its energy sampler."""
        assert job.id is not None
        now = self.clock.now()
        site_name = job.planned_site or job.site
        site = self._sites().get(site_name)
        executor_name = site.executor if site is not None else "local"
        # the claim counted the attempt; the lease runs in real time from now
        run = self.store.add_run(
            Run(job_id=job.id, site=site_name, executor=executor_name, started_at=now,
                host=self.host, state=JobState.RUNNING,
                lease_until=self.lease_now() + self.lease)
        )
        assert run.id is not None
        if job.interruptible:
            self.store.open_run_interval(run.id, now)
        log_dir = self.app.settings.log_dir / f"job-{job.id}"
        run.out_path = str(log_dir / f"run-{run.id}.out")
        run.err_path = str(log_dir / f"run-{run.id}.err")
        gpus = self._allocate_gpus(job, site_name, site.gpus if site is not None else 0)
        lease_epoch = self._epoch(run.lease_until)
        try:
            executor = self.executor_for(executor_name)
            handle = executor.launch(LaunchSpec(
                job=job, run_id=run.id, out_path=run.out_path, err_path=run.err_path,
                env=job_environment(job, run.id, run.site), begin_at=job.planned_start, gpu_indices=gpus,
                lease_until_epoch_s=lease_epoch,
            ))
        except (ExecutorError, OSError) as exc:
            run.finished_at = self.clock.now()
            run.state = JobState.FAILED
            run.reason = f"launch failed: {exc}"
            self.store.update_run(run)
            if job.interruptible:
                self.store.close_run_interval(run.id, run.finished_at, run.reason)
            self.store.transition(job.id, JobState.FAILED, expected={JobState.RUNNING}, note=run.reason)
            self._emit(job.id, "failed", run.reason)
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
        act.sampler = self._start_sampler(job, run, handle, gpus)
        late = (now - job.planned_start).total_seconds() if job.planned_start else 0.0
        late_real_s = late / self.clock.factor
        plan_text = ""
        if len(act.intervals) > 1:
            k, n = position(act.intervals, now)
            plan_text = f"; interval {k} of {n} ({spans_text(act.intervals)}), paused between them ({job.pause_mode or 'stop'})"
        contained = act.executor.containment()
        self._emit(job.id, "started", f"run {run.id} on {site_name} ({executor_name} {handle.handle.split(':')[0]}"
                   + (f"; contained by {contained})" if contained else ")")
                   + (f", {format_duration(late)} after its planned start" if late_real_s > 30 else "")
                   + plan_text)

    def _allocate_gpus(self, job: Job, site_name: str, site_gpus: int) -> tuple[int, ...]:
        """Distinct GPU indices for a local job: the lowest ones no active run holds."""
        if job.gpus <= 0 or site_gpus <= 0:
            return ()
        held = {i for a in self.active.values() if a.run.site == site_name for i in a.gpu_indices}
        free = [i for i in range(site_gpus) if i not in held]
        if len(free) < job.gpus:
            self._emit(job.id, "gpus", f"needs {job.gpus} GPUs but only {len(free)} are free on {site_name}; sharing")
            free += sorted(held)
        return tuple(free[: job.gpus])

    def _start_sampler(
        self, job: Job, run: Run, handle: Handle, gpus: tuple[int, ...] = ()
    ) -> Sampler | None:
        if handle.pid is None:
            return None  # engine-side job (Slurm): measured by its own wrapper/accounting
        run_id = run.id
        assert run_id is not None

        def sink(batch: list[Sample]) -> None:
            self.store.add_samples(run_id, batch)

        def note(text: str) -> None:
            self._emit(job.id, "probe", text)

        try:
            sampler = Sampler(
                ProbeTarget(pid=handle.pid, pgid=handle.pid, gpu_indices=gpus),
                now=self.clock.now, sink=sink, interval_s=self.sample_interval_s,
                probes=default_probes(self._probe_config), on_note=note,
                # flushed every reading (the sampler's default): the live line must not
                # read zero for the first ~50 s of a run
            )
            sampler.start()
            return sampler
        except Exception as exc:
            self._emit(job.id, "probe", f"no energy measurement for this run: {exc}")
            return None

    # -- following ----------------------------------------------------------------------
    def follow_runs(self) -> None:
        self.renew()
        for act in [a for a in self.active.values() if a.unsaved]:
            self.store.update_run(act.run)
            act.unsaved = False
        statuses = self._poll_runs()
        for run_id, act in list(self.active.items()):
            if not act.process:  # a checkpointed job waiting for its next interval
                if self._cancelled_while_paused(act):
                    self.active.pop(run_id, None)
                continue
            status = statuses.get(run_id)  # None: alive, or its executor's poll is not due
            if status is None:
                self._check_cancel(act)
                self._check_pause_grace(act)
                continue
            if act.pausing_until is not None and self._checkpointed(act, status):
                continue  # paused: waits for its next interval without a process
            self.finish(act, status)
            self.active.pop(run_id, None)

    def _poll_runs(self) -> dict[int, ExitStatus | None]:
        """The status of the runs whose executor's poll is due: one ``poll_many`` per executor
        for all its runs (one ``squeue`` for every Slurm run), at most every
        ``poll_interval_s`` real seconds. A failed query is retried at the next poll."""
        runs: dict[Executor, list[tuple[int, ActiveRun]]] = {}
        for run_id, act in self.active.items():
            if act.process:
                runs.setdefault(act.executor, []).append((run_id, act))
        statuses: dict[int, ExitStatus | None] = {}
        for executor, acts in runs.items():
            if time.monotonic() < self._next_poll.get(executor, 0.0):
                continue
            self._next_poll[executor] = time.monotonic() + executor.poll_interval_s
            try:
                got = executor.poll_many([act.handle for _, act in acts])
            except ExecutorError as exc:
                self._emit(None, "error", f"cannot follow {len(acts)} {executor.name} runs "
                           f"(trying again in {executor.poll_interval_s:g} s): {exc}")
                continue
            statuses.update((run_id, got.get(act.handle)) for run_id, act in acts)
        return statuses

    # -- interruptible jobs ---------------------------------------------------------------
    def _pause_mode(self, act: ActiveRun) -> str:
        """``checkpoint`` or ``stop`` for a local run; ``engine`` (the executor's own
        suspend: Slurm's ``scontrol suspend``) for any other."""
        if not act.executor.host_bound:
            return "engine"
        return "checkpoint" if act.job.pause_mode == "checkpoint" else "stop"

    def follow_intervals(self) -> None:
        """Pause or resume the interruptible runs whose boundary has come (timers do it on
        time; this catches the rest), after reading their planned intervals again: a
        re-plan may have moved a paused job's."""
        acts = [a for a in self.active.values() if a.job.interruptible and a.job.id is not None]
        if not acts:
            return
        spans = self.store.planned_intervals(a.job.id for a in acts)  # type: ignore[misc]
        now = self.clock.now()
        for act in acts:
            act.intervals = spans.get(act.job.id, [])  # type: ignore[arg-type]
            self._boundary(act, now)

    def _fire_boundary(self, run_id: int) -> None:
        """A pause or resumption timer fired."""
        with self._lock:
            self._boundary_timers.pop(run_id, None)
            act = self.active.get(run_id)
            if act is None or act.job.id is None:
                return
            try:
                act.intervals = self.store.planned_intervals([act.job.id]).get(act.job.id, [])
                self._boundary(act, self.clock.now())
            except CarbonshiftError as exc:
                log.warning("run %s: interval timer: %s (the next tick retries)", run_id, exc)

    def _boundary(self, act: ActiveRun, now: datetime) -> None:
        if (act.pausing_until is not None or act.cancel_sent or act.run.id not in self.active
                or time.monotonic() < act.retry_at):
            return
        step = next_boundary(act.intervals, paused=act.paused, now=now)
        if step is None:
            return
        kind, at = step
        delay = self.clock.real_delay_s(at)
        if delay > 0.05:
            if act.paused:
                self._tell_resume_by(act, at)  # a re-plan may have moved it
            return
        if delay > 0:
            # a timer may fire a few milliseconds early (minutes of an accelerated clock):
            # acting before the boundary would pause inside the interval, or resume before it
            time.sleep(delay)
            now = max(self.clock.now(), at)
        try:
            if kind == PAUSE:
                self._pause(act, now)
            else:
                self._resume(act, now)
        except ExecutorError as exc:  # e.g. a Slurm job not started yet: try again later
            act.retry_at = time.monotonic() + 30.0
            self._emit(act.job.id, "error", f"could not {kind} run {act.run.id} (trying again in 30 s): {exc}")

    def _tell_resume_by(self, act: ActiveRun, at: datetime) -> None:
        """A stopped local job's supervisor continues it by itself if nobody has resumed it
        a third of a lease after ``at`` (its agent stopped and no successor came)."""
        if self._pause_mode(act) != "stop" or not act.process or act.resume_at == at:
            return
        if act.executor.resume_by(
                act.handle, time.time() + self.clock.real_delay_s(at) + self.lease.total_seconds() / 3):
            act.resume_at = at

    def _where(self, act: ActiveRun, now: datetime, *, ending: bool) -> str:
        if not act.intervals:
            return "no planned interval left"
        k, n = position(act.intervals, now)
        a, b = sorted(act.intervals)[k - 1]
        return f"{'end of ' if ending else ''}interval {k} of {n} ({spans_text([(a, b)])})"

    def _pause(self, act: ActiveRun, now: datetime) -> None:
        """End of an interval: win ``running -> suspended`` in the database, then pause."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        if self.store.get_job(job.id).state is not JobState.RUNNING:
            return  # cancelled meanwhile: the follow loop stops it
        step = next_boundary(act.intervals, paused=True, now=now)
        resume_at = step[1] if step is not None else now
        where = self._where(act, now, ending=True)
        when = (f"resumes {iso(resume_at)} (in "
                f"{format_duration(max(0.0, (resume_at - now).total_seconds()))})")
        mode = self._pause_mode(act)
        if mode == "checkpoint":
            signum = signal_number(job.pause_signal, self.app.settings.pause_signal)
            if not act.executor.can_ask or not self.store.pause_run(job.id, run.id, now, how=None):
                return
            grace = job.pause_grace_s if job.pause_grace_s is not None else self.app.settings.pause_grace_s
            act.paused = True
            act.pausing_until = time.monotonic() + grace
            act.executor.ask(act.handle, signum)
            self._emit(job.id, "paused", f"{where}: sent {signal.Signals(signum).name} to checkpoint "
                       f"and exit (grace {format_duration(grace)}); {when}")
            return
        # stop first, then the last reading, then the record: the samples end inside it
        act.executor.suspend(act.handle)
        self._stop_sampler(act)
        at = self.clock.now()
        how = "paused: SIGSTOP" if mode == "stop" else f"paused: {run.executor} suspend"
        if not self.store.pause_run(job.id, run.id, at, how=how):
            act.executor.resume(act.handle)  # lost to a cancel: let the follow loop stop it
            act.sampler = self._start_sampler(job, run, act.handle, act.gpu_indices)
            return
        act.paused = True
        act.resume_at = None
        self._tell_resume_by(act, resume_at)
        what = "process group stopped (SIGSTOP)" if mode == "stop" else f"{run.executor} job suspended"
        self._emit(job.id, "paused", f"{where}: {what}; {when}")

    def _resume(self, act: ActiveRun, now: datetime) -> None:
        """Start of an interval: win ``suspended -> running`` (opening the run's next
        interval) in the database, then continue the job, or launch it again."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        where = self._where(act, now, ending=False)
        if not act.process:
            self._relaunch(act, now, where)
            return
        if not self.store.resume_run(job.id, run.id, now, handle=run.handle):
            return  # cancelled, or moved later by a re-plan: the next tick sees it
        act.executor.resume(act.handle)
        act.paused = False
        act.resume_at = None
        act.sampler = self._start_sampler(job, run, act.handle, act.gpu_indices)
        what = "process group continued (SIGCONT)" if self._pause_mode(act) == "stop" \
            else f"{run.executor} job resumed"
        self._emit(job.id, "resumed", f"{where}: {what}")

    def _relaunch(self, act: ActiveRun, now: datetime, where: str) -> None:
        """Resume a checkpointed job: the same command again, in the same run."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        # forget the old process first: should this agent die between the claim below and
        # the launch, its successor finds no handle and looks for the new one's pid file
        run.handle = None
        self.store.update_run(run)
        if not self.store.resume_run(job.id, run.id, now):
            return
        try:
            assert run.out_path is not None and run.err_path is not None
            handle = act.executor.launch(LaunchSpec(
                job=job, run_id=run.id, out_path=run.out_path, err_path=run.err_path,
                env=job_environment(job, run.id, run.site), gpu_indices=act.gpu_indices,
                lease_until_epoch_s=act.lease_until_epoch_s,
            ))
        except (ExecutorError, OSError) as exc:
            self.finish(act, ExitStatus(None, JobState.FAILED.value, f"re-launch to resume failed: {exc}"))
            self.active.pop(run.id, None)
            return
        act.handle, run.handle = handle, handle.handle
        self.store.update_run(run)
        self.store.set_interval_handle(run.id, handle.handle)
        act.process, act.paused, act.pause_forced = True, False, False
        act.sampler = self._start_sampler(job, run, handle, act.gpu_indices)
        self._emit(job.id, "resumed", f"{where}: launched the same command again "
                   f"({run.executor} {handle.handle.split(':')[0]}) to resume from its checkpoint")

    def _check_pause_grace(self, act: ActiveRun) -> None:
        """A checkpointing job that has not exited within its grace is stopped."""
        if act.pausing_until is None or act.pause_forced or time.monotonic() < act.pausing_until:
            return
        act.pause_forced = True
        self._emit(act.job.id, "paused", "the job did not exit within its grace after the pause "
                   "signal: stopping it (SIGTERM, then SIGKILL); it resumes from its last checkpoint")
        threading.Thread(target=act.executor.cancel, args=(act.handle,), kwargs={"grace_s": 5.0},
                         daemon=True).start()

    def _checkpointed(self, act: ActiveRun, status: ExitStatus) -> bool:
        """A job asked to checkpoint has exited. Returns ``True`` when that is a pause (it
        exited cleanly or of its signal, or was stopped after the grace), so it waits for its
        next interval without a process; ``False`` when it has finished (it says it is
        done through the progress protocol) or failed: then :meth:`finish` closes the run."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        signum = signal_number(job.pause_signal, self.app.settings.pause_signal)
        progress = read_progress(progress_path_for(run.out_path)) if run.out_path else None
        if status.exit_code == 0 and progress is not None and progress.fraction >= 1.0:
            return False  # it finished its work meanwhile
        if not (act.pause_forced or checkpoint_exit_ok(status.exit_code, signum)):
            return False  # it failed
        self._stop_sampler(act, final_cpu_s=status.cpu_s)
        self._cleanup_group(act)
        code = f"exit {status.exit_code}" if status.exit_code is not None else "no exit record"
        how = "checkpointed: " + (f"stopped after its grace ({code})" if act.pause_forced else code)
        self.store.close_run_interval(run.id, self.clock.now(), how)
        act.process, act.pausing_until = False, None
        step = next_boundary(act.intervals, paused=True, now=self.clock.now())
        self._emit(job.id, "checkpointed", f"the job exited ({code}) after its pause signal; it is "
                   f"launched again at {iso(step[1]) if step else 'once'} to resume")
        return True

    def _cancelled_while_paused(self, act: ActiveRun) -> bool:
        """A checkpointed (process-less) paused job that was cancelled: close its run."""
        assert act.job.id is not None
        if self.store.get_job(act.job.id).state is not JobState.CANCELLED:
            return False
        self.finish(act, ExitStatus(None, JobState.CANCELLED.value, "cancelled while paused"))
        return True

    def _adopt_paused(self, job: Job, run: Run) -> bool:
        """Recovery of a run whose job is ``suspended``: adopted as paused. Returns
        ``False`` when there is nothing to adopt (the generic recovery then closes it)."""
        assert run.id is not None and job.id is not None
        executor = self.executor_for(run.executor)
        spans = self.store.planned_intervals([job.id]).get(job.id, [])
        done = self.store.run_intervals(run.id)
        checkpointing = executor.host_bound and job.pause_mode == "checkpoint"
        open_interval = bool(done) and done[-1].end is None
        pid = _pid_of(run.handle) if run.handle and executor.host_bound else None
        handle = Handle(run.handle or "", host=run.host, pid=pid)
        act = ActiveRun(job, run, handle, executor, None, paused=True, intervals=spans,
                        gpu_indices=_gpus_of_pid(pid))
        if checkpointing and not open_interval:
            act.process = False  # between its checkpoint and its re-launch: nothing runs
            self.active[run.id] = act
            self._emit(job.id, "adopted", f"run {run.id} is paused (checkpointed); it is launched "
                       "again at its next interval")
            return True
        if not run.handle:
            return False
        if not executor.alive(handle):
            status = executor.poll(handle)
            if status is None or not checkpointing:
                return False
            act.pausing_until = time.monotonic()  # it exited while the last agent waited
            if self._checkpointed(act, status):
                self.active[run.id] = act
            else:
                self.finish(act, status)
            return True
        executor.adopt(handle)
        if checkpointing:
            grace = job.pause_grace_s if job.pause_grace_s is not None else self.app.settings.pause_grace_s
            act.pausing_until = time.monotonic() + grace
            self._emit(job.id, "adopted", f"run {run.id} was asked to checkpoint; waiting for it to exit")
        else:
            if executor.host_bound:  # stopped already; again in case the last agent died first
                executor.suspend(handle)
            self._emit(job.id, "adopted", f"run {run.id} is paused; it resumes at its next interval")
        self.active[run.id] = act
        return True

    def heartbeat(self) -> None:
        """Renew the lease of every run followed, and the planner lease when held.

        Runs in its own thread (every third of a lease), so that a slow tick (a busy
        machine, a launch storm) never starves the proof of life. Runs whose renewal was
        refused (reclaimed or taken over meanwhile) are noted for :meth:`renew` to let go.
        """
        now = self.lease_now()
        ids = list(self.active)
        if ids:
            try:
                renewed = set(self.store.renew_leases(ids, now + self.lease, host=self.host))
            except CarbonshiftError as exc:
                log.warning("lease renewal failed: %s", exc)
                self._connected_since = now  # the others may not be able to renew either
                # when the supervisors stop their jobs too (LeaseTiming.fence_before_s)
                if now - self._renewed_at >= self.lease - timedelta(seconds=self.timing.fence_before_s):
                    self._fence_due = True
                ids = []
            else:
                self._renewed_at = now
                self._fence_due = False
                self._refused.update(set(ids) - renewed)
                self._mirror_leases(renewed, self._epoch(now + self.lease))
        else:
            self._renewed_at = now
            self._fence_due = False
        if self.leadership is not None:
            self.leadership.hold()
        self.presence.hold()

    def _mirror_leases(self, run_ids: Iterable[int], until_epoch_s: float | None) -> None:
        """Tell the supervisors of these runs how long their leases now last (only after
        the database holds it: a supervisor must never believe in a longer lease)."""
        for run_id in run_ids:
            act = self.active.get(run_id)
            if act is None:
                continue
            act.lease_until_epoch_s = until_epoch_s
            try:
                act.executor.renewed(act.handle, until_epoch_s)
            except Exception as exc:
                log.warning("run %s: could not pass its lease on to its supervisor: %s", run_id, exc)

    def _epoch(self, at: datetime | None) -> float | None:
        """A lease's end (by :attr:`lease_now`) as real Unix seconds, for supervisors."""
        return None if at is None else time.time() + (at - self.lease_now()).total_seconds()

    def _heartbeat_loop(self, done: threading.Event) -> None:
        period = self.timing.heartbeat_s
        while not done.wait(period) and not self._stop.is_set():
            try:
                self.heartbeat()
            except Exception as exc:  # never let the proof of life die silently
                log.warning("heartbeat: %s", exc)

    def renew(self) -> None:
        """Act on the heartbeat: let go of runs whose lease another agent took; stop local
        runs when leases could not be renewed for most of a lease.

        A run missing from the renewal was reclaimed or taken over by another agent after
        its lease ran out: a local one is stopped (it is requeued elsewhere), an engine-side
        one is left to the agent that took it over. Without a heartbeat thread (a daemon
        driven tick by tick) the heartbeat runs here.
        """
        if self._heartbeat is None:
            self.heartbeat()
        if self._fence_due:
            self._fence(self.lease_now())
        refused, self._refused = self._refused, set()
        for run_id in refused:
            act = self.active.get(run_id)
            if act is None:
                continue  # finished meanwhile
            stored = self.store.get_run(run_id)
            if stored.host == self.host and not (
                stored.state is JobState.LOST and stored.reason.startswith(f"agent {self.host} ")
            ):
                continue  # closed by this agent's own finish, cut short: finish completes it
            self.active.pop(run_id, None)
            if act.sampler is not None:
                try:
                    act.sampler.stop()
                except Exception as exc:
                    log.warning("sampler of run %s: %s", run_id, exc)
            if act.executor.host_bound:
                self._emit(act.job.id, "lease lost", f"run {run_id} was reclaimed by another agent after its "
                           "lease ran out; stopping this copy so the job never runs twice")
                threading.Thread(target=act.executor.cancel, args=(act.handle,), daemon=True).start()
            else:
                self._emit(act.job.id, "lease lost", f"run {run_id} was taken over by another agent")

    def _fence(self, now: datetime) -> None:
        """Stop local runs whose leases this agent could not renew (no database)."""
        for act in list(self.active.values()):
            if not act.executor.host_bound or act.cancel_sent:
                continue
            act.cancel_sent = True
            self.on_event(f"{'fenced':<10} job {act.job.id}: could not renew the lease of run "
                          f"{act.run.id} for {(now - self._renewed_at).total_seconds():.0f} s; "
                          "stopping it, since another agent may start the job again")
            threading.Thread(target=act.executor.cancel, args=(act.handle,), daemon=True).start()

    def _check_cancel(self, act: ActiveRun) -> None:
        if act.cancel_sent:
            return
        assert act.job.id is not None
        job = self.store.get_job(act.job.id)
        if job.state is JobState.CANCELLED:
            act.cancel_sent = True
            self._emit(job.id, "cancel", "stopping the job's processes (SIGTERM, then SIGKILL)")
            threading.Thread(target=act.executor.cancel, args=(act.handle,), daemon=True).start()

    def finish(self, act: ActiveRun, status: ExitStatus) -> None:
        """Close a run: last samples, exit code, job state, accounting, one event."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        self._stop_sampler(act, final_cpu_s=status.cpu_s)
        if act.process:  # a checkpointed job's old group is long gone (its id may be reused)
            self._cleanup_group(act)
        now = self.clock.now()
        current = self.store.get_job(job.id)
        state = JobState(status.state)
        if current.state is JobState.CANCELLED:
            state = JobState.CANCELLED
        run.finished_at = now
        run.exit_code = status.exit_code
        run.state = state
        run.reason = status.reason
        self._engine_times(run, status)
        if not self.store.close_run(run):
            stored = self.store.get_run(run.id)
            if not (stored.state is run.state and stored.reason == run.reason):
                self._emit(job.id, "finished", f"run {run.id} ended ({state}) but another agent "
                           "had already closed it (its lease had run out)")
                return
            # closed by our own earlier try, cut short by a database error: carry on
        if state is JobState.LOST:
            self._lost(current, run, status.reason)
        elif current.state is not JobState.CANCELLED:
            self.store.transition(job.id, state, expected={JobState.RUNNING, JobState.SUSPENDED}, note=status.reason or None)
        extra = self._account(current, run, act.executor)
        code = f"exit {status.exit_code}" if status.exit_code is not None else status.reason
        took = format_duration((now - run.started_at).total_seconds())
        if job.interruptible:
            spans = [(iv.start, iv.end or now) for iv in self.store.run_intervals(run.id)]
            if len(spans) > 1:
                ran = sum((b - a).total_seconds() for a, b in spans)
                took += f" (ran {format_duration(ran)} in {len(spans)} intervals)"
        self._emit(job.id, "finished", f"{state} ({code}) after {took}{extra}")
        self._check_sweep_budget(current)

    def _stop_sampler(self, act: ActiveRun, *, final_cpu_s: float | None = None) -> None:
        """Take a run's last reading (at exit, or at a pause) and store what is left."""
        sampler, act.sampler = act.sampler, None
        if sampler is None:
            return
        try:
            sampler.stop(final_cpu_s=final_cpu_s)
            left = list(sampler.unflushed)
            if left and act.run.id is not None:  # refused at stop: one more try, then say so
                try:
                    self.store.add_samples(act.run.id, left)
                except CarbonshiftError as exc:
                    self._emit(act.job.id, "probe", f"{len(left)} energy samples could not be stored: {exc}")
        except Exception as exc:
            log.warning("sampler of run %s: %s", act.run.id, exc)

    def _cleanup_group(self, act: ActiveRun) -> None:
        try:
            if act.executor.cleanup_group(act.handle):
                self._emit(act.job.id, "cleanup", "ended processes the job left behind")
        except Exception as exc:
            log.warning("cleanup of run %s: %s", act.run.id, exc)

    def _engine_times(self, run: Run, status: ExitStatus) -> None:
        """An engine-side run (Slurm) started when the engine started it, not when it was
        submitted: take the engine's start and end (real UTC) when the clock is real."""
        from scheduler.clock import SystemClock

        if not isinstance(self.clock, SystemClock):
            return  # a simulated clock: engine times are real, keep ours
        for key, attr in (("slurm_start", "started_at"), ("slurm_end", "finished_at")):
            text = status.extra.get(key)
            if not text:
                continue
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                continue
            if value.tzinfo is not None and (attr == "finished_at" or value >= run.started_at):
                setattr(run, attr, value)

    def _account(self, job: Job, run: Run, executor: Executor) -> str:
        assert run.id is not None
        try:
            samples = self.store.samples_for_run(run.id)
            engine = executor.energy(Handle(run.handle or ""))
            if engine:
                self.store.add_samples(run.id, engine)
                samples = engine
            if not samples or run.finished_at is None:
                return ""
            site = self._sites().get(run.site)
            zone = site.zone if site is not None else job.zone
            pue = site.pue if site is not None else 1.0
            first = min(s.start for s in samples)
            last = max(s.end for s in samples)
            pts = self.app.intensity.points_for_accounting(zone, first, last + timedelta(seconds=1))
            # a paused run: its intervals, laid end to end from submission for run-now
            spans = [(iv.start, iv.end or run.finished_at) for iv in self.store.run_intervals(run.id)] \
                if job.interruptible else []
            intervals = spans if len(spans) > 1 else None
            cf_first, cf_last = counterfactual_window(
                samples, started_at=run.started_at, submitted_at=job.submitted_at, intervals=intervals)
            cf_pts = self.app.intensity.points_for_accounting(
                job.zone, cf_first, cf_last + timedelta(seconds=1)
            )
            acct = account(samples, pts, started_at=run.started_at, submitted_at=job.submitted_at,
                           pue=pue, counterfactual_points=cf_pts, intervals=intervals)
            self.store.set_accounting(run.id, acct)
            log_job_metrics(job.env, metric_names(acct.energy_j, acct.emissions_g, acct.saved_g),
                            what=f"job {job.id} run {run.id}")
            pct = f" ({100 * acct.saved_g / acct.counterfactual_g:.1f}%)" if acct.counterfactual_g > 0 else ""
            return (f": {fmt_energy_kwh(acct.energy_kwh)} ({acct.energy_method}), "
                    f"{fmt_mass_g(acct.emissions_g)} ({acct.intensity_kind}, {acct.intensity_provider}), "
                    f"saved {fmt_mass_g(acct.saved_g)} vs run-now{pct}")
        except CarbonshiftError as exc:
            self._emit(job.id, "error", f"accounting failed: {exc}")
            return ""

    def _lost(self, job: Job, run: Run, reason: str) -> None:
        """A run died unobserved: requeue if the deadline still allows (and the job has not
        lost :data:`MAX_LOST_RUNS` runs), else mark lost."""
        assert job.id is not None
        now = self.clock.now()
        can_finish = job.deadline_at is None or now + timedelta(seconds=job.duration_s) <= job.deadline_at
        lost = sum(r.state is JobState.LOST for r in self.store.runs_for_job(job.id))
        if lost >= MAX_LOST_RUNS:
            reason = f"{reason}; given up after {lost} lost runs (it may be what brings its host down)"
        if (
            can_finish
            and lost < MAX_LOST_RUNS
            and self.store.transition(
                job.id, JobState.PENDING, expected={JobState.RUNNING, JobState.SUSPENDED},
                note=f"requeued after a lost run: {reason}",
            )
        ):
            self._emit(job.id, "requeued", f"run {run.id} lost ({reason}); the job will run again")
            return
        self.store.transition(job.id, JobState.LOST, expected={JobState.RUNNING, JobState.SUSPENDED}, note=reason)
        self._emit(job.id, "lost", f"run {run.id}: {reason}")

    # -- recovery -----------------------------------------------------------------------
    def recover(self) -> None:
        """Adopt live runs left by an earlier daemon on this host; close dead ones."""
        with self._lock:
            open_runs = self.store.open_runs(host=self.host)
            open_job_ids = {r.job_id for r in open_runs}
            for run in open_runs:
                if run.id in self.active:
                    continue
                job = self.store.get_job(run.job_id)
                if self.sites is not None and run.site not in self.sites:
                    continue
                if job.interruptible and job.state is JobState.SUSPENDED and self._adopt_paused(job, run):
                    continue
                if not run.handle:
                    run.handle = self._find_launched(run)
                if not run.handle:
                    run.finished_at = self.clock.now()
                    run.state = JobState.LOST
                    run.reason = "the daemon stopped while launching this run"
                    self.store.update_run(run)
                    self._lost(job, run, run.reason)
                    continue
                if not run.out_path and run.id is not None:
                    run.out_path = str(log_path(self.app, run.job_id, run.id))
                    run.err_path = run.out_path[: -len(".out")] + ".err"
                    self.store.update_run(run)  # the handle, found by _find_launched
                executor = self.executor_for(run.executor)
                pid = _pid_of(run.handle) if executor.host_bound else None  # not a Slurm id
                handle = Handle(run.handle, host=run.host, pid=pid)
                if executor.alive(handle):
                    executor.adopt(handle)
                    if job.interruptible and job.state is JobState.RUNNING and executor.host_bound:
                        # the last agent may have died between stopping it and recording
                        # the pause: it runs now, and is paused again if it should be
                        executor.resume(handle)
                    gpus = _gpus_of_pid(handle.pid)
                    sampler = self._start_sampler(job, run, handle, gpus)
                    self.active[run.id] = ActiveRun(  # type: ignore[index]
                        job, run, handle, executor, sampler, gpu_indices=gpus
                    )
                    self._emit(job.id, "adopted", f"run {run.id} is still running; measuring it again")
                    continue
                status = executor.poll(handle)
                if status is None:
                    continue
                self.finish(ActiveRun(job, run, handle, executor, None), status)
            # jobs claimed by a daemon that died before it recorded a run
            for job in self.store.list_jobs([JobState.RUNNING], sites=self.sites):
                if job.id in open_job_ids or job.id is None:
                    continue
                if job.updated_at is not None and self.lease_now() - job.updated_at < self.lease:
                    continue  # maybe another agent's launch in flight: the sweep decides later
                runs = self.store.runs_for_job(job.id)
                if runs and runs[-1].finished_at is None:
                    continue  # another host's open run
                if runs and runs[-1].state is not JobState.RUNNING:
                    # the daemon died between closing the run and updating the job: the run
                    # holds the outcome; planning the job again would run it twice
                    last = runs[-1]
                    if last.state is JobState.LOST:
                        self._lost(job, last, last.reason or "lost")
                    elif self.store.transition(job.id, last.state, expected={JobState.RUNNING},
                                               note=last.reason or None):
                        self._emit(job.id, "recovered", f"run {last.id} had ended ({last.state}); job closed")
                    continue
                if self.store.transition(job.id, JobState.PLANNED, expected={JobState.RUNNING},
                                         note="claimed but never started; planned again"):
                    self._emit(job.id, "recovered", "was claimed but never started; planned again")


    def _find_launched(self, run: Run) -> str | None:
        """The handle of a run recorded without one: the daemon may have died just after
        starting its process. Executors that can look (``find``) are asked."""
        if run.id is None:
            return None
        try:
            executor = self.executor_for(run.executor)
        except ExecutorError:
            return None
        handle = executor.find(run.out_path or str(log_path(self.app, run.job_id, run.id)))
        return handle.handle if handle is not None else None


def _gpus_of_pid(pid: int | None) -> tuple[int, ...]:
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


def _pid_of(handle: str) -> int | None:
    head = handle.split(":", 1)[0]
    return int(head) if head.isdigit() else None


def log_path(app: App, job_id: int, run_id: int) -> Path:
    return app.settings.log_dir / f"job-{job_id}" / f"run-{run_id}.out"


__all__ = ["TERMINAL_STATES", "Daemon"]
