"""Moved to :mod:`scheduler.text.times` (the text package: parsing and rendering shared by
the CLI, the API and the web); this module keeps the old import path working."""

from scheduler.text.times import (
    MAX_DURATION_S,
    check_duration_s,
    check_when,
    format_duration,
    iso,
    looks_absolute,
    parse_duration_or_zero_s,
    parse_duration_s,
    parse_since,
    parse_time,
    parse_when,
    require_aware,
    spans_text,
    utcnow,
)

__all__ = [
    "MAX_DURATION_S", "check_duration_s", "check_when", "format_duration", "iso", "looks_absolute",
    "parse_duration_or_zero_s", "parse_duration_s", "parse_since", "parse_time", "parse_when",
    "require_aware", "spans_text", "utcnow",
]
