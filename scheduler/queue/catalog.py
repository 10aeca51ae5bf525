"""What the queue's services read besides jobs: sites, policies, forecasts, planner options.

Sites and policies are cached for a second (and dropped at once when this process writes
one): a bulk of submits should not read them from the database each time. Forecasts are
memoised in-process for a minute of clock time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from scheduler.domain.model import Job, Policy, Site
from scheduler.domain.policies import BUILTIN_POLICIES
from scheduler.errors import NotFound
from scheduler.planning import PlanOptions, horizon_needed_s

if TYPE_CHECKING:
    from intensity.model import Forecast
    from scheduler.queue.ports import QueuePorts
    from scheduler.storage.ports import SubmitReads

DEFAULT_SITE = "local"
CONFIG_CACHE_S = 1.0
T = TypeVar("T")


def zone_of(site: str, sites: Mapping[str, Site], default: str) -> str:
    """The zone of ``site``; ``default`` (the job's zone) for a site not stored."""
    known = sites.get(site)
    return known.zone if known is not None else default


class QueueCatalog:
    """Sites, policies, forecasts and planner options, read through the ports."""

    def __init__(self, ports: QueuePorts) -> None:
        self.ports = ports
        #: zone -> (asked at, horizon, forecast, source, fallback)
        self.forecast_memo: dict[str, tuple[datetime, int, Forecast, str, bool]] = {}
        self._cache: dict[str, tuple[float, int, object]] = {}

    def _reads(self) -> SubmitReads:
        """Where sites and policies are read: the submit path's store (see
        :attr:`~scheduler.queue.ports.QueuePorts.submit_store`)."""
        given = self.ports.submit_store
        return given() if given is not None else self.ports.store()

    def _cached(self, key: str, load: Callable[[], T]) -> T:
        now = time.monotonic()
        version = getattr(self._reads(), "config_version", 0)
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CONFIG_CACHE_S and hit[1] == version:
            return hit[2]  # type: ignore[return-value]
        value = load()
        self._cache[key] = (now, version, value)
        return value

    # -- policies -----------------------------------------------------------------------
    def _stored_policy(self, name: str) -> Policy | None:
        try:
            return self._reads().get_policy(name)
        except NotFound:
            return None

    def get_policy(self, name: str) -> Policy:
        # a database not made yet holds none (and asking makes none: a refused submit on a
        # fresh data folder leaves nothing behind)
        exists = self.ports.database_exists()
        stored = self._cached("policy:" + name, lambda: self._stored_policy(name)) if exists else None
        if stored is not None:
            return stored
        if name in BUILTIN_POLICIES:
            return BUILTIN_POLICIES[name]
        known = sorted({p.name for p in (self._reads().list_policies() if exists else [])}
                       | set(BUILTIN_POLICIES))
        raise NotFound(
            f"unknown policy {name!r}: known policies are {', '.join(known)} "
            "(create one with `carbonshift policy set NAME ...`)"
        )

    def list_policies(self) -> list[tuple[Policy, bool]]:
        """Stored policies, plus built-ins not overridden; ``(policy, builtin)``."""
        stored = {p.name: p for p in self._reads().list_policies()}
        out = [(p, False) for p in stored.values()]
        out += [(p, True) for n, p in BUILTIN_POLICIES.items() if n not in stored]
        return sorted(out, key=lambda t: t[0].name)

    # -- sites --------------------------------------------------------------------------
    def sites(self) -> dict[str, Site]:
        """Stored sites plus the default ``local`` site (home zone from config).

        The default site manages no capacity (0 GPUs, 0 CPUs: the planner does not limit
        how many jobs overlap there) until ``carbonshift site add local --gpus N --cpus N``
        stores real figures.
        """
        # a database not made yet holds none (and asking makes none)
        sites = dict(self._cached("sites", lambda: {s.name: s for s in self._reads().list_sites()})
                     if self.ports.database_exists() else {})
        if DEFAULT_SITE not in sites:
            sites[DEFAULT_SITE] = Site(
                name=DEFAULT_SITE, zone=self.ports.settings().default_zone, executor="local",
                gpus=0, cpus=0, pue=1.0,
            )
        return sites

    # -- forecasts ----------------------------------------------------------------------
    def forecast(self, zone: str, now: datetime, horizon_s: int) -> tuple[Forecast, str, bool]:
        """Forecast through the chain, memoised in-process for a minute of clock time."""
        memo = self.forecast_memo.get(zone)
        if memo is not None:
            at, horizon, fc, source, fb = memo
            if at <= now < at + timedelta(seconds=60) and (
                fc.end is not None and fc.end >= now + timedelta(seconds=min(horizon, horizon_s))
            ) and horizon >= horizon_s:
                return fc, source, fb
        answer = self.ports.intensity().forecast(zone, now, max(horizon_s, 3600))
        result = (answer.forecast, answer.describe(), answer.fallback)
        self.forecast_memo[zone] = (now, max(horizon_s, 3600), *result)
        return result

    def forecasts_for(
        self, jobs: Sequence[Job], sites: Mapping[str, Site], now: datetime, *, fresh: bool = False,
    ) -> tuple[dict[str, Forecast], dict[str, tuple[str, bool]]]:
        """Forecasts (and their source, fallback) of every zone ``jobs`` may run in: each
        job's home and every allowed site's zone, to the horizon they need; ``fresh``
        skips the in-process memo (a re-plan wants the latest forecasts)."""
        horizon = horizon_needed_s(jobs, now)
        zones = dict.fromkeys(
            zone_of(name, sites, j.zone) for j in jobs for name in (j.site, *j.allowed_sites)
            if name == j.site or name in sites
        )
        forecasts: dict[str, Forecast] = {}
        sources: dict[str, tuple[str, bool]] = {}
        for z in zones:
            if fresh:
                self.forecast_memo.pop(z, None)
            fc, source, fb = self.forecast(z, now, horizon)
            forecasts[z] = fc
            sources[z] = (source, fb)
        return forecasts, sources

    def plan_options(self, **kw: object) -> PlanOptions:
        """The planner's options: the config's split of interruptible jobs, plus ``kw``."""
        s = self.ports.settings()
        return PlanOptions(min_chunk_s=int(s.min_chunk_s), max_pauses=s.max_pauses, **kw)  # type: ignore[arg-type]


__all__ = ["CONFIG_CACHE_S", "DEFAULT_SITE", "QueueCatalog", "zone_of"]
