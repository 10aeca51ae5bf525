"""The intensity cache's side door (:class:`scheduler.storage.lite.IntensityCache`): the same
reads as the store through sqlite3 while the store is not open, every write (and every read
it cannot vouch for, or once the store is open) through the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from intensity.model import IntensityPoint, Kind, Signal, Source
from scheduler.storage import lite
from scheduler.storage.base import JobStore
from scheduler.storage.store import FAILURE_KIND, open_store
from scheduler.storage.tables import _sqlite_bind

T0 = datetime(2026, 3, 15, 17, 0, tzinfo=UTC)
HALF = timedelta(minutes=30)


def _points() -> list[IntensityPoint]:
    out = []
    for vintage in range(3):  # three forecast vintages of two providers, and actuals
        issued = T0 + vintage * HALF
        for i in range(12):
            for provider in ("ukgrid", "replay"):
                out.append(IntensityPoint("GB", T0 + i * HALF, T0 + (i + 1) * HALF, 100.0 + i + vintage,
                                          Kind.FORECAST, provider, issued_at=issued, source=Source.PROVIDER,
                                          estimated=i % 2 == 0))
    out += [IntensityPoint("GB", T0 - (i + 1) * HALF, T0 - i * HALF, 90.0 + i, Kind.ACTUAL, "ukgrid",
                           signal=Signal.MARGINAL if i == 3 else Signal.AVERAGE) for i in range(6)]
    out.append(IntensityPoint("DE", T0, T0 + HALF, 300.0, Kind.FORECAST, "energycharts", issued_at=T0))
    return out


class Opened:
    """The store, opened on first use (as App.store), counting how often it was asked."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store: JobStore | None = None
        self.asked = 0

    def __call__(self) -> JobStore:
        self.asked += 1
        if self.store is None:
            self.store = open_store(self.url)
        return self.store


def test_the_same_reads_as_the_store(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    store.add_points(_points())
    store.note_provider_failure("GB", "ukgrid", T0 + timedelta(minutes=7))
    opened = Opened(sqlite_url)
    cache = lite.IntensityCache(sqlite_url, opened, lambda: False)
    try:
        for zone, provider, kind in (("GB", "ukgrid", Kind.FORECAST), ("GB", "replay", Kind.FORECAST),
                                     ("GB", "ukgrid", Kind.ACTUAL), ("DE", "ukgrid", Kind.FORECAST)):
            assert cache.last_fetch(zone, provider, kind) == store.last_fetch(zone, provider, kind)
            assert cache.provider_failed_at(zone, provider) == store.provider_failed_at(zone, provider)
        assert cache.provider_failed_at("GB", "ukgrid") is not None
        eastern = timezone(timedelta(hours=-5))
        for start, end in ((T0 - 4 * HALF, T0 + 20 * HALF), (T0 + HALF, T0 + 2 * HALF),
                           ((T0 + 3 * HALF + timedelta(seconds=1)).astimezone(eastern), T0 + 5 * HALF),
                           (T0 + 50 * HALF, T0 + 60 * HALF)):
            for of_kind in (None, Kind.FORECAST, Kind.ACTUAL):
                for of_provider in (None, "ukgrid", "replay"):
                    got = cache.get_points("GB", start, end, kind=of_kind, provider=of_provider)
                    assert got == store.get_points("GB", start, end, kind=of_kind, provider=of_provider)
        assert len(cache.get_points("GB", T0 - 4 * HALF, T0 + 20 * HALF)) == 3 * 12 * 2 + 4
        assert opened.asked == 0  # all of it through sqlite3
    finally:
        store.close()


def test_writes_and_unvouched_reads_go_to_the_store(tmp_path: Path, sqlite_url: str) -> None:
    opened = Opened(sqlite_url)
    cache = lite.IntensityCache(sqlite_url, opened, lambda: opened.store is not None)
    # no file yet: the store answers (and creates it, as it always did)
    assert cache.last_fetch("GB", "ukgrid", Kind.FORECAST) is None
    assert opened.asked == 1 and Path(sqlite_url.removeprefix("sqlite:///")).is_file()
    assert cache.add_points(_points()) == len(_points())
    cache.note_provider_failure("GB", "replay", T0)
    assert opened.asked == 3
    # the store is open now: it answers every read (its own transactions, its connection)
    assert cache.provider_failed_at("GB", "replay") == T0
    assert cache.get_points("DE", T0, T0 + HALF)[0].intensity_g_per_kwh == 300.0
    assert opened.asked == 5
    assert opened.store is not None
    opened.store.close()
    # not a file this module reads (the answer then comes from the store)
    for url in ("sqlite://", "postgresql+psycopg://u@h/db", f"sqlite:///{tmp_path / 'missing.db'}"):
        fallback = Opened(sqlite_url)
        lite.IntensityCache(url, fallback, lambda: False).last_fetch("GB", "ukgrid", Kind.FORECAST)
        assert fallback.asked == 1
        assert fallback.store is not None
        fallback.store.close()


def test_it_writes_times_and_kinds_as_the_store_does() -> None:
    assert lite.FAILURE_KIND == FAILURE_KIND
    plus_one = timezone(timedelta(hours=1))
    for when in (T0, datetime(2026, 7, 1, 12, 30, 5, 17, tzinfo=plus_one), datetime(1, 1, 1, tzinfo=UTC)):
        assert lite.sqlite_text(when) == _sqlite_bind(when)
