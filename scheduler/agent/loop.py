"""The daemon: plans, waits, launches, measures, accounts; the loop composing the parts.

The database is the source of truth; this process's timers only ask it to look
(:mod:`~scheduler.agent.timers`), and a job starts only through an atomic claim
(:mod:`~scheduler.agent.launcher`), so two agents never start one job. Each agent has a
name (``agent_name``, default the host name) recorded on its runs; a restarted agent of the
same name adopts them (:mod:`~scheduler.agent.recovery`). Only the holder of the
``planner`` lease re-plans (:mod:`scheduler.leader`); agents started with ``planner=False``
never plan. Every run's lease is the proof of life of its agent, renewed by a heartbeat
thread and fenced by time (:mod:`~scheduler.agent.leases`, margins in
:class:`~scheduler.leader.LeaseTiming`): a run whose lease ran out is reclaimed by another
agent, as ``lost`` and requeued while its deadline allows (:mod:`~scheduler.agent.outcome`;
delivery is at least once for killed local runs, never twice at once), or, run by an
engine (Slurm), taken over and followed on. Interruptible jobs are paused and resumed at
their planned intervals (:mod:`~scheduler.agent.pauses`), measured only while they run
(:mod:`~scheduler.agent.metering`). Stopping the daemon (Ctrl-C) leaves running jobs
running and recorded, their leases parked (no expiry) for the next agent of that name.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from scheduler.agent.leases import LeaseTerms
from scheduler.agent.parts import build_parts
from scheduler.agent.runs import Active, ActiveRun
from scheduler.agent.trials import Trials
from scheduler.contracts import Executor, ExitStatus
from scheduler.domain.model import Job, JobState, Site
from scheduler.errors import CarbonshiftError, DatabaseUnreachable, StorageError
from scheduler.leader import Leadership, holder_name, real_now
from scheduler.measuring import probe_config
from scheduler.presence import Presence
from scheduler.storage.base import Lease
from scheduler.storage.watch import FileLost
from scheduler.text.quantities import fmt_less, fmt_mass_g
from scheduler.text.times import format_duration, iso

if TYPE_CHECKING:
    from scheduler.app import App

log = logging.getLogger("carbonshift.daemon")


class Daemon:
    """One agent: launches the jobs planned on its sites and follows them to the end.

    It composes the parts (each receives only its collaborators) and runs the loop: the
    timers, the heartbeat thread, and one :meth:`tick` after another."""

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
        self.store = store = app.store
        self.clock = clock = app.clock
        settings = app.settings
        self.sites = set(sites) if sites else None
        #: this agent's name, recorded on its runs (``host`` for history's sake)
        self.host = agent or settings.agent_name or socket.gethostname()
        #: leases are real time, whatever the scheduler's clock
        self.terms = terms = LeaseTerms(self.host, settings.lease_s, lease_now)
        self.lease, self.timing = terms.lease, terms.timing
        self.sample_interval_s = sample_interval_s or settings.sampling_interval_s
        self.tick_s = tick_s
        self.exit_when_idle = exit_when_idle
        self.on_event = on_event or (lambda line: log.info("%s", line))
        self.planner = planner
        self.leadership: Leadership | None = None
        if planner:
            self.leadership = Leadership(store, holder_name(self.host), ttl_s=settings.lease_s,
                                         now=lease_now, on_change=self._leadership_changed)
        #: the ``serves:`` leases saying which sites have an agent (``wait`` reads them)
        self.presence = Presence(store, holder_name(self.host), self.sites,
                                 ttl_s=settings.lease_s, now=lease_now)
        self._sites_cache: tuple[float, dict[str, Site]] | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._last_replan: datetime | None = None
        #: set when the database file was deleted or replaced under this daemon
        self._file_lost: FileLost | None = None
        #: what ``carbonshift run`` exits with (1: it stopped for a lost database file)
        self.exit_code = 0

        self.parts = parts = build_parts(
            store, clock, settings, self.terms, sites=self.sites, executors=executors,
            sample_interval_s=self.sample_interval_s, probe=probe_config(settings),
            on_event=self.on_event, site_book=self._sites, intensity=lambda: app.intensity,
            trials=Trials(app), leadership=self.leadership, presence=self.presence,
            stopping=self._stop, tick_s=tick_s)
        self.active: Active = parts.active
        self.events, self.engines, self.metering = parts.events, parts.engines, parts.metering
        self.outcome, self.leases, self.pauses = parts.outcome, parts.leases, parts.pauses
        self.launcher, self.recovery, self.timers = parts.launcher, parts.recovery, parts.timers
        self.poller = parts.poller
        self.executors: dict[str, Executor] = parts.engines.by_name

    # -- what others call ---------------------------------------------------------------
    def executor_for(self, name: str) -> Executor:
        return self.engines.get(name)

    def stop(self) -> None:
        self._stop.set()

    def recover(self) -> None:
        """Adopt live runs left by an earlier daemon on this host; close dead ones."""
        with self._lock:
            self.recovery.recover()

    def heartbeat(self) -> None:
        self.leases.heartbeat()

    def launch_due(self) -> None:
        self.launcher.launch_due()

    def launch(self, job: Job) -> None:
        self.launcher.launch(job)

    def finish(self, act: ActiveRun, status: ExitStatus) -> None:
        self.outcome.finish(act, status)

    def reclaim_expired(self) -> None:
        self.recovery.reclaim_expired()

    def _emit(self, job_id: int | None, kind: str, message: str) -> None:
        self.events.emit(job_id, kind, message)

    # -- life cycle ---------------------------------------------------------------------
    def run_forever(self) -> None:
        """Recover, plan, then tick until stopped (or idle, with ``exit_when_idle``)."""
        if not self._start():
            return
        self.presence.hold()
        ended = threading.Event()  # set when this run ends, idle or stopped
        self.leases.start(ended, self._stop)
        if self.leading():
            self.replan()
        self.timers.start()
        try:
            self.sync_timers()
            while not self._stop.is_set():
                if not self._round():
                    break
        finally:
            self.timers.shutdown()
            self.detach()
            ended.set()  # an idle exit sets no stop: without this the join waits 10 s
            self.leases.join(10)
            if self.leadership is not None:
                self.leadership.release()
            self.presence.release()

    def _round(self) -> bool:
        """One turn of the loop, waiting after it; ``False`` when the loop is to end."""
        lost = self.store.file_lost()
        if lost is not None:  # see scheduler/storage/watch.py
            self.timers.pause()
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
                return False
            self._stop.wait(self.tick_s)
            return True
        try:
            self.tick()
        except StorageError as exc:
            self._emit(None, "error", f"database trouble, retrying: {exc}")
            self.leases.connected_since = self.terms.now()  # others may not renew either
            self._stop.wait(min(30.0, self.tick_s * 5))
            return True
        if self.exit_when_idle and self.idle():
            return False
        self._stop.wait(self.tick_s)
        return True

    def _start(self) -> bool:
        """Recover this agent's runs, retrying with backoff while the database is unreachable.

        Returns ``False`` when stopped before the database answered. Each retry is logged;
        the wait doubles from 1 s up to 60 s, so a service manager sees no crash loop.
        """
        delay = 1.0
        while True:
            try:
                self.recover()
                self.leases.connected_since = self.terms.now()
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
            self.parts.detach()

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

    # -- following ----------------------------------------------------------------------
    def follow_runs(self) -> None:
        self.parts.follow()

    def follow_intervals(self) -> None:
        self.pauses.follow()

    # -- timers -------------------------------------------------------------------------
    def sync_timers(self) -> None:
        self.timers.sync(self._fire, self._boundaries, self._fire_boundary)

    def _boundaries(self) -> dict[int, datetime]:
        with self._lock:
            return self.pauses.next_boundaries()

    def _fire(self, job_id: int) -> None:
        """A job's timer fired: claim the job, then launch it."""
        with self._lock:
            self.timers.fired_job(job_id)
            self.launcher.fire(job_id)

    def _fire_boundary(self, run_id: int) -> None:
        """A pause or resumption timer fired."""
        with self._lock:
            self.timers.fired_run(run_id)
            self.pauses.fire(run_id)

    # -- leadership and planning ----------------------------------------------------------
    def leading(self) -> bool:
        """Whether this agent plans now: it holds the planner lease (taken or renewed here)."""
        return self.leadership is not None and self.leadership.hold()

    def _leadership_changed(self, leading: bool, lease: Lease | None) -> None:
        if leading and lease is not None:
            self._last_replan = None  # plan at once: the previous planner may be long gone
            self._emit(None, "leader", f"this agent ({self.host}) plans the queue now (term {lease.term})")
        elif lease is not None and lease.until > self.terms.now():
            self._emit(None, "leader", f"planning is left to {lease.holder} (term {lease.term})")
        else:
            self._emit(None, "leader", "this agent no longer holds the planner lease")

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
                saving = (f", expected {fmt_mass_g(entry.expected_g)} vs {fmt_mass_g(entry.run_now_g)} run now "
                          f"({fmt_less(100 * (entry.run_now_g - entry.expected_g) / entry.run_now_g, 0)})")
            wait_s = max(0.0, (entry.start - now).total_seconds())
            self._emit(job.id, "planned", f"start {iso(entry.start)} (in {format_duration(wait_s)}) on "
                       f"{entry.site} ({entry.reason}{saving})")

    def plan_pending(self) -> None:
        """Plan jobs that are pending (requeued) without waiting for the next re-plan
        (planner lease holder only)."""
        if self.leading() and self.store.list_jobs([JobState.PENDING], limit=1):
            self.replan()
