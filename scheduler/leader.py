"""One planner at a time among the agents that share a queue: :class:`Leadership`.

Every agent started without ``--no-planner`` competes for the ``planner`` lease, a row of
the ``leases`` table (the same code on PostgreSQL and SQLite, see
:meth:`~scheduler.storage.base.JobStore.acquire_lease`). The holder re-plans; the others
only launch and follow their sites' jobs. The holder renews the lease every third of its
length; when it dies (SIGKILL, host lost, database unreachable) the lease runs out and the
next agent to ask takes it, with a term one higher. A clean stop releases it, so the next
agent takes over at once.

Why a lease row rather than a PostgreSQL advisory lock: it behaves the same on SQLite
(several agents on one host) as on PostgreSQL, it can be read (``get_lease``: who plans,
since when), it needs no connection held open for the agent's life (a pooled connection
that PostgreSQL restarts or a proxy recycles would silently drop an advisory lock), and its
expiry is explicit and testable.

What one-planner-at-a-time protects, and what it does not need to: two planners at once
would only waste work and make plans flap; they could never start a job twice, because a
job starts only through an atomic claim (``planned -> running``) and a re-plan writes only
onto jobs still waiting. So a holder that was paused past its lease (a stopped process, a
slow disk) and plans once more before noticing is harmless. To keep that window short,
:meth:`Leadership.hold` counts the lease as held only until a margin before its end, by the
agent's own clock.

Times are real UTC instants (``datetime.now(UTC)`` by default), not the scheduler's clock,
which may run accelerated in replays and tests: a lease is a statement about processes
being alive. Hosts sharing a queue must keep their clocks in step (NTP); an offset of a
few seconds against the 60 s default lease is harmless.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scheduler.errors import CarbonshiftError
from scheduler.storage.base import JobStore, Lease

log = logging.getLogger("carbonshift.leader")

PLANNER_LEASE = "planner"


def real_now() -> datetime:
    """The wall clock, UTC: what leases are measured against."""
    return datetime.now(UTC)


def holder_name(agent: str) -> str:
    """Who holds a lease: the agent's name, its host and its pid (unique per process)."""
    host = socket.gethostname()
    where = agent if agent == host else f"{agent}@{host}"
    return f"{where} pid {os.getpid()}"


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """Every time that follows from a run's lease length, in one place.

    A local run is fenced by lease time, not by its agent's pid: a stopped (SIGSTOP), hung
    or partitioned agent has a live pid but renews nothing. The agent mirrors each renewed
    expiry ``E`` into a file its run's supervisor watches; the supervisor starts stopping the
    job at ``E - fence_before_s`` (SIGTERM, SIGKILL ``kill_grace_s`` later), and no other agent
    reclaims the run before ``E + reclaim_after_s``. A healthy agent renews every
    ``heartbeat_s``, so ``E`` stays at least ``lease_s - heartbeat_s`` ahead and the fence
    leaves ``lease_s - heartbeat_s - fence_before_s`` for a late heartbeat. The job is gone
    by ``E - fence_before_s + kill_grace_s + WATCH_PERIOD_S``, before any reclaim, even for a
    supervisor that reacts up to ``fence_before_s`` late (a loaded host). Times are real
    seconds; a supervisor compares with its own host's clock, the same one its agent used.
    """

    lease_s: float

    #: how often a supervisor looks at its agent and its lease
    WATCH_PERIOD_S = 0.5

    @property
    def heartbeat_s(self) -> float:
        """How often an agent renews the leases of its runs."""
        return max(0.05, min(self.lease_s / 3, 5.0))

    @property
    def orphan_grace_s(self) -> float:
        """How long a supervisor waits for a successor once its agent's pid is gone."""
        return self.lease_s / 3

    @property
    def fence_before_s(self) -> float:
        """A supervisor stops its job when the lease has less than this left (the planner
        lease's margin, :attr:`Leadership.margin`, is the same share)."""
        return self.lease_s / 6

    @property
    def kill_grace_s(self) -> float:
        """Between the fence's SIGTERM and its SIGKILL."""
        return min(5.0, self.lease_s / 6)

    @property
    def reclaim_after_s(self) -> float:
        """Another agent reclaims a run only this long after its lease ended."""
        return self.kill_grace_s + 2 * self.WATCH_PERIOD_S


class Leadership:
    """This agent's claim on a named lease (by default the planner's).

    Call :meth:`hold` every tick: it takes the lease when it is free or has run out, renews
    it when held (every ``ttl_s / 3``), and answers whether this agent leads now.
    ``on_change(leading, lease)`` is told each change (taken over, lost).
    """

    def __init__(
        self,
        store: JobStore,
        holder: str,
        *,
        ttl_s: float,
        name: str = PLANNER_LEASE,
        now: Callable[[], datetime] = real_now,
        on_change: Callable[[bool, Lease | None], None] | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        self.store = store
        self.holder = holder
        self.name = name
        self.ttl = timedelta(seconds=ttl_s)
        self.now = now
        self.on_change = on_change
        self.lease: Lease | None = None
        self._last_try: datetime | None = None
        self._was_leading = False

    @property
    def retry_every(self) -> timedelta:
        """How often the lease is renewed, or asked for while another holds it."""
        return self.ttl / 3

    @property
    def margin(self) -> timedelta:
        """Stop counting the lease as held this long before it ends (clock offsets)."""
        return self.ttl / 6

    def leading(self, now: datetime | None = None) -> bool:
        """Whether this agent holds the lease now, with the safety margin, by its own clock."""
        now = now or self.now()
        lease = self.lease
        return lease is not None and lease.holder == self.holder and now < lease.until - self.margin

    def hold(self) -> bool:
        """Take or renew the lease when due; return whether this agent leads now.

        A database error is logged and counts as not leading once the held lease is near
        its end; it never raises.
        """
        now = self.now()
        if self._last_try is None or now - self._last_try >= self.retry_every:
            self._last_try = now
            try:
                self.lease = self.store.acquire_lease(self.name, self.holder, now, now + self.ttl)
            except CarbonshiftError as exc:
                log.warning("could not renew the %s lease: %s", self.name, exc)
        leading = self.leading(now)
        if leading != self._was_leading:
            self._was_leading = leading
            if self.on_change is not None:
                current = self.lease
                if not leading:
                    try:
                        current = self.store.get_lease(self.name)
                    except CarbonshiftError:
                        current = None
                self.on_change(leading, current)
        return leading

    def release(self) -> None:
        """Give the lease up (a clean stop), so another agent need not wait for it to end."""
        if self.lease is None:
            return
        try:
            self.store.release_lease(self.name, self.holder)
        except CarbonshiftError as exc:
            log.warning("could not release the %s lease: %s", self.name, exc)
        self.lease = None
        self._was_leading = False


__all__ = ["PLANNER_LEASE", "Leadership", "LeaseTiming", "holder_name", "real_now"]
