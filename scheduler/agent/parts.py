"""The agent's parts wired together from their collaborators (no App): what the
:class:`~scheduler.agent.loop.Daemon` runs, and what tests drive directly with a
:class:`~scheduler.executors.fake.FakeExecutor` and a store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from probes.detect import ProbeConfig
from scheduler.agent.engines import Engines
from scheduler.agent.launcher import Launcher
from scheduler.agent.leases import Leases, LeaseTerms
from scheduler.agent.metering import Metering
from scheduler.agent.outcome import Outcome
from scheduler.agent.pauses import Pauses
from scheduler.agent.recovery import Recovery
from scheduler.agent.runs import Active, Events, Poller, check_cancel
from scheduler.agent.timers import Timers
from scheduler.agent.trials import Trials
from scheduler.clock import Clock
from scheduler.config import Settings
from scheduler.contracts import AccountingPoints, Executor, JobStore
from scheduler.domain.model import Site
from scheduler.leader import Leadership
from scheduler.presence import Presence
from scheduler.text.times import iso

log = logging.getLogger("carbonshift.daemon")


@dataclass
class Parts:
    store: JobStore
    events: Events
    engines: Engines
    metering: Metering
    outcome: Outcome
    leases: Leases
    pauses: Pauses
    launcher: Launcher
    recovery: Recovery
    timers: Timers
    poller: Poller
    #: the runs followed, shared by every part
    active: Active = field(default_factory=dict)

    def follow(self) -> None:
        """Renew, then close the runs that ended; a run asked to checkpoint that exited
        waits for its next interval instead."""
        self.leases.renew()
        for act in [a for a in self.active.values() if a.unsaved]:
            self.store.update_run(act.run)
            act.unsaved = False
        statuses = self.poller.poll(self.active)
        for run_id, act in list(self.active.items()):
            if not act.process:  # a checkpointed job waiting for its next interval
                if self.pauses.cancelled_while_paused(act):
                    self.active.pop(run_id, None)
                continue
            status = statuses.get(run_id)  # None: alive, or its executor's poll is not due
            if status is None:
                check_cancel(self.store, self.events, act)
                self.pauses.check_grace(act)
                continue
            if act.asked and self.pauses.checkpointed(act, status):
                continue  # paused: waits for its next interval without a process
            self.outcome.finish(act, status)
            self.active.pop(run_id, None)

    def detach(self) -> None:
        """Let go of every run, leaving it running (or paused) for this agent's successor:
        leases parked, samplers stopped, executors told."""
        self.leases.park()
        for act in list(self.active.values()):
            try:
                act.executor.detach(act.handle)
            except Exception as exc:
                log.warning("detaching run %s: %s", act.run.id, exc)
            self.metering.let_go(act)
            if act.paused:
                by_itself = (f" (its supervisor continues it by itself if no daemon has soon after "
                             f"{iso(act.resume_at)})" if act.resume_at is not None and act.process else "")
                self.events.emit(act.job.id, "detached", "daemon stopped; the job stays paused and the next "
                                 "daemon resumes it" + by_itself)
            else:
                self.events.emit(act.job.id, "detached", "daemon stopped; the job keeps running and will be "
                                 "adopted by the next daemon")
        self.active.clear()


def build_parts(store: JobStore, clock: Clock, settings: Settings, terms: LeaseTerms, *,
                sites: Iterable[str] | None, executors: dict[str, Executor] | None,
                sample_interval_s: float, probe: ProbeConfig, on_event: Callable[[str], None],
                site_book: Callable[[], dict[str, Site]], intensity: Callable[[], AccountingPoints],
                trials: Trials | None, leadership: Leadership | None, presence: Presence,
                stopping: threading.Event, tick_s: float) -> Parts:
    """Every part of one agent, each handed only what it needs."""
    active: Active = {}
    sites = set(sites) if sites is not None else None
    events = Events(store, clock, on_event)
    engines = Engines(settings, terms.timing, sample_interval_s=sample_interval_s, probe=probe, given=executors)
    metering = Metering(store, clock, events, interval_s=sample_interval_s, probe=probe)
    outcome = Outcome(store, clock, metering, events, sites=site_book, intensity=intensity, trials=trials)
    leases = Leases(store, terms, active, events, metering, leadership=leadership, presence=presence)
    pauses = Pauses(store, clock, settings, active, metering, outcome, events, lease=terms.lease)
    launcher = Launcher(store, clock, terms, active, engines, metering, events, sites=sites,
                        site_book=site_book, log_dir=settings.log_dir, trials=trials, stopping=stopping)
    recovery = Recovery(store, clock, terms, active, engines, metering, outcome, pauses, leases, events,
                        sites=sites, log_dir=settings.log_dir, tick_s=tick_s)
    return Parts(store, events, engines, metering, outcome, leases, pauses, launcher, recovery,
                 Timers(store, clock, sites), Poller(events), active)
