"""Forecast accuracy: error by lead time, from stored vintages or a rolling origin.

Pure functions, no I/O. The *lead* of a forecast point is the start of the interval it
forecasts minus the time it was issued (``start - issued_at``), the convention of the
NESO forecast-tracking data (``lead_minutes``): with hourly points issued on the hour,
lead 0 is the hour just starting and lead 1 h the hour after it.

Errors are in gCO2eq/kWh (``mae_g_per_kwh``) and percent of the actual (``mape_pct``;
intervals whose actual is zero are left out of the MAPE, not of the MAE).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from intensity.model import IntensityPoint, Kind, Source

#: ``forecaster(zone, history, now, horizon_s) -> points`` (the local forecaster's shape).
Forecaster = Callable[[str, Sequence[IntensityPoint], datetime, int], list[IntensityPoint]]

#: The leads the issue asks about: 1 h, 6 h, 24 h, 48 h.
STANDARD_LEADS_S: tuple[int, ...] = (3600, 6 * 3600, 24 * 3600, 48 * 3600)


@dataclass(frozen=True)
class LeadError:
    """Forecast error at one lead time."""

    lead_s: int
    n: int
    mae_g_per_kwh: float
    mape_pct: float
    bias_g_per_kwh: float

    @property
    def lead_h(self) -> float:
        return self.lead_s / 3600


class ErrorAccumulator:
    """Collects (forecast, actual) pairs by lead and summarises them."""

    def __init__(self) -> None:
        self._abs: dict[int, list[float]] = defaultdict(list)
        self._pct: dict[int, list[float]] = defaultdict(list)
        self._err: dict[int, list[float]] = defaultdict(list)

    def add(self, lead_s: int, forecast: float, actual: float) -> None:
        err = forecast - actual
        self._abs[lead_s].append(abs(err))
        self._err[lead_s].append(err)
        if actual != 0:
            self._pct[lead_s].append(abs(err) / abs(actual) * 100.0)

    def result(self) -> list[LeadError]:
        out = []
        for lead in sorted(self._abs):
            a = self._abs[lead]
            p = self._pct[lead]
            out.append(
                LeadError(
                    lead_s=lead,
                    n=len(a),
                    mae_g_per_kwh=sum(a) / len(a),
                    mape_pct=sum(p) / len(p) if p else math.nan,
                    bias_g_per_kwh=sum(self._err[lead]) / len(a),
                )
            )
        return out


def mae(forecast: Sequence[float], actual: Sequence[float]) -> float:
    """Mean absolute error of paired values (``nan`` for no pairs)."""
    if len(forecast) != len(actual):
        raise ValueError("forecast and actual differ in length")
    if not forecast:
        return math.nan
    return sum(abs(f - a) for f, a in zip(forecast, actual, strict=True)) / len(forecast)


def mape(forecast: Sequence[float], actual: Sequence[float]) -> float:
    """Mean absolute percentage error over pairs whose actual is not zero."""
    if len(forecast) != len(actual):
        raise ValueError("forecast and actual differ in length")
    pcts = [abs(f - a) / abs(a) * 100.0 for f, a in zip(forecast, actual, strict=True) if a != 0]
    return sum(pcts) / len(pcts) if pcts else math.nan


def lead_bucket_s(lead_s: float, bucket_s: int) -> int:
    """``lead_s`` rounded to the nearest multiple of ``bucket_s``."""
    return round(lead_s / bucket_s) * bucket_s


class _Actuals:
    """Actual points of one zone, looked up by the interval they cover."""

    def __init__(self, actuals: Iterable[IntensityPoint]) -> None:
        pts = sorted(actuals, key=lambda p: p.start)
        self.pts = pts
        self.starts = [p.start for p in pts]

    def over(self, start: datetime, end: datetime) -> float | None:
        """Mean actual over ``[start, end)``, or ``None`` unless fully covered."""
        i = max(0, bisect_right(self.starts, start) - 1)
        covered = 0.0
        acc = 0.0
        for p in self.pts[i:]:
            if p.start >= end:
                break
            lo, hi = max(p.start, start), min(p.end, end)
            if hi > lo:
                s = (hi - lo).total_seconds()
                covered += s
                acc += s * p.intensity_g_per_kwh
        span = (end - start).total_seconds()
        if span <= 0 or covered < span - 1e-6:
            return None
        return acc / covered


def errors_by_lead(
    forecasts: Iterable[IntensityPoint],
    actuals: Iterable[IntensityPoint],
    *,
    bucket_s: int = 3600,
    leads_s: Sequence[int] | None = None,
) -> list[LeadError]:
    """Error of stored forecast vintages against actuals, by lead time.

    Each forecast point (with ``issued_at``) is compared with the time-weighted mean of
    the actuals over its interval (skipped unless the actuals cover it fully); leads are
    rounded to the nearest ``bucket_s``, and only ``leads_s`` are kept when given.
    Points of several zones may be mixed only if ``actuals`` are of one zone: pass one
    zone at a time.
    """
    acts = _Actuals(a for a in actuals if a.kind is Kind.ACTUAL)
    acc = ErrorAccumulator()
    wanted = set(leads_s) if leads_s is not None else None
    for f in forecasts:
        if f.kind is not Kind.FORECAST or f.issued_at is None:
            continue
        lead = lead_bucket_s((f.start - f.issued_at).total_seconds(), bucket_s)
        if lead < 0 or (wanted is not None and lead not in wanted):
            continue
        actual = acts.over(f.start, f.end)
        if actual is None:
            continue
        acc.add(lead, f.intensity_g_per_kwh, actual)
    return acc.result()


# -- baselines, in the forecaster's shape --------------------------------------------------


def _grid(history: Sequence[IntensityPoint], now: datetime, horizon_s: int) -> tuple[float, list[datetime]]:
    step = history[-1].duration_s
    first = history[-1].end
    while first + timedelta(seconds=step) <= now:
        first += timedelta(seconds=step)
    starts = []
    t = first
    end = now + timedelta(seconds=horizon_s)
    while t < end:
        starts.append(t)
        t += timedelta(seconds=step)
    return step, starts


def _baseline_point(zone: str, p: IntensityPoint, start: datetime, step: float, value: float,
                    now: datetime, name: str) -> IntensityPoint:
    return IntensityPoint(
        zone=zone, start=start, end=start + timedelta(seconds=step), intensity_g_per_kwh=value,
        kind=Kind.FORECAST, provider=name, signal=p.signal, issued_at=now, source=Source.LOCAL,
        estimated=True,
    )


def persistence(
    zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int
) -> list[IntensityPoint]:
    """Baseline: the last observed value, flat, over the horizon."""
    past = [p for p in history if p.end <= now]
    if not past:
        return []
    last = past[-1]
    step, starts = _grid(past, now, horizon_s)
    return [
        _baseline_point(zone, last, s, step, last.intensity_g_per_kwh, now, "persistence")
        for s in starts
    ]


def same_hour_yesterday(
    zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int
) -> list[IntensityPoint]:
    """Baseline: the value at the same time of day on the latest day already observed
    (one day back for targets within a day, two days back beyond, and so on)."""
    past = [p for p in history if p.end <= now]
    if not past:
        return []
    by_start = {p.start: p for p in past}
    step, starts = _grid(past, now, horizon_s)
    out = []
    last = past[-1]
    for s in starts:
        k = 1
        src = None
        while k <= 7:
            cand = s - timedelta(days=k)
            if cand + timedelta(seconds=step) <= now:
                src = by_start.get(cand)
                break
            k += 1
        value = src.intensity_g_per_kwh if src is not None else last.intensity_g_per_kwh
        out.append(_baseline_point(zone, last, s, step, value, now, "same-hour-yesterday"))
    return out


BASELINES: Mapping[str, Forecaster] = {
    "persistence": persistence,
    "same-hour-yesterday": same_hour_yesterday,
}


def rolling_origin(
    series: Sequence[IntensityPoint],
    forecasters: Mapping[str, Forecaster],
    *,
    leads_s: Sequence[int] = STANDARD_LEADS_S,
    origin_every_s: int = 7 * 3600,
    warmup_s: int = 28 * 86400,
    history_s: int = 28 * 86400,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, list[LeadError]]:
    """Rolling-origin evaluation of ``forecasters`` on a regular actual ``series``.

    Origins are point starts, ``origin_every_s`` apart, from ``warmup_s`` after the
    series' start (or ``start``) until the longest lead runs off the end (or ``end``).
    At each origin every forecaster sees only the ``history_s`` of points that ended by
    then, and its forecast at each lead is compared with the actual point starting
    ``lead`` after the origin. Returns errors by lead for each forecaster's name.
    """
    pts = sorted(series, key=lambda p: p.start)
    if not pts:
        return {name: [] for name in forecasters}
    starts = [p.start for p in pts]
    by_start = {p.start: p for p in pts}
    zone = pts[0].zone
    horizon_s = max(leads_s) + int(pts[-1].duration_s)
    first = (start or pts[0].start) + timedelta(seconds=warmup_s)
    last = (end or pts[-1].end) - timedelta(seconds=horizon_s)
    accs = {name: ErrorAccumulator() for name in forecasters}
    i = bisect_left(starts, first)
    while i < len(pts) and pts[i].start <= last:
        origin = pts[i].start
        lo = bisect_left(starts, origin - timedelta(seconds=history_s))
        history = pts[lo:i]
        targets = [(lead, by_start.get(origin + timedelta(seconds=lead))) for lead in leads_s]
        for name, fc in forecasters.items():
            got = {q.start: q.intensity_g_per_kwh for q in fc(zone, history, origin, horizon_s)}
            for lead, target in targets:
                if target is None or target.start not in got:
                    continue
                accs[name].add(lead, got[target.start], target.intensity_g_per_kwh)
        nxt = bisect_left(starts, origin + timedelta(seconds=origin_every_s))
        i = max(nxt, i + 1)
    return {name: acc.result() for name, acc in accs.items()}
