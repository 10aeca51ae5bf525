"""Helpers shared by the HTTP providers: series hygiene, value parsing, settings.

Series hygiene is the same for every provider, so it lives here once:

- a ``null`` value is skipped (the series gets a gap, which :class:`~intensity.model.Forecast`
  allows); a value that is not a number is a :class:`~intensity.errors.MalformedResponse`;
- a negative or non-finite value is skipped (an intensity cannot be negative);
- points are sorted by start (providers answer newest-first, or out of order);
- duplicate starts keep the *last* occurrence in the answer (a later correction wins);
- each point's end is ``start + step``, not the next point's start, so gaps stay gaps;
- points are clipped to the asked window ``[start, end)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from intensity.errors import AuthError, IntensityError, MalformedResponse
from intensity.model import IntensityPoint, Kind, Signal
from intensity.timefmt import parse_utc

log = logging.getLogger(__name__)


def number_or_none(value: Any, *, provider: str, field: str) -> float | None:
    """A JSON number as ``float``; ``None`` stays ``None``; anything else is malformed."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MalformedResponse(f"{provider}: {field} is a boolean, not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise MalformedResponse(f"{provider}: {field} is not a number: {value!r:.40}")


def time_of(value: Any, *, provider: str, field: str, naive_is_utc: bool = False) -> datetime:
    """Parse a provider time with :func:`~intensity.timefmt.parse_utc`, mapping errors."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise MalformedResponse(f"{provider}: {field} is not a time: {value!r:.40}")
    try:
        return parse_utc(value, naive_is_utc=naive_is_utc)
    except ValueError as exc:
        raise MalformedResponse(f"{provider}: {field}: {exc}") from None


def usable(value: float | None) -> bool:
    """Whether a parsed intensity can become a point (present, finite, not negative)."""
    return value is not None and math.isfinite(value) and value >= 0


def tidy(
    points: Iterable[IntensityPoint],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[IntensityPoint]:
    """Sort, de-duplicate (last occurrence wins) and clip points to ``[start, end)``."""
    by_start: dict[datetime, IntensityPoint] = {}
    duplicates = 0
    for p in points:
        if p.start in by_start:
            duplicates += 1
        by_start[p.start] = p
    if duplicates:
        log.debug("dropped %d duplicate timestamps", duplicates)
    out = sorted(by_start.values(), key=lambda p: p.start)
    if start is not None:
        out = [p for p in out if p.end > start]
    if end is not None:
        out = [p for p in out if p.start < end]
    # Points of irregular series may still overlap (a 1 h point then a 30 min point
    # starting inside it); keep the earlier one's start and cut nothing: drop overlaps.
    clean: list[IntensityPoint] = []
    for p in out:
        if clean and p.start < clean[-1].end:
            continue
        clean.append(p)
    return clean


def step_of(starts: list[datetime], default_s: int) -> int:
    """The series' resolution: the smallest positive spacing, or ``default_s``."""
    gaps = sorted({int((b - a).total_seconds()) for a, b in pairwise(starts)})
    positive = [g for g in gaps if g > 0]
    return positive[0] if positive else default_s


def stepped_point(
    zone: str, start: datetime, step_s: int, value: float, *, kind: Kind, provider: str,
    signal: Signal, issued_at: datetime | None, estimated: bool = False,
) -> IntensityPoint:
    """One value of a series of fixed steps: the point over ``[start, start + step_s)``."""
    return IntensityPoint(
        zone=zone, start=start, end=start + timedelta(seconds=step_s), intensity_g_per_kwh=value,
        kind=kind, provider=provider, signal=signal, issued_at=issued_at, estimated=estimated,
    )


def seconds(value: int) -> timedelta:
    return timedelta(seconds=value)


def credential(
    options: Mapping[str, Any],
    env: Mapping[str, str],
    key: str,
    default_env: str,
) -> tuple[str | None, str]:
    """Resolve one credential: ``options[key]``, else ``env[options[key_env] or default_env]``.

    Returns the value (``None`` when unset) and the environment variable name to mention
    in a "set X" message. Library code never reads :data:`os.environ`; ``env`` is the
    mapping the CLI edge passes down.
    """
    var = str(options.get(f"{key}_env") or default_env)
    value = options.get(key)
    if value is None or value == "":
        value = env.get(var)
    if value is None or value == "":
        return None, var
    return str(value), var


def missing_credential(provider: str, what: str, variables: Iterable[str]) -> AuthError:
    """The error for an unset credential, naming the variable(s) to set."""
    names = " and ".join(variables)
    return AuthError(
        f"{provider} needs {what}: set {names} in the environment "
        f"(or the [providers.{provider}] table of the config file)"
    )


def zones_option(options: Mapping[str, Any], default: Iterable[str]) -> tuple[str, ...]:
    """The ``zones`` option as a tuple of strings, or ``default``."""
    raw = options.get("zones")
    if raw is None:
        return tuple(default)
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        raise IntensityError('zones must be a list of zone names, e.g. zones = ["GB"]')
    return tuple(str(z) for z in raw)


def base_url_option(options: Mapping[str, Any], default: str) -> str:
    return str(options.get("base_url") or default).rstrip("/")
