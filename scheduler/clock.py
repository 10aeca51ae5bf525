"""Clocks. The planner never reads one; everything else is handed one.

:class:`SystemClock` is the wall clock. :class:`AcceleratedClock` maps real time onto a
simulated instant running ``factor`` times faster (the demo, soak tests): one real second
is ``factor`` simulated seconds. :class:`ManualClock` only moves when told (tests, simulate).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the daemon needs of time."""

    def now(self) -> datetime:
        """The current (possibly simulated) UTC instant."""
        ...

    def real_delay_s(self, until: datetime) -> float:
        """Real seconds to wait until the clock reads ``until`` (0 if already past)."""
        ...

    @property
    def factor(self) -> float:
        """Simulated seconds per real second."""
        ...


class SystemClock:
    factor = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def real_delay_s(self, until: datetime) -> float:
        return max(0.0, (until - self.now()).total_seconds())


class AcceleratedClock:
    """Simulated time starting at ``origin`` and running ``factor`` times faster than real."""

    def __init__(self, origin: datetime, factor: float) -> None:
        if origin.tzinfo is None:
            raise ValueError("origin must be timezone-aware")
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.origin = origin.astimezone(UTC)
        self._factor = float(factor)
        self._real0 = time.monotonic()

    @property
    def factor(self) -> float:
        return self._factor

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=(time.monotonic() - self._real0) * self._factor)

    def real_delay_s(self, until: datetime) -> float:
        return max(0.0, (until - self.now()).total_seconds() / self._factor)


class ManualClock:
    """A clock that stays put until :meth:`advance` or :meth:`set` moves it."""

    factor = 1.0

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def real_delay_s(self, until: datetime) -> float:
        return 0.0 if until <= self.now() else 0.01


def sleep_until(clock: Clock, when: datetime, *, sleep: Callable[[float], object] = time.sleep,
                step_s: float = 60.0) -> None:
    """Sleep in real time until ``clock`` reads ``when`` (at once if it already does),
    waking at least every ``step_s`` real seconds so a changed clock is noticed."""
    while (delay_s := clock.real_delay_s(when)) > 0:
        sleep(min(delay_s, step_s))


def clock_from_env(value: str | None, *, what: str = "CARBONSHIFT_CLOCK") -> Clock | None:
    """``CARBONSHIFT_CLOCK=2023-03-15T17:00Z`` or ``--clock`` (or ``...Z*3600``): start the
    clock at that instant, running that many times faster than real time. For replays,
    demos and tests."""
    if not value:
        return None
    from scheduler.errors import BadInput
    from scheduler.text.times import parse_time

    text, _, factor_text = value.partition("*")
    try:
        factor = float(factor_text) if factor_text else 1.0
    except ValueError:
        raise BadInput(f"{what} factor {factor_text!r} is not a number: give ISO[*FACTOR], like "
                       "2023-06-14T16:00Z*3600") from None
    if not factor > 0 or factor == float("inf"):
        raise BadInput(f"{what} factor {factor_text!r} must be a positive number")
    return AcceleratedClock(parse_time(text, what=what), factor)
