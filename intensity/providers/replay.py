"""Replay provider: carbon intensity from a trace file, as if it were live.

Two formats are read:

* the Electricity Maps Data Portal CSV (``Datetime (UTC)``, ``Zone Id``,
  ``Carbon Intensity gCO₂eq/kWh (LCA)`` or ``(direct)``, ``Data Estimated``...), and
* a plain CSV with a ``time`` column and an ``intensity_g_per_kwh`` column (times with a
  zone; naive times only when the column is named ``time_utc``).

Replay gives *perfect foresight*: its forecast at ``now`` is the trace itself. That is
what the demo wants (a reproducible run); honest evaluation of forecasting uses the local
forecaster (`simulate --forecast local`) instead.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from intensity.base import IntensityProvider
from intensity.errors import BadTrace, EmptyData, UnknownZone
from intensity.model import IntensityPoint, Kind, Signal, Source
from intensity.timeparse import parse_trace_time

EM_TIME = "Datetime (UTC)"
EM_ZONE = "Zone Id"
EM_LCA = "Carbon Intensity gCO₂eq/kWh (LCA)"
EM_DIRECT = "Carbon Intensity gCO₂eq/kWh (direct)"
EM_ESTIMATED = "Data Estimated"
PLAIN_VALUE = "intensity_g_per_kwh"
SHIPPED_TRACE = Path(__file__).resolve().parent.parent / "data" / "GB_2023-03_hourly.csv"


@dataclass(frozen=True)
class Trace:
    """A zone's intensity series read from a file, sorted, resolution inferred."""

    zone: str
    points: tuple[IntensityPoint, ...]
    resolution_s: int
    path: str

    @property
    def start(self) -> datetime:
        return self.points[0].start

    @property
    def end(self) -> datetime:
        return self.points[-1].end


def read_trace(
    path: str | Path,
    *,
    zone: str | None = None,
    emission_factor: str = "lca",
    naive_is_utc: bool = False,
    value_column: str | None = None,
) -> Trace:
    """Read and validate a trace file; :class:`BadTrace` names the line and the problem.

    ``value_column`` picks the intensity column of a plain CSV whose header is not
    ``intensity_g_per_kwh`` (the Let's Wait Awhile file's ``DE``, say); ``naive_is_utc``
    accepts zone-less times in such files.
    """
    p = Path(path)
    try:
        handle = p.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise BadTrace(f"trace file {str(p)!r} does not exist: check the path") from None
    except IsADirectoryError:
        raise BadTrace(f"trace file {str(p)!r} is a directory: give a CSV file") from None
    except OSError as exc:
        raise BadTrace(f"trace file {str(p)!r} cannot be read: {exc.strerror}") from None
    with handle:
        try:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = list(reader)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BadTrace(f"trace file {str(p)!r} is not a readable CSV: {exc}") from None
    if EM_TIME in header:
        col = EM_LCA if emission_factor == "lca" else EM_DIRECT
        missing = [c for c in (col,) if c not in header]
        if missing:
            raise BadTrace(f"trace file {str(p)!r} lacks column {missing[0]!r}")
        time_col, value_col, utc = EM_TIME, col, True
        zone_col = EM_ZONE if EM_ZONE in header else None
        est_col = EM_ESTIMATED if EM_ESTIMATED in header else None
    else:
        found_time = next((c for c in ("time", "time_utc", "datetime") if c in header), None)
        wanted = value_column if value_column is not None else PLAIN_VALUE
        if found_time is None or wanted not in header:
            raise BadTrace(
                f"trace file {str(p)!r} has columns {header!r}: it needs 'time' and "
                f"'{PLAIN_VALUE}' (or an Electricity Maps portal CSV)"
            )
        time_col, value_col = found_time, wanted
        utc = naive_is_utc or time_col == "time_utc"
        zone_col = "zone" if "zone" in header else None
        est_col = None
    if not rows:
        raise BadTrace(f"trace file {str(p)!r} has no rows")
    found_zone = (rows[0].get(zone_col) or "").strip() if zone_col else ""
    the_zone = zone or found_zone or "TRACE"
    parsed: list[tuple[datetime, float, bool]] = []
    for lineno, row in enumerate(rows, start=2):
        raw_t = (row.get(time_col) or "").strip()
        raw_v = (row.get(value_col) or "").strip()
        try:
            t = parse_trace_time(raw_t, naive_is_utc=utc)
        except ValueError:
            raise BadTrace(
                f"trace file {str(p)!r} line {lineno}: time {raw_t!r} is not an ISO time with a zone"
            ) from None
        try:
            v = float(raw_v)
        except ValueError:
            raise BadTrace(
                f"trace file {str(p)!r} line {lineno}: intensity {raw_v!r} is not a number"
            ) from None
        if not math.isfinite(v) or v < 0:
            raise BadTrace(
                f"trace file {str(p)!r} line {lineno}: intensity {raw_v!r} must be a finite number >= 0"
            )
        est = bool(est_col) and (row.get(est_col) or "").strip().lower() == "true"
        parsed.append((t, v, est))
    parsed.sort(key=lambda r: r[0])
    for (a, _, _), (b, _, _) in pairwise(parsed):
        if a == b:
            raise BadTrace(f"trace file {str(p)!r} has two rows for {a.isoformat()}: remove one")
    if len(parsed) >= 2:
        steps = [(b[0] - a[0]).total_seconds() for a, b in pairwise(parsed)]
        # the median step (statistics.median, without importing statistics for it)
        steps.sort()
        mid = len(steps) // 2
        resolution = int(steps[mid] if len(steps) % 2 else (steps[mid - 1] + steps[mid]) / 2)
    else:
        resolution = 3600
    pts: list[IntensityPoint] = []
    for i, (t, v, est) in enumerate(parsed):
        end = parsed[i + 1][0] if i + 1 < len(parsed) else t + timedelta(seconds=resolution)
        # a gap longer than the resolution is left as a gap, not stretched over
        end = min(end, t + timedelta(seconds=resolution))
        pts.append(
            IntensityPoint(
                zone=the_zone, start=t, end=end, intensity_g_per_kwh=v, kind=Kind.ACTUAL,
                provider="replay", signal=Signal.AVERAGE, estimated=est,
            )
        )
    return Trace(zone=the_zone, points=tuple(pts), resolution_s=resolution, path=str(p))


