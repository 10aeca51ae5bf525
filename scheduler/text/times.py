"""Parsing and formatting of durations and times at the edges.

Everything inside carbonshift is a timezone-aware UTC :class:`datetime`; these functions
are where user text becomes such a value. Naive times are rejected with a message that
says how to fix them. The rules a value must keep (``check_*``) are separate from reading
text, so that the Python API, which is given numbers and datetimes, keeps the same rules
without writing them as text first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from intensity.timefmt import read_iso
from scheduler.errors import BadInput

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_ISO_DURATION_RE = re.compile(
    r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
MAX_DURATION_S = 366 * 86400


def parse_duration_s(text: str, *, what: str = "duration") -> int:
    """Parse ``3h``, ``90m``, ``1h30m``, ``2d``, ``45s`` or ISO 8601 ``PT3H`` into seconds.

    The result is a positive whole number of seconds, at most a year.
    """
    raw = text
    text = text.strip()
    seconds: float | None = None
    if text:
        iso = _ISO_DURATION_RE.match(text)
        if iso and any(iso.groups()):
            d, h, m, s = (float(g) if g else 0.0 for g in iso.groups())
            seconds = d * 86400 + h * 3600 + m * 60 + s
        else:
            pos = 0
            total = 0.0
            compact = text.replace(" ", "")
            for match in _DURATION_RE.finditer(compact):
                if match.start() != pos:
                    break
                total += float(match.group(1)) * _UNITS_S[match.group(2).lower()]
                pos = match.end()
            else:
                if pos == len(compact) and pos > 0:
                    seconds = total
    if seconds is None or not math.isfinite(seconds):
        raise BadInput(
            f"{what} {raw!r} is not a duration: use a number with a unit, like 3h, 90m, 1h30m or 2d"
        )
    return check_duration_s(seconds, what=what, shown=repr(raw))


def check_duration_s(seconds: float, *, what: str = "duration", shown: str | None = None) -> int:
    """The rule every duration keeps: finite, above zero, at most a year; whole seconds
    (at least one). ``shown`` is the value as the user gave it, for the message."""
    shown = shown or f"{seconds!r} s"
    if not math.isfinite(seconds):
        raise BadInput(f"{what} {shown} is not a duration: give a finite number of seconds")
    if seconds <= 0:
        raise BadInput(f"{what} {shown} must be longer than zero")
    if seconds > MAX_DURATION_S:
        raise BadInput(f"{what} {shown} is longer than a year: give a shorter {what}")
    return max(1, round(seconds))


def require_aware(value: datetime, *, what: str = "time") -> datetime:
    """Return ``value`` in UTC; refuse a naive datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise BadInput(
            f"{what} {value.isoformat()!r} has no timezone: add Z or an offset like +01:00"
        )
    return value.astimezone(UTC)


def parse_time(text: str, *, what: str = "time") -> datetime:
    """Parse an ISO 8601 time with a zone (``2026-05-01T18:00Z``, ``...+02:00``) to UTC."""
    raw = text
    text = text.strip()
    if not text:
        raise BadInput(f"{what} is empty: give an ISO time like 2026-05-01T18:00Z")
    try:
        parsed = read_iso(text)
    except ValueError:
        raise BadInput(
            f"{what} {raw!r} is not a time: use ISO 8601 with a zone, like 2026-05-01T18:00Z"
        ) from None
    return require_aware(parsed, what=what)


def looks_absolute(text: str) -> bool:
    """Whether ``text`` is written as an ISO time (``2026-05-01T18:00Z``) rather than a
    duration (``12h``)."""
    stripped = text.strip()
    return bool(stripped) and stripped[0].isdigit() and (
        "-" in stripped[1:] or ":" in stripped)


