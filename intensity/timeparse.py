"""Parsing trace timestamps to aware UTC (the replay provider's edge), through the one ISO
reader (:func:`intensity.timefmt.read_iso`)."""

from __future__ import annotations

from datetime import datetime

from intensity.timefmt import naive_as_utc, read_iso


def parse_trace_time(text: str, *, naive_is_utc: bool) -> datetime:
    """Parse ``2023-03-01 00:00:00``, ``2023-03-01T00:00Z``, ``...+01:00`` to aware UTC.

    A naive time is accepted only when ``naive_is_utc`` (the file says its times are UTC);
    otherwise :class:`ValueError`.
    """
    return naive_as_utc(read_iso(text), naive_is_utc=naive_is_utc, shown=text)
