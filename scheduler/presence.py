"""Which sites a daemon serves now: one ``serves:SITE`` lease per site an agent runs jobs
for (``serves:*`` for an agent of every site), held through :class:`~scheduler.leader.Leadership`
and renewed with the agent's heartbeat.

Several agents may serve one site: one holds the lease, the others ask again every third of
a lease and take it over when its holder stops renewing. A clean stop releases it. So a
live ``serves:`` lease covering a site means some agent launches its jobs; ``wait`` uses
:func:`serving` to tell a user that nothing will ever start theirs. Times are real UTC, as
for every lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

from scheduler.domain.model import Job, Run
from scheduler.errors import CarbonshiftError
from scheduler.leader import Leadership, real_now
from scheduler.storage.base import JobStore

ALL_SITES = "*"
#: what the name of every ``serves:`` lease starts with
LEASE_PREFIX = "serves:"


def lease_name(site: str) -> str:
    """The lease an agent serving ``site`` (or :data:`ALL_SITES`) holds."""
    return f"{LEASE_PREFIX}{site}"


class Presence:
    """This agent's ``serves:`` leases: :meth:`hold` with every heartbeat, :meth:`release`
    at a clean stop. ``sites=None``: the agent serves every site."""

    def __init__(
        self,
        store: JobStore,
        holder: str,
        sites: Iterable[str] | None,
        *,
        ttl_s: float,
        now: Callable[[], datetime] = real_now,
    ) -> None:
        names = sorted(sites) if sites is not None else [ALL_SITES]
        self._leases = [Leadership(store, holder, ttl_s=ttl_s, name=lease_name(s), now=now) for s in names]

    def hold(self) -> None:
        for lease in self._leases:
            lease.hold()

    def release(self) -> None:
        for lease in self._leases:
            lease.release()


def serving(store: JobStore, sites: Iterable[str], now: datetime | None = None) -> bool | None:
    """Whether a live agent serves any of ``sites``; ``None`` when the database cannot say."""
    at = now or real_now()
    try:
        for site in [*sites, ALL_SITES]:
            lease = store.get_lease(lease_name(site))
            if lease is not None and lease.until > at:
                return True
    except CarbonshiftError:
        return None
    return False




def awaited_sites(job: Job, run: Run | None) -> list[str]:
    """The sites whose agent moves ``job`` on: its run's, its planned one's, else every site
    it may run on."""
    if run is not None and run.finished_at is None:
        return [run.site]
    if job.planned_site:
        return [job.planned_site]
    return list(dict.fromkeys([job.site, *job.allowed_sites]))


class DaemonWatch:
    """For ``wait``: a line to show when no agent serves a waiting job's sites, once
    ``first_after_s`` real seconds have passed (a daemon started with the wait has had time
    to say it is there), checked every ``every_s``; said again only after an agent came
    and went."""

    def __init__(self, store: JobStore, *, first_after_s: float = 6.0, every_s: float = 3.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.every_s = every_s
        self._mono = monotonic
        self._next = monotonic() + first_after_s
        self._said = False

    def check(self, job: Job, run: Run | None) -> str | None:
        if self._mono() < self._next:
            return None
        self._next = self._mono() + self.every_s
        sites = awaited_sites(job, run)
        served = serving(self.store, sites)
        if served is None:
            return None
        if served:
            self._said = False
            return None
        if self._said:
            return None
        self._said = True
        which = f"site {sites[0]}" if len(sites) == 1 else f"sites {', '.join(sites)}"
        return f"carbonshift: no daemon is serving {which}: start one with `carbonshift run`; still waiting"


__all__ = ["ALL_SITES", "LEASE_PREFIX", "DaemonWatch", "Presence", "awaited_sites", "lease_name", "serving"]