def parse_when(text: str, now: datetime, *, what: str = "deadline") -> datetime:
    """Parse an absolute ISO time or a duration relative to ``now`` (``12h`` = now + 12 h).

    Either is at most a year (:data:`MAX_DURATION_S`) after ``now``, like a duration.
    """
    stripped = text.strip()
    if looks_absolute(stripped):
        return check_when(parse_time(stripped, what=what), now, what=what, shown=repr(stripped))
    if stripped.startswith("+"):
        stripped = stripped[1:]
    return now + timedelta(seconds=parse_duration_s(stripped, what=what))


def parse_duration_or_zero_s(text: str, *, what: str) -> int:
    """A duration like ``30m``, or ``0`` (``0s``) for none."""
    if text.strip().lower() in ("0", "0s", "0m", "0h"):
        return 0
    return parse_duration_s(text, what=what)


def parse_since(text: str | None, now: datetime, what: str) -> datetime | None:
    """An ISO time with a zone, or a duration back from ``now`` (``30d``, ``12h``); ``None``
    (all time) for nothing, ``all`` or ``ever``."""
    if text is None or text.strip().lower() in ("", "all", "ever"):
        return None
    t = text.strip()
    if looks_absolute(t):
        return parse_time(t, what=what)
    return now - timedelta(seconds=parse_duration_s(t, what=what))


def check_when(at: datetime, now: datetime, *, what: str = "deadline", shown: str | None = None) -> datetime:
    """The rule every instant a user names keeps: timezone-aware (returned in UTC) and at
    most a year (:data:`MAX_DURATION_S`) after ``now``."""
    at = require_aware(at, what=what)
    if (at - now).total_seconds() > MAX_DURATION_S:
        raise BadInput(
            f"{what} {shown or repr(iso(at))} is more than a year ahead: give one before "
            f"{iso(now + timedelta(seconds=MAX_DURATION_S))}"
        )
    return at


def format_duration(seconds: float, *, ceil: bool = False) -> str:
    """A duration for people, at most three units, the later ones zero-padded:
    ``45`` -> ``45s``, ``125`` -> ``2m05s``, ``57780`` -> ``16h03m``, ``57783`` ->
    ``16h03m03s``, ``90061`` -> ``1d01h01m``; trailing zero units are dropped (``1h``,
    ``2d``), never a middle one (``16h00m03s``, not ``16h3s``).

    From a day up, seconds are rounded to the nearest minute (``ceil``: up, for a figure
    someone will type back, like "give --deadline 1d02h03m or later")."""
    if seconds < 0:
        return "-" + format_duration(-seconds, ceil=ceil)
    whole = math.ceil(seconds) if ceil else math.floor(seconds + 0.5)
    if whole >= 86400:
        minutes = -(-whole // 60) if ceil else (whole + 30) // 60
        days, rem = divmod(minutes, 1440)
        units = [(days, "d"), *zip(divmod(rem, 60), "hm", strict=True)]
    else:
        hours, rem = divmod(whole, 3600)
        units = [(hours, "h"), *zip(divmod(rem, 60), "ms", strict=True)]
    while len(units) > 1 and units[0][0] == 0:
        units.pop(0)
    while len(units) > 1 and units[-1][0] == 0:
        units.pop()
    (first, unit), rest = units[0], units[1:]
    return f"{first}{unit}" + "".join(f"{n:02d}{u}" for n, u in rest)


def iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with a ``Z``, seconds precision; ``None`` stays ``None``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    """The wall clock, for the edges only (the planner never calls this)."""
    return datetime.now(UTC)


def spans_text(spans: Iterable[tuple[datetime, datetime]]) -> str:
    """``2026-03-15T17:00:00Z -> 18:00:00Z, ...``: run intervals in UTC, one line."""
    parts = []
    for a, b in spans:
        a, b = a.astimezone(UTC), b.astimezone(UTC)
        end = b.strftime("%H:%M:%SZ") if b.date() == a.date() else iso(b)
        parts.append(f"{iso(a)} -> {end}")
    return ", ".join(parts)
