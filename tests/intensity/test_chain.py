"""The fallback chain with the local forecaster: provider -> cache -> local -> static -> flat,
and the horizon extension of a provider forecast that stops short."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from intensity.base import IntensityProvider
from intensity.chain import IntensityService
from intensity.errors import EmptyData, ProviderUnavailable
from intensity.forecast import local_forecast
from intensity.model import IntensityPoint, Kind, Source

NOW = datetime(2023, 3, 20, 12, tzinfo=UTC)
H = timedelta(hours=1)


def curve(t: datetime) -> float:
    return 200.0 + 80.0 * math.sin(2 * math.pi * (t.hour - 6) / 24)


def hourly(zone: str, start: datetime, end: datetime, kind: Kind, provider: str,
           issued: datetime | None = None) -> list[IntensityPoint]:
    out, t = [], start
    while t < end:
        out.append(IntensityPoint(zone, t, t + H, curve(t), kind, provider, issued_at=issued,
                                  source=Source.PROVIDER))
        t += H
    return out


class FakeProvider(IntensityProvider):
    """Serves one zone; its forecast covers ``forecast_h`` hours or fails; history works
    unless ``history_ok`` is false."""

    name = "fake"

    def __init__(self, zone: str = "GB", *, forecast_h: float | None = 48,
                 history_ok: bool = True) -> None:
        self.zone = zone
        self.forecast_h = forecast_h
        self.history_ok = history_ok
        self.calls = 0

    def zones(self) -> Sequence[str]:
        return [self.zone]

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        self.calls += 1
        if self.forecast_h is None:
            raise ProviderUnavailable("fake: 503 after retries")
        end = now + timedelta(hours=self.forecast_h)
        return hourly(zone, now, end, Kind.FORECAST, self.name, issued=now)

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        if not self.history_ok:
            raise EmptyData("fake: no history")
        return hourly(zone, start.replace(minute=0), end, Kind.ACTUAL, self.name)


class MemoryCache:
    """A PointCache in a list (the store satisfies the same protocol)."""

    def __init__(self) -> None:
        self.points: list[IntensityPoint] = []
        self.fetched: dict[tuple[str, str, Kind], datetime] = {}

    def add_points(self, points: Sequence[IntensityPoint]) -> int:
        self.points.extend(points)
        for p in points:
            if p.issued_at is not None:
                self.fetched[(p.zone, p.provider, p.kind)] = p.issued_at
        return len(points)

    def get_points(self, zone: str, start: datetime, end: datetime, *, kind: Kind | None = None,
                   provider: str | None = None) -> list[IntensityPoint]:
        return [p for p in self.points if p.zone == zone and p.end > start and p.start < end
                and (kind is None or p.kind is kind)
                and (provider is None or p.provider == provider)]

    def last_fetch(self, zone: str, provider: str, kind: Kind) -> datetime | None:
        return self.fetched.get((zone, provider, kind))


def covers(points: Sequence[IntensityPoint], start: datetime, end: datetime) -> bool:
    pts = sorted(points, key=lambda p: p.start)
    return pts[0].start <= start and pts[-1].end >= end and all(
        b.start == a.end for a, b in itertools.pairwise(pts))


def test_provider_forecast_is_used_as_is_when_it_covers_the_horizon() -> None:
    svc = IntensityService([FakeProvider()], local=local_forecast)
    ans = svc.forecast("GB", NOW, 24 * 3600)
    assert ans.link is Source.PROVIDER and not ans.fallback and ans.notes == ()
    assert {p.source for p in ans.forecast.points} == {Source.PROVIDER}


def test_a_short_provider_forecast_is_extended_with_local_points() -> None:
    svc = IntensityService([FakeProvider(forecast_h=24)], local=local_forecast)
    ans = svc.forecast("GB", NOW, 72 * 3600)
    pts = ans.forecast.points
    assert ans.link is Source.PROVIDER and ans.provider == "fake"
    assert covers(pts, NOW, NOW + timedelta(hours=72))
    head = [p for p in pts if p.end <= NOW + 24 * H]
    tail = [p for p in pts if p.start >= NOW + 24 * H]
    assert {p.source for p in head} == {Source.PROVIDER}
    assert {p.source for p in tail} == {Source.LOCAL} and len(tail) == 48
    assert any("extended from 2023-03-21T12:00Z with the local forecaster" in n for n in ans.notes)
    # the local forecaster learnt the daily curve from the provider's history
    assert all(abs(p.intensity_g_per_kwh - curve(p.start)) < 15 for p in tail)


def test_without_local_forecaster_a_short_forecast_is_left_short() -> None:
    svc = IntensityService([FakeProvider(forecast_h=24)])
    ans = svc.forecast("GB", NOW, 72 * 3600)
    assert ans.forecast.end == NOW + 24 * H and ans.notes == ()


def test_extension_without_history_says_so() -> None:
    svc = IntensityService([FakeProvider(forecast_h=24, history_ok=False)], local=local_forecast)
    ans = svc.forecast("GB", NOW, 72 * 3600)
    assert ans.forecast.end == NOW + 24 * H
    assert any("no history to extend it" in n for n in ans.notes)


def test_fresh_cache_then_stale_cache_then_local_then_static_then_flat() -> None:
    cache = MemoryCache()
    provider = FakeProvider(forecast_h=48)
    svc = IntensityService([provider], cache=cache, local=local_forecast, cache_s=1800)

    # 1. the provider answers, and its vintage is cached
    first = svc.forecast("GB", NOW, 24 * 3600)
    assert first.link is Source.PROVIDER and provider.calls == 1

    # 2. ten minutes later: the fresh cached vintage, no new call
    fresh = svc.forecast("GB", NOW + timedelta(minutes=10), 23 * 3600)
    assert fresh.link is Source.CACHE and provider.calls == 1 and not fresh.fallback
    assert {p.source for p in fresh.forecast.points} == {Source.CACHE}

    # 3. two hours later the provider fails: the stale cached forecast, flagged
    provider.forecast_h = None
    later = NOW + 2 * H
    stale = svc.forecast("GB", later, 24 * 3600)
    assert stale.link is Source.CACHE and stale.fallback
    assert any("fake failed" in n for n in stale.notes)
    assert "stale cached forecast" in stale.notes
    # the cached vintage ends at NOW + 24 h: the last two hours come from the local forecaster
    assert {p.source for p in stale.forecast.points if p.end <= NOW + 24 * H} == {Source.CACHE}
    assert {p.source for p in stale.forecast.points if p.start >= NOW + 24 * H} == {Source.LOCAL}
    assert any("extended from" in n for n in stale.notes)

    # 4. three days later the cache no longer covers the window: local, from history
    far = NOW + timedelta(days=3)
    local = svc.forecast("GB", far, 24 * 3600)
    assert local.link is Source.LOCAL and local.provider == "local" and local.fallback
    assert {p.source for p in local.forecast.points} == {Source.LOCAL}
    assert covers(local.forecast.points, far, far + 24 * H)

    # 5. no history either: the static annual average of GB
    provider.history_ok = False
    static = svc.forecast("GB", far, 24 * 3600)
    assert static.link is Source.STATIC and static.fallback
    assert {p.source for p in static.forecast.points} == {Source.STATIC}
    assert any("static annual average" in n for n in static.notes)


def test_flat_is_the_last_link_for_a_zone_nobody_knows_the_average_of() -> None:
    svc = IntensityService([FakeProvider(zone="XX-NOWHERE", forecast_h=None,
                                         history_ok=False)], local=local_forecast)
    ans = svc.forecast("XX-NOWHERE", NOW, 6 * 3600)
    assert ans.link is Source.FLAT and ans.fallback
    assert {p.source for p in ans.forecast.points} == {Source.FLAT}
    assert any("flat" in n for n in ans.notes)


def test_local_forecaster_failure_falls_through_to_static() -> None:
    def broken(zone, history, now, horizon_s):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    svc = IntensityService([FakeProvider(forecast_h=None)], local=broken)
    ans = svc.forecast("GB", NOW, 6 * 3600)
    assert ans.link is Source.STATIC
    assert any("local forecaster failed: boom" in n for n in ans.notes)


def test_stale_vintages_of_different_lengths_do_not_overlap() -> None:
    cache = MemoryCache()
    early = NOW - timedelta(hours=5)
    # an hourly vintage and a later half-hourly one over the same hours
    cache.add_points(hourly("GB", early, NOW + 10 * H, Kind.FORECAST, "fake", issued=early))
    half = []
    t = NOW - 2 * H
    while t < NOW + 10 * H:
        half.append(IntensityPoint("GB", t, t + timedelta(minutes=30), 123.0, Kind.FORECAST,
                                   "fake", issued_at=NOW - 2 * H, source=Source.PROVIDER))
        t += timedelta(minutes=30)
    cache.add_points(half)
    svc = IntensityService([FakeProvider(forecast_h=None)], cache=cache, cache_s=0)
    ans = svc.forecast("GB", NOW, 6 * 3600)
    assert ans.link is Source.CACHE
    starts = [p.start for p in ans.forecast.points]
    assert starts == sorted(set(starts))
