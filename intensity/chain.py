"""The fallback chain: carbon data never blocks work.

``provider forecast -> cached forecast -> local forecast -> static annual average -> flat``.
Every point carries the link that produced it (:class:`~intensity.model.Source`), and each
answer says which link it came from and why earlier links were skipped, so the scheduler
can record on the job that it was planned on fallback data.

Provider back-off (a circuit breaker): after a provider fails for a zone, it is not asked
again for that zone for ``retry_failed_after_s`` (of the clock passed in); the chain falls
back at once and the answer's notes say that the provider was skipped and since when it
has been failing. The failure is recorded in a :class:`FailureLog` (the scheduler's store,
beside the cache's fetch times), so every process sharing the database skips it, and a
daemon re-planning does not wait on a dead provider's timeouts and retries again.

Horizon extension: when a provider's (or the cache's) forecast ends before
``now + horizon`` (the GB API stops at 48 h, Energy-Charts at the end of tomorrow), the
rest is filled with the local forecaster's points (``source=local``) and the answer says
so in its notes; the answer's ``link`` stays the link that produced the head.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from intensity.base import IntensityProvider
from intensity.errors import AuthError, IntensityError, ProviderUnavailable, UnknownZone
from intensity.model import Forecast, IntensityPoint, Kind, Source, forecast_of
from intensity.providers.static import StaticProvider, flat_points

log = logging.getLogger("carbonshift.intensity")

#: ``local(zone, history, now, horizon_s) -> forecast points`` (see intensity.forecast).
LocalForecaster = Callable[[str, Sequence[IntensityPoint], datetime, int], list[IntensityPoint]]


class FailureLog(Protocol):
    """Where provider failures are remembered between processes (the store satisfies this)."""

    def note_provider_failure(self, zone: str, provider: str, at: datetime) -> None: ...

    def provider_failed_at(self, zone: str, provider: str) -> datetime | None: ...


class PointCache(Protocol):
    """Where points are kept between runs (the scheduler's store satisfies this)."""

    def add_points(self, points: Sequence[IntensityPoint]) -> int: ...

    def get_points(
        self, zone: str, start: datetime, end: datetime, *, kind: Kind | None = None,
        provider: str | None = None,
    ) -> list[IntensityPoint]: ...

    def last_fetch(self, zone: str, provider: str, kind: Kind) -> datetime | None: ...


@dataclass(frozen=True)
class ForecastAnswer:
    """A forecast and how it was obtained."""

    forecast: Forecast
    link: Source
    provider: str
    notes: tuple[str, ...] = field(default=())

    @property
    def fallback(self) -> bool:
        return self.link not in (Source.PROVIDER, Source.CACHE) or any(
            "stale" in n for n in self.notes
        )

    def describe(self) -> str:
        text = f"{self.provider}:{self.link}"
        return text + (" (" + "; ".join(self.notes) + ")" if self.notes else "")


class IntensityService:
    """Forecasts and actuals for zones, through providers, the cache and the fallbacks."""

    def __init__(
        self,
        providers: Sequence[IntensityProvider],
        *,
        cache: PointCache | None = None,
        static: StaticProvider | None = None,
        local: LocalForecaster | None = None,
        cache_s: float = 1800.0,
        horizon_s: int = 48 * 3600,
        history_s: int = 190 * 86400,  # the local forecaster fits on up to 180 days
        retry_failed_after_s: float = 0.0,
        failures: FailureLog | None = None,
    ) -> None:
        self.providers = list(providers)
        self.cache = cache
        self.static = static if static is not None else StaticProvider()
        self.local = local
        self.cache_s = cache_s
        self.horizon_s = horizon_s
        self.history_s = history_s
        #: how long a provider that failed for a zone is skipped (0: ask it every time)
        self.retry_failed_after_s = retry_failed_after_s
        self.failures = failures
        # this process's own memory of failures: (zone, provider) -> (at, reason)
        self._failed: dict[tuple[str, str], tuple[datetime, str]] = {}

    # -- zones ------------------------------------------------------------------------
    def known_zone(self, zone: str) -> bool:
        return any(_serves(p, zone) for p in self.providers) or self.static.serves(zone)

    def check_zone(self, zone: str) -> str:
        """Return ``zone`` if any provider or the static table knows it, else UnknownZone."""
        if self.known_zone(zone):
            return zone
        import difflib

        names: set[str] = set(self.static.zones())
        for p in self.providers:
            try:
                names.update(p.zones())
            except IntensityError:
                continue
        close = difflib.get_close_matches(zone, sorted(names), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `carbonshift zones`"
        raise UnknownZone(f"unknown zone {zone!r}: {hint}")

    # -- forecasts --------------------------------------------------------------------
    def forecast(self, zone: str, now: datetime, horizon_s: int | None = None) -> ForecastAnswer:
        """The best forecast available for ``[now, now + horizon)``, never raising for lack
        of data (only :class:`UnknownZone` for a zone nobody knows)."""
        horizon = int(horizon_s or self.horizon_s)
        end = now + timedelta(seconds=horizon)
        notes: list[str] = []
        serving = [p for p in self.providers if _serves(p, zone)]
        # 1. a fresh cached vintage of a serving provider
        for p in serving:
            fresh = self._fresh_cached(zone, p.name, now, end)
            if fresh:
                fresh = self._extend(zone, fresh, now, end, notes)
                return ForecastAnswer(forecast_of(zone, fresh), Source.CACHE, p.name, tuple(notes))
        # 2. the providers, best first
        for p in serving:
            skipped = self._backing_off(zone, p.name, now)
            if skipped is not None:
                notes.append(skipped)
                continue
            try:
                pts = p.forecast(zone, now, horizon)
            except IntensityError as exc:
                notes.append(f"{p.name} failed: {exc}")
                log.warning("intensity provider %s failed for %s: %s", p.name, zone, exc)
                self._note_failure(zone, p.name, now, str(exc))
                continue
            pts = [q for q in pts if q.end > now and q.start < end]
            if not pts:
                notes.append(f"{p.name} returned nothing for the window")
                continue
            self._store(pts)
            pts = self._extend(zone, pts, now, end, notes)
            return ForecastAnswer(forecast_of(zone, pts), Source.PROVIDER, p.name, tuple(notes))
        # 3. a stale cached forecast still covering part of the window
        if self.cache is not None:
            try:
                stale = self.cache.get_points(zone, now, end, kind=Kind.FORECAST)
            except Exception as exc:
                stale = []
                notes.append(f"cache unreadable: {exc}")
            stale = [q for q in stale if q.source in (Source.PROVIDER, Source.CACHE)]
            if stale:
                pts = _latest_vintage([replace(q, source=Source.CACHE) for q in stale])
                provider = pts[-1].provider
                notes.append("stale cached forecast")
                pts = self._extend(zone, pts, now, end, notes)
                return ForecastAnswer(forecast_of(zone, pts), Source.CACHE, provider, tuple(notes))
        # 4. the local forecaster, from the zone's own history
        if self.local is not None:
            history = self._history_for_local(zone, now)
            if history:
                try:
                    pts = self.local(zone, history, now, horizon)
                except Exception as exc:
                    notes.append(f"local forecaster failed: {exc}")
                    pts = []
                if pts:
                    return ForecastAnswer(
                        forecast_of(zone, pts), Source.LOCAL, "local", tuple(notes)
                    )
        # 5. the static annual average, 6. flat
        if self.static.serves(zone):
            pts = self.static.forecast(zone, now, horizon)
            notes.append("no forecast: static annual average")
            return ForecastAnswer(forecast_of(zone, pts), Source.STATIC, "static", tuple(notes))
        notes.append("no data at all: flat world average, planning as if intensity were flat")
        return ForecastAnswer(
            forecast_of(zone, flat_points(zone, now, end)), Source.FLAT, "flat", tuple(notes)
        )

    # -- actuals, for accounting --------------------------------------------------------
    def points_for_accounting(
        self, zone: str, start: datetime, end: datetime
    ) -> list[IntensityPoint]:
        """Actuals over ``[start, end)`` from the providers (stored), plus every cached
        forecast and the static average as the last resort; the accountant picks, per
        sample, actual where known, else forecast."""
        out: list[IntensityPoint] = []
        for p in self.providers:
            if not _serves(p, zone) or self._backing_off(zone, p.name, end) is not None:
                continue
            try:
                pts = p.history(zone, start, end)
            except (IntensityError, NotImplementedError) as exc:
                log.info("no actuals from %s for %s: %s", p.name, zone, exc)
                self._note_history_failure(zone, p.name, end, exc)
                continue
            acts = [q for q in pts if q.kind is Kind.ACTUAL]
            if acts:
                self._store(acts)
                out.extend(acts)
                break
        if self.cache is not None:
            try:
                out.extend(self.cache.get_points(zone, start, end))
            except Exception as exc:
                log.warning("cache unreadable: %s", exc)
        if self.static.serves(zone):
            out.extend(self.static.history(zone, start - timedelta(hours=1), end))
        else:
            out.extend(flat_points(zone, start - timedelta(hours=1), end))
        return out

    # -- helpers ------------------------------------------------------------------------
    def _extend(
        self, zone: str, pts: list[IntensityPoint], now: datetime, end: datetime,
        notes: list[str],
    ) -> list[IntensityPoint]:
        """``pts`` followed by local-forecast points from where they stop to ``end``."""
        if not pts or self.local is None:
            return pts
        last_end = max(q.end for q in pts)
        if last_end >= end:
            return pts
        history = self._history_for_local(zone, now)
        if not history:
            notes.append(f"forecast ends at {_iso(last_end)}; no history to extend it")
            return pts
        try:
            local = self.local(zone, history, now, int((end - now).total_seconds()))
        except Exception as exc:
            notes.append(f"forecast ends at {_iso(last_end)}; local forecaster failed: {exc}")
            return pts
        tail = []
        for q in local:
            if q.end <= last_end or q.start >= end:
                continue
            tail.append(replace(q, start=last_end) if q.start < last_end else q)
        if tail:
            notes.append(f"extended from {_iso(last_end)} with the local forecaster")
        return pts + tail

    def _fresh_cached(
        self, zone: str, provider: str, now: datetime, end: datetime
    ) -> list[IntensityPoint]:
        if self.cache is None or self.cache_s <= 0:
            return []
        try:
            last = self.cache.last_fetch(zone, provider, Kind.FORECAST)
            if last is None or (now - last).total_seconds() > self.cache_s or last > now:
                return []
            pts = self.cache.get_points(zone, now, end, kind=Kind.FORECAST, provider=provider)
        except Exception as exc:
            log.warning("cache unreadable: %s", exc)
            return []
        latest = max((q.issued_at for q in pts if q.issued_at is not None), default=None)
        pts = [replace(q, source=Source.CACHE) for q in pts if q.issued_at == latest]
        return pts

    def _history_for_local(self, zone: str, now: datetime) -> list[IntensityPoint]:
        start = now - timedelta(seconds=self.history_s)
        pts: list[IntensityPoint] = []
        for p in self.providers:
            if not _serves(p, zone) or self._backing_off(zone, p.name, now) is not None:
                continue
            try:
                pts = [q for q in p.history(zone, start, now) if q.kind is Kind.ACTUAL]
            except (IntensityError, NotImplementedError) as exc:
                self._note_history_failure(zone, p.name, now, exc)
                continue
            if pts:
                break
        if not pts and self.cache is not None:
            try:
                pts = self.cache.get_points(zone, start, now, kind=Kind.ACTUAL)
            except Exception:
                pts = []
        return [q for q in pts if q.end <= now]

    def _backing_off(self, zone: str, provider: str, now: datetime) -> str | None:
        """Why ``provider`` is not to be asked about ``zone`` at ``now``, or ``None``.

        It is skipped for :attr:`retry_failed_after_s` after its last failure, as seen by
        this process or recorded in the failure log by any process. A failure stamped
        after ``now`` (another process on another clock: a replay) does not count.
        """
        window = self.retry_failed_after_s
        if window <= 0:
            return None
        at, reason = self._failed.get((zone, provider), (None, ""))
        if self.failures is not None:
            try:
                shared = self.failures.provider_failed_at(zone, provider)
            except Exception as exc:  # the log is an optimisation: never fail for it
                log.debug("failure log unreadable: %s", exc)
                shared = None
            if shared is not None and (at is None or shared > at):
                at, reason = shared, ""
        if at is None or not at <= now < at + timedelta(seconds=window):
            return None
        until = at + timedelta(seconds=window)
        log.info("intensity provider %s skipped for %s until %s: it failed at %s",
                 provider, zone, _iso_s(until), _iso_s(at))
        why = f": {reason}" if reason else ""
        return (f"{provider} not asked: it failed for {zone} at {_iso_s(at)}{why}; "
                f"next try after {_iso_s(until)}")

    def _note_failure(self, zone: str, provider: str, now: datetime, reason: str) -> None:
        """Remember that ``provider`` failed for ``zone`` at ``now`` (here and in the log)."""
        if self.retry_failed_after_s <= 0:
            return
        self._failed[(zone, provider)] = (now, reason)
        if self.failures is not None:
            try:
                self.failures.note_provider_failure(zone, provider, now)
            except Exception as exc:
                log.warning("could not record that %s failed for %s: %s", provider, zone, exc)

    def _note_history_failure(
        self, zone: str, provider: str, now: datetime, exc: BaseException
    ) -> None:
        # unreachable, failing or refusing us: its forecasts would fail too. An empty or odd
        # answer, or a 4xx, for one range says nothing about the next call.
        status = getattr(exc, "status", None)
        if isinstance(exc, AuthError) or (
            isinstance(exc, ProviderUnavailable) and (status is None or status >= 500 or status == 429)
        ):
            self._note_failure(zone, provider, now, str(exc))

    def _store(self, pts: Sequence[IntensityPoint]) -> None:
        if self.cache is None:
            return
        try:
            self.cache.add_points(pts)
        except Exception as exc:
            log.warning("could not cache %d intensity points: %s", len(pts), exc)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="minutes").replace("+00:00", "Z")


def _iso_s(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _latest_vintage(pts: Sequence[IntensityPoint]) -> list[IntensityPoint]:
    """One point per start (the most recently issued), sorted, none overlapping."""
    out: list[IntensityPoint] = []
    for q in forecast_of(pts[0].zone, pts).points if pts else ():
        if out and q.start < out[-1].end:
            continue
        out.append(q)
    return out


def _serves(p: IntensityProvider, zone: str) -> bool:
    try:
        return p.serves(zone)
    except IntensityError:
        return False


__all__ = [
    "FailureLog", "ForecastAnswer", "IntensityService", "LocalForecaster", "PointCache", "UnknownZone",
]
