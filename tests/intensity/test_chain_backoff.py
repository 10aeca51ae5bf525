"""Provider back-off in the fallback chain: a provider that failed for a zone is not asked
again for a while, by this process or by any other sharing the failure log; the answer
says it was skipped and since when, and is flagged as fallback data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from intensity.base import IntensityProvider
from intensity.chain import IntensityService
from intensity.errors import EmptyData, IntensityError, ProviderUnavailable
from intensity.http import HttpStatusError
from intensity.model import IntensityPoint, Kind, Source

NOW = datetime(2023, 3, 20, 12, tzinfo=UTC)
MIN = timedelta(minutes=1)


class Flaky(IntensityProvider):
    """Serves GB; raises ``error`` from forecast (and ``history_error`` from history) while
    set, else answers with a flat 100 g/kWh."""

    name = "flaky"

    def __init__(self, error: IntensityError | None = None,
                 history_error: Exception | None = None) -> None:
        self.error = error
        self.history_error = history_error
        self.forecast_calls = 0
        self.history_calls = 0

    def zones(self) -> Sequence[str]:
        return ["GB"]

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        self.forecast_calls += 1
        if self.error is not None:
            raise self.error
        return [IntensityPoint(zone, now, now + timedelta(seconds=horizon_s), 100.0, Kind.FORECAST,
                               self.name, issued_at=now, source=Source.PROVIDER)]

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        self.history_calls += 1
        if self.history_error is not None:
            raise self.history_error
        return []


class Log:
    """A FailureLog in a dict (the store satisfies the same protocol)."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, str], datetime] = {}

    def note_provider_failure(self, zone: str, provider: str, at: datetime) -> None:
        self.at[(zone, provider)] = at

    def provider_failed_at(self, zone: str, provider: str) -> datetime | None:
        return self.at.get((zone, provider))


def service(p: Flaky, log: Log | None = None, window_s: float = 300.0) -> IntensityService:
    return IntensityService([p], retry_failed_after_s=window_s, failures=log)


def test_a_failed_provider_is_skipped_for_the_window_then_asked_again() -> None:
    p = Flaky(ProviderUnavailable("flaky: cannot resolve the host (offline?)"))
    svc = service(p)
    first = svc.forecast("GB", NOW, 3600)
    assert p.forecast_calls == 1 and first.link is Source.STATIC and first.fallback
    assert any("flaky failed: flaky: cannot resolve" in n for n in first.notes)
    # the failed call's own fallback did not ask the provider for history either
    assert p.history_calls == 0

    later = svc.forecast("GB", NOW + 4 * MIN, 3600)
    assert p.forecast_calls == 1, "asked again inside the back-off window"
    assert later.link is Source.STATIC and later.fallback
    note = next(n for n in later.notes if n.startswith("flaky not asked"))
    assert "failed for GB at 2023-03-20T12:00:00Z" in note and "cannot resolve" in note
    assert "next try after 2023-03-20T12:05:00Z" in note

    p.error = None  # the provider is back; once the window has passed it is asked again
    again = svc.forecast("GB", NOW + 5 * MIN, 3600)
    assert p.forecast_calls == 2 and again.link is Source.PROVIDER and not again.fallback


def test_other_processes_see_the_failure_through_the_log() -> None:
    log = Log()
    a, b = Flaky(ProviderUnavailable("flaky: 503")), Flaky()
    service(a, log).forecast("GB", NOW, 3600)
    assert log.at == {("GB", "flaky"): NOW}
    answer = service(b, log).forecast("GB", NOW + MIN, 3600)  # a new process: no memory of its own
    assert b.forecast_calls == 0 and answer.fallback
    assert any(n.startswith("flaky not asked: it failed for GB at 2023-03-20T12:00:00Z;") for n in answer.notes)
    # another zone is not affected
    assert service(b, log)._backing_off("DE", "flaky", NOW + MIN) is None


def test_a_failure_stamped_after_now_does_not_count() -> None:
    """A process on another clock (a replay of 2023 beside a live daemon) is not blocked."""
    log = Log()
    log.note_provider_failure("GB", "flaky", NOW + timedelta(days=365))
    p = Flaky()
    assert service(p, log).forecast("GB", NOW, 3600).link is Source.PROVIDER
    assert p.forecast_calls == 1


def test_no_window_means_asking_every_time() -> None:
    log = Log()
    p = Flaky(ProviderUnavailable("flaky: 503"))
    svc = service(p, log, window_s=0)
    svc.forecast("GB", NOW, 3600)
    svc.forecast("GB", NOW + MIN, 3600)
    assert p.forecast_calls == 2 and log.at == {}


@pytest.mark.parametrize(("error", "opens"), [
    (ProviderUnavailable("flaky: connection failed after 4 attempts"), True),
    (HttpStatusError("flaky: HTTP 503 after 4 attempts", 503), True),
    (HttpStatusError("flaky: HTTP 400 for that range", 400), False),
    (EmptyData("flaky: nothing for that range"), False),
    (NotImplementedError(), False),
])
def test_history_failures_that_open_the_breaker(error: Exception, opens: bool) -> None:
    p = Flaky(history_error=error)
    svc = service(p)
    svc.points_for_accounting("GB", NOW - 2 * MIN, NOW)
    assert p.history_calls == 1
    assert (svc._backing_off("GB", "flaky", NOW + MIN) is not None) is opens
    svc.forecast("GB", NOW + MIN, 3600)
    assert p.forecast_calls == (0 if opens else 1)


def test_an_unreadable_log_never_fails_the_forecast() -> None:
    class Broken(Log):
        def note_provider_failure(self, zone: str, provider: str, at: datetime) -> None:
            raise OSError("disk full")

        def provider_failed_at(self, zone: str, provider: str) -> datetime | None:
            raise OSError("database is locked")

    p = Flaky(ProviderUnavailable("flaky: 503"))
    svc = service(p, Broken())
    assert svc.forecast("GB", NOW, 3600).link is Source.STATIC
    # this process still remembers it
    assert svc.forecast("GB", NOW + MIN, 3600).link is Source.STATIC and p.forecast_calls == 1