class ReplayProvider(IntensityProvider):
    """Serves one or more traces: history as actuals, the future as a perfect forecast."""

    name = "replay"
    signal = Signal.AVERAGE

    def __init__(self, traces: Sequence[Trace]) -> None:
        self._traces = {t.zone: t for t in traces}
        self._starts = {t.zone: [p.start for p in t.points] for t in traces}

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ReplayProvider:
        return cls([read_trace(path, **kwargs)])

    def zones(self) -> Sequence[str]:
        return sorted(self._traces)

    def trace(self, zone: str) -> Trace:
        try:
            return self._traces[zone]
        except KeyError:
            raise UnknownZone(
                f"the replay trace has zone(s) {', '.join(self.zones())}, not {zone!r}"
            ) from None

    def _slice(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        trace = self.trace(zone)
        starts = self._starts[zone]
        i = max(0, bisect_left(starts, start) - 1)
        out = []
        for p in trace.points[i:]:
            if p.start >= end:
                break
            if p.end > start:
                out.append(p)
        return out

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        pts = self._slice(zone, now, now + timedelta(seconds=horizon_s))
        if not pts:
            raise EmptyData(
                f"the replay trace of {zone} covers {self.trace(zone).start.isoformat()} to "
                f"{self.trace(zone).end.isoformat()}, not {now.isoformat()}"
            )
        return [
            IntensityPoint(
                zone=p.zone, start=p.start, end=p.end, intensity_g_per_kwh=p.intensity_g_per_kwh,
                kind=Kind.FORECAST, provider=self.name, signal=p.signal, issued_at=now,
                source=Source.PROVIDER, estimated=p.estimated,
            )
            for p in pts
        ]

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        return self._slice(zone, start, end)


def parse_zone_file(text: str, *, what: str = "--replay") -> tuple[str, str]:
    """``ZONE=FILE`` (``GB=gb.csv``) -> ``("GB", "gb.csv")``; :class:`BadTrace` names a
    malformed one."""
    zone, sep, path = text.partition("=")
    zone, path = zone.strip(), path.strip()
    if not sep or not zone or not path or any(c.isspace() for c in zone):
        raise BadTrace(f"{what} {text!r} should be ZONE=FILE, like GB=GB_2023_hourly.csv")
    return zone, path


def from_settings(options: Mapping[str, Any], env: Mapping[str, str]) -> IntensityProvider:
    """Build from config: ``traces`` (``ZONE=FILE`` entries, one trace per zone: what
    ``--replay`` gives), else ``trace`` (path, default the shipped GB demo trace) and
    ``zone``."""
    per_zone = [parse_zone_file(t, what="replay trace") for t in options.get("traces") or []]
    traces = []
    if options.get("trace") or not per_zone:
        traces.append(read_trace(options.get("trace") or SHIPPED_TRACE, zone=options.get("zone")))
    traces += [_zone_trace(zone, path) for zone, path in per_zone]  # a zone's last file wins
    return ReplayProvider(traces)


def _zone_trace(zone: str, path: str) -> Trace:
    """``path`` served as ``zone``; a file that names another zone (an Electricity Maps
    file's ``Zone Id``) is refused: its data would be passed off as another grid's.

    A process reads a ``--replay`` file once: the CLI checks it before anything else and
    the provider serves it later, so the trace is kept, keyed by the file's identity and
    modification (a file rewritten since is read again)."""
    try:
        st = os.stat(path)
        key: tuple[object, ...] | None = (zone, os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        key = None  # read_trace names the problem
    if key is not None and key in _ZONE_TRACES:
        return _ZONE_TRACES[key]
    trace = read_trace(path)
    if trace.zone != zone:
        if trace.zone != "TRACE":
            raise BadTrace(f"replay trace {zone}={path}: the file holds zone {trace.zone}'s data: "
                           f"give it as {trace.zone}={path}")
        # what read_trace(path, zone=zone) gives, without reading the file again
        trace = dataclasses.replace(trace, zone=zone, points=tuple(
            dataclasses.replace(q, zone=zone) for q in trace.points))
    if key is not None:
        _ZONE_TRACES[key] = trace
    return trace


_ZONE_TRACES: dict[tuple[object, ...], Trace] = {}
