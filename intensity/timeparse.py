"""Parsing trace timestamps to aware UTC (the replay provider's edge)."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_trace_time(text: str, *, naive_is_utc: bool) -> datetime:
    """Parse ``2023-03-01 00:00:00``, ``2023-03-01T00:00Z``, ``...+01:00`` to aware UTC.

    A naive time is accepted only when ``naive_is_utc`` (the file says its times are UTC);
    otherwise :class:`ValueError`.
    """
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    value = datetime.fromisoformat(t)
    if value.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"time {text!r} has no timezone")
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
