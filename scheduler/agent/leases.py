"""Proof of life: the leases of the runs an agent follows.

:meth:`Leases.heartbeat` renews them (in its own thread, every third of a lease) and
mirrors each renewed end into the run's supervisor; :meth:`Leases.renew` acts on what the
heartbeat found: runs another agent reclaimed or took over are let go (a local copy is
stopped), and when the database refused renewals for most of a lease the local runs are
fenced (stopped) before any other agent may reclaim them. :meth:`Leases.park` gives the
leases no end when the agent stops cleanly, for its successor."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.agent.metering import Metering
from scheduler.agent.runs import Active, Events, cancel_in_background
from scheduler.contracts import JobStore
from scheduler.domain.model import JobState
from scheduler.errors import CarbonshiftError
from scheduler.leader import Leadership, LeaseTiming
from scheduler.presence import Presence

log = logging.getLogger("carbonshift.daemon")


@dataclass(frozen=True)
class LeaseTerms:
    """Who this agent is and how long its leases last, in real time (whatever the
    scheduler's clock): what every part that writes a lease needs."""

    #: this agent's name, recorded on its runs
    host: str
    lease_s: float
    #: the lease clock (real UTC)
    now: Callable[[], datetime]
    timing: LeaseTiming = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timing", LeaseTiming(self.lease_s))

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_s)

    def epoch(self, at: datetime | None) -> float | None:
        """A lease's end (by :attr:`now`) as real Unix seconds, for supervisors."""
        return None if at is None else time.time() + (at - self.now()).total_seconds()


class Leases:
    def __init__(self, store: JobStore, terms: LeaseTerms, active: Active, events: Events,
                 metering: Metering, *, leadership: Leadership | None, presence: Presence) -> None:
        self.store, self.terms, self.active, self.events = store, terms, active, events
        self.metering, self.leadership, self.presence = metering, leadership, presence
        now = terms.now()
        #: since when the database answered without a break (nothing is reclaimed before a lease)
        self.connected_since: datetime = now
        self.renewed_at: datetime = now
        self._refused: set[int] = set()
        self._fence_due = False
        self._thread: threading.Thread | None = None

    def heartbeat(self) -> None:
        """Renew the lease of every run followed, and the planner lease when held.

        Runs in its own thread (every third of a lease), so that a slow tick (a busy
        machine, a launch storm) never starves the proof of life. Runs whose renewal was
        refused (reclaimed or taken over meanwhile) are noted for :meth:`renew` to let go.
        """
        now, lease = self.terms.now(), self.terms.lease
        ids = list(self.active)
        if ids:
            try:
                renewed = set(self.store.renew_leases(ids, now + lease, host=self.terms.host))
            except CarbonshiftError as exc:
                log.warning("lease renewal failed: %s", exc)
                self.connected_since = now  # the others may not be able to renew either
                # when the supervisors stop their jobs too (LeaseTiming.fence_before_s)
                if now - self.renewed_at >= lease - timedelta(seconds=self.terms.timing.fence_before_s):
                    self._fence_due = True
            else:
                self.renewed_at = now
                self._fence_due = False
                self._refused.update(set(ids) - renewed)
                self.mirror(renewed, self.terms.epoch(now + lease))
        else:
            self.renewed_at = now
            self._fence_due = False
        if self.leadership is not None:
            self.leadership.hold()
        self.presence.hold()

    def mirror(self, run_ids: Iterable[int], until_epoch_s: float | None) -> None:
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

    def park(self) -> None:
        """Give the leases of every run followed no end: other agents leave them to this
        agent's successor instead of reclaiming them."""
        try:
            parked = self.store.renew_leases(list(self.active), None, host=self.terms.host)
        except CarbonshiftError as exc:
            log.warning("could not park the leases of %d runs: %s", len(self.active), exc)
        else:
            self.mirror(parked, None)  # else their supervisors fence them in time

    # -- the heartbeat thread -----------------------------------------------------------
    def start(self, ended: threading.Event, stopping: threading.Event) -> None:
        """Heartbeats in a thread until ``ended`` or ``stopping`` is set."""
        self._thread = threading.Thread(target=self._loop, args=(ended, stopping),
                                        name="heartbeat", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self, ended: threading.Event, stopping: threading.Event) -> None:
        period = self.terms.timing.heartbeat_s
        while not ended.wait(period) and not stopping.is_set():
            try:
                self.heartbeat()
            except Exception as exc:  # never let the proof of life die silently
                log.warning("heartbeat: %s", exc)

    # -- acting on it ----------------------------------------------------------------------
    def renew(self) -> None:
        """Act on the heartbeat: let go of runs whose lease another agent took; stop local
        runs when leases could not be renewed for most of a lease.

        A run missing from the renewal was reclaimed or taken over by another agent after
        its lease ran out: a local one is stopped (it is requeued elsewhere), an engine-side
        one is left to the agent that took it over. Without a heartbeat thread (a daemon
        driven tick by tick) the heartbeat runs here.
        """
        if self._thread is None:
            self.heartbeat()
        if self._fence_due:
            self.fence(self.terms.now())
        host = self.terms.host
        refused, self._refused = self._refused, set()
        for run_id in refused:
            act = self.active.get(run_id)
            if act is None:
                continue  # finished meanwhile
            stored = self.store.get_run(run_id)
            if stored.host == host and not (
                stored.state is JobState.LOST and stored.reason.startswith(f"agent {host} ")
            ):
                continue  # closed by this agent's own finish, cut short: finish completes it
            self.active.pop(run_id, None)
            self.metering.let_go(act)
            if act.executor.host_bound:
                self.events.emit(act.job.id, "lease lost", f"run {run_id} was reclaimed by another agent after its "
                                 "lease ran out; stopping this copy so the job never runs twice")
                cancel_in_background(act)
            else:
                self.events.emit(act.job.id, "lease lost", f"run {run_id} was taken over by another agent")

    def fence(self, now: datetime) -> None:
        """Stop local runs whose leases this agent could not renew (no database)."""
        for act in list(self.active.values()):
            if not act.executor.host_bound or act.cancel_sent:
                continue
            act.cancel_sent = True
            self.events.say(f"{'fenced':<10} job {act.job.id}: could not renew the lease of run "
                            f"{act.run.id} for {(now - self.renewed_at).total_seconds():.0f} s; "
                            "stopping it, since another agent may start the job again")
            cancel_in_background(act)
