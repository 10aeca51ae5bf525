"""Provider time formats -> aware UTC, and UTC -> the formats providers expect.

Every format seen in the providers' responses is handled here, once:

==========================================  =============================================
``2023-03-14T03:00Z``                       GB Carbon Intensity API (minutes, ``Z``)
``2024-03-06T19:00:00.000Z``                Electricity Maps (milliseconds, ``Z``)
``2022-07-15T00:05:00+00:00``               WattTime (offset)
``2022-07-17T21:55:00``                     Energinet ``Minutes5UTC``: naive, documented UTC
``1700000000`` / ``1700000000000``          Energy-Charts ``unix_seconds``; unix ms
==========================================  =============================================

Parsing is DST-free: an offset is applied as given and the result is converted to UTC;
no local timezone database is ever consulted. A naive text is accepted only where the
provider documents it as UTC (``naive_is_utc=True``); anywhere else it is an error.
Errors are :class:`ValueError`; provider adapters turn them into
:class:`~intensity.errors.MalformedResponse`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

#: Unix values above this are taken as milliseconds (1e11 s is the year 5138).
_UNIX_MS_THRESHOLD = 1e11

_NUMERIC = re.compile(r"^[+-]?\d+(\.\d+)?$")


def parse_utc(value: str | int | float, *, naive_is_utc: bool = False) -> datetime:
    """Parse a provider timestamp to an aware UTC :class:`datetime`.

    ``value`` may be ISO 8601 text (``Z`` or ``±hh:mm`` offset, with or without seconds
    and fractions) or unix time in seconds or milliseconds (number or digit string).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return from_unix(value)
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    if not text:
        raise ValueError("empty time")
    if _NUMERIC.match(text):
        return from_unix(float(text))
    try:
        parsed = read_iso(text)
    except ValueError:
        raise ValueError(f"unparseable time {value!r}") from None
    return naive_as_utc(parsed, naive_is_utc=naive_is_utc, shown=value)


def read_iso(text: str) -> datetime:
    """ISO 8601 text (``2023-03-14T03:00Z``, ``...+01:00``, ``2023-03-01 00:00:00``) as a
    :class:`datetime`: aware where the text names a zone (``Z`` included), else naive. The
    one ISO reader of the program: providers, traces and the scheduler's edges
    (:func:`scheduler.text.times.parse_time`) all read ISO text through it. Bad text:
    :class:`ValueError`."""
    t = text.strip()
    if t[-1:] in ("Z", "z"):
        t = t[:-1] + "+00:00"
    return datetime.fromisoformat(t)


def naive_as_utc(value: datetime, *, naive_is_utc: bool, shown: object) -> datetime:
    """``value`` in UTC; a naive one only where its source documents UTC (``naive_is_utc``),
    else :class:`ValueError` naming ``shown``."""
    if value.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"time {shown!r} has no timezone offset")
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def from_unix(value: int | float) -> datetime:
    """Unix seconds (or milliseconds, when implausibly large for seconds) -> aware UTC."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a unix time: {value!r}")
    if abs(number) >= _UNIX_MS_THRESHOLD:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"unix time out of range: {value!r}") from None


def require_utc(value: datetime, what: str = "time") -> datetime:
    """Return ``value`` in UTC; a naive datetime is refused (the package's edge rule)."""
    if value.tzinfo is None:
        raise ValueError(f"naive {what} {value!r}: pass an aware UTC datetime")
    return value.astimezone(UTC)


def format_minutes_z(value: datetime) -> str:
    """``2023-03-14T03:00Z``: the GB Carbon Intensity API's path format (seconds dropped)."""
    return require_utc(value).strftime("%Y-%m-%dT%H:%MZ")


def format_seconds_z(value: datetime) -> str:
    """``2024-03-06T19:00:00Z``: ISO 8601 with ``Z``, for query parameters."""
    return require_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_minutes_naive(value: datetime) -> str:
    """``2022-07-17T21:55``: Energi Data Service's ``start``/``end`` format (UTC meant)."""
    return require_utc(value).strftime("%Y-%m-%dT%H:%M")


def floor_to(value: datetime, step_s: int) -> datetime:
    """Floor an aware time to a multiple of ``step_s`` seconds since the unix epoch."""
    aware = require_utc(value)
    ts = aware.timestamp()
    return datetime.fromtimestamp(ts - (ts % step_s), tz=UTC)


def chunks(start: datetime, end: datetime, max_span_s: float) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into consecutive spans no longer than ``max_span_s``."""
    if max_span_s <= 0:
        raise ValueError("max_span_s must be positive")
    lo = require_utc(start, "start")
    hi = require_utc(end, "end")
    step = timedelta(seconds=max_span_s)
    out: list[tuple[datetime, datetime]] = []
    while lo < hi:
        nxt = min(lo + step, hi)
        out.append((lo, nxt))
        lo = nxt
    return out


def history_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``(start, end)`` of a history request in UTC; both aware, ``start < end``."""
    start = require_utc(start, "start")
    end = require_utc(end, "end")
    if end <= start:
        raise ValueError("history needs start < end")
    return start, end
