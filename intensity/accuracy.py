"""Forecast accuracy: error by lead time, from stored vintages or a rolling origin.

Pure functions, no I/O. The *lead* of a forecast point is the start of the interval it
forecasts minus the time it was issued (``start - issued_at``), the convention of the
NESO forecast-tracking data (``lead_minutes``): with hourly points issued on the hour,
lead 0 is the hour just starting and lead 1 h the hour after it.

Errors are in gCO2eq/kWh (``mae_g_per_kwh``) and percent of the actual (``mape_pct``;
intervals whose actual is zero are left out of the MAPE, not of the MAE).

Two scores say more about a forecast a planner uses than its level error does:

* the **within-day shape error** (``shape_mae_g_per_kwh``, ``shape_pct``): the error left
  after removing each forecast day's mean from both the forecast and the actuals (a day is
  each 24 h of lead from the issue time: leads up to 24 h, then over 24 h up to 48 h, and
  so on, so the standard leads of 24 h and 48 h each end a day). Which start wins depends
  on the differences between hours, not on the level;
* the **planning regret** (:class:`Placement`, :class:`Regret`): a fixed job (by default
  1 kW for 3 h, due 24 h after the issue) started where the forecast's best window says,
  charged on the actuals, against the best start in hindsight. Both windows come from
  :func:`intensity.forecast.best_window`, the function ``carbonshift forecast`` answers
  with, and every mean from :func:`intensity.forecast.window_mean_g_per_kwh`.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    #: within-day shape error (see the module docstring); ``nan`` where no forecast day
    #: had enough points to take its mean
    shape_mae_g_per_kwh: float = math.nan
    shape_pct: float = math.nan

    @property
    def lead_h(self) -> float:
        return self.lead_s / 3600


class ErrorAccumulator:
    """Collects (forecast, actual) pairs by lead and summarises them."""

    def __init__(self) -> None:
        self._abs: dict[int, list[float]] = defaultdict(list)
        self._pct: dict[int, list[float]] = defaultdict(list)
        self._err: dict[int, list[float]] = defaultdict(list)
        self._shape: dict[int, list[float]] = defaultdict(list)
        self._shape_pct: dict[int, list[float]] = defaultdict(list)

    def add(self, lead_s: int, forecast: float, actual: float) -> None:
        err = forecast - actual
        self._abs[lead_s].append(abs(err))
        self._err[lead_s].append(err)
        if actual != 0:
            self._pct[lead_s].append(abs(err) / abs(actual) * 100.0)

    def add_issue(self, pairs: Sequence[tuple[float, float, float]], bucket_s: int = 3600,
                  leads_s: Sequence[int] | None = None) -> None:
        """One issue's ``(lead_s, forecast, actual)`` pairs (exact leads): each is added
        at its lead bucket (only ``leads_s`` when given), with its shape error where its
        forecast day has at least :data:`SHAPE_MIN_POINTS` pairs."""
        wanted = set(leads_s) if leads_s is not None else None
        days: dict[int, list[tuple[float, float, float]]] = defaultdict(list)
        for lead, f, a in pairs:
            days[max(0, math.ceil(lead / SHAPE_DAY_S) - 1)].append((lead, f, a))
        for day in days.values():
            shaped = len(day) >= SHAPE_MIN_POINTS
            f_mean = math.fsum(f for _, f, _ in day) / len(day)
            a_mean = math.fsum(a for _, _, a in day) / len(day)
            for lead, f, a in day:
                b = lead_bucket_s(lead, bucket_s)
                if b < 0 or (wanted is not None and b not in wanted):
                    continue
                self.add(b, f, a)
                if shaped:
                    e = abs((f - f_mean) - (a - a_mean))
                    self._shape[b].append(e)
                    if a != 0:
                        self._shape_pct[b].append(e / abs(a) * 100.0)

    def result(self) -> list[LeadError]:
        out = []
        for lead in sorted(self._abs):
            a = self._abs[lead]
            p = self._pct[lead]
            sh, shp = self._shape[lead], self._shape_pct[lead]
            out.append(
                LeadError(
                    lead_s=lead,
                    n=len(a),
                    mae_g_per_kwh=sum(a) / len(a),
                    mape_pct=sum(p) / len(p) if p else math.nan,
                    bias_g_per_kwh=sum(self._err[lead]) / len(a),
                    shape_mae_g_per_kwh=sum(sh) / len(sh) if sh else math.nan,
                    shape_pct=sum(shp) / len(shp) if shp else math.nan,
                )
            )
        return out


#: A forecast day (for the shape error) is each this much of lead from the issue time.
SHAPE_DAY_S = 86400
#: A forecast day needs at least this many scored points for its mean to be taken.
SHAPE_MIN_POINTS = 6
#: The job the planning regret is scored on: this long, at this power, due this long after
#: the forecast's issue time.
REGRET_DURATION_S = 3 * 3600
REGRET_POWER_W = 1000.0
REGRET_WINDOW_S = 24 * 3600


@dataclass(frozen=True)
class Placement:
    """One job placed on a forecast and charged on the actuals (grams)."""

    run_now_g: float  #: started at the issue time
    chosen_g: float  #: started where the forecast's best window says
    best_g: float  #: started at the best start in hindsight

    @property
    def regret_g(self) -> float:
        return self.chosen_g - self.best_g

    @property
    def saved_g(self) -> float:
        return self.run_now_g - self.chosen_g

    @property
    def oracle_saved_g(self) -> float:
        return self.run_now_g - self.best_g


def place_job(
    forecast: Sequence[IntensityPoint], actuals: Sequence[IntensityPoint], now: datetime,
    *, duration_s: int = REGRET_DURATION_S, window_s: int = REGRET_WINDOW_S,
    power_w: float = REGRET_POWER_W,
) -> Placement | None:
    """Start a job of ``duration_s`` at ``power_w`` due ``window_s`` after ``now`` where the
    ``forecast``'s best window says, and charge it on the ``actuals`` beside starting now and
    the best start in hindsight; ``None`` unless the actuals cover ``[now, now + window_s)``
    without a gap and the forecast has points there."""
    from intensity.forecast import best_window, window_mean_g_per_kwh

    end = now + timedelta(seconds=window_s)
    acts = [a for a in actuals if a.end > now and a.start < end]
    fcs = [f for f in forecast if f.end > now and f.start < end]
    if not acts or not fcs or duration_s > window_s:
        return None
    acts.sort(key=lambda p: p.start)
    if acts[0].start > now or acts[-1].end < end or any(
            b.start > a.end for a, b in itertools.pairwise(acts)):
        return None
    kwh = power_w / 1000.0 * duration_s / 3600.0
    chosen = best_window(fcs, duration_s, now, end).start
    best = best_window(acts, duration_s, now, end)
    run = timedelta(seconds=duration_s)
    return Placement(
        run_now_g=window_mean_g_per_kwh(acts, now, now + run) * kwh,
        chosen_g=window_mean_g_per_kwh(acts, chosen, chosen + run) * kwh,
        best_g=best.mean_g_per_kwh * kwh,
    )


@dataclass(frozen=True)
class Regret:
    """Planning regret over many placements of the same job."""

    n: int
    regret_g: float  #: mean grams lost per placement against the best start in hindsight
    saved_g: float  #: total grams saved against starting at once
    oracle_saved_g: float  #: total grams the best start in hindsight saves

    @property
    def share_of_oracle(self) -> float:
        """Grams saved over grams the hindsight-best start saves (``nan`` if it saves none)."""
        return self.saved_g / self.oracle_saved_g if self.oracle_saved_g > 0 else math.nan


def regret_of(placements: Iterable[Placement]) -> Regret:
    """:class:`Regret` of ``placements`` (all zero for none)."""
    ps = list(placements)
    return Regret(
        n=len(ps),
        regret_g=math.fsum(p.regret_g for p in ps) / len(ps) if ps else 0.0,
        saved_g=math.fsum(p.saved_g for p in ps),
        oracle_saved_g=math.fsum(p.oracle_saved_g for p in ps),
    )


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


def _by_issue(forecasts: Iterable[IntensityPoint]) -> dict[datetime, list[IntensityPoint]]:
    """Forecast points with an issue time, grouped by it (one vintage each)."""
    out: dict[datetime, list[IntensityPoint]] = defaultdict(list)
    for f in forecasts:
        if f.kind is Kind.FORECAST and f.issued_at is not None:
            out[f.issued_at].append(f)
    return out


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
    rounded to the nearest ``bucket_s``, and only ``leads_s`` are kept when given. The
    shape error takes each vintage's days (see the module docstring) over all its
    covered points. Points of several zones may be mixed only if ``actuals`` are of one
    zone: pass one zone at a time.
    """
    acts = _Actuals(a for a in actuals if a.kind is Kind.ACTUAL)
    acc = ErrorAccumulator()
    for issued, pts in sorted(_by_issue(forecasts).items()):
        pairs = []
        for f in pts:
            actual = acts.over(f.start, f.end)
            if actual is not None:
                pairs.append(((f.start - issued).total_seconds(), f.intensity_g_per_kwh, actual))
        acc.add_issue(pairs, bucket_s, leads_s)
    return acc.result()


def regret_of_vintages(
    forecasts: Iterable[IntensityPoint], actuals: Iterable[IntensityPoint], **job: Any
) -> Regret:
    """Planning regret of stored vintages: the job of :func:`place_job` (``job`` overrides
    its duration, window and power) placed at each vintage's issue time on that vintage."""
    acts = sorted((a for a in actuals if a.kind is Kind.ACTUAL), key=lambda p: p.start)
    placed = (place_job(pts, acts, issued, **job) for issued, pts in sorted(_by_issue(forecasts).items()))
    return regret_of(p for p in placed if p is not None)


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


@dataclass(frozen=True)
class Scores:
    """One forecaster's rolling-origin scores: errors by lead, planning regret."""

    leads: list[LeadError]
    regret: Regret


def rolling_origin(
    series: Sequence[IntensityPoint],
    forecasters: Mapping[str, Forecaster],
    **kwargs: Any,
) -> dict[str, list[LeadError]]:
    """Errors by lead of :func:`rolling_scores` (same arguments)."""
    return {name: s.leads for name, s in rolling_scores(series, forecasters, **kwargs).items()}


def rolling_scores(
    series: Sequence[IntensityPoint],
    forecasters: Mapping[str, Forecaster],
    *,
    leads_s: Sequence[int] = STANDARD_LEADS_S,
    origin_every_s: int = 7 * 3600,
    warmup_s: int = 28 * 86400,
    history_s: int = 28 * 86400,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Scores]:
    """Rolling-origin evaluation of ``forecasters`` on a regular actual ``series``.

    Origins are point starts, ``origin_every_s`` apart, from ``warmup_s`` after the
    series' start (or ``start``) until the longest lead runs off the end (or ``end``).
    At each origin every forecaster sees only the ``history_s`` of points that ended by
    then, and its forecast at each lead is compared with the actual point starting
    ``lead`` after the origin (the shape error over every lead of the forecast day); the
    job of :func:`place_job` is placed on the same forecast. Returns each forecaster's
    :class:`Scores` by name.
    """
    pts = sorted(series, key=lambda p: p.start)
    if not pts:
        return {name: Scores([], regret_of([])) for name in forecasters}
    starts = [p.start for p in pts]
    by_start = {p.start: p for p in pts}
    zone = pts[0].zone
    horizon_s = max(max(leads_s), REGRET_WINDOW_S) + int(pts[-1].duration_s)
    first = (start or pts[0].start) + timedelta(seconds=warmup_s)
    last = (end or pts[-1].end) - timedelta(seconds=horizon_s)
    accs = {name: ErrorAccumulator() for name in forecasters}
    placed: dict[str, list[Placement]] = {name: [] for name in forecasters}
    day_s = SHAPE_DAY_S * math.ceil(max(leads_s) / SHAPE_DAY_S)
    i = bisect_left(starts, first)
    while i < len(pts) and pts[i].start <= last:
        origin = pts[i].start
        lo = bisect_left(starts, origin - timedelta(seconds=history_s))
        history = pts[lo:i]
        ahead = pts[i:bisect_left(starts, origin + timedelta(seconds=horizon_s))]
        for name, fc in forecasters.items():
            got = fc(zone, history, origin, horizon_s)
            pairs = []
            for q in got:
                target = by_start.get(q.start)
                lead = (q.start - origin).total_seconds()
                if target is not None and 0 <= lead <= day_s:
                    pairs.append((lead, q.intensity_g_per_kwh, target.intensity_g_per_kwh))
            accs[name].add_issue(pairs, int(pts[-1].duration_s), leads_s)
            p = place_job(got, ahead, origin)
            if p is not None:
                placed[name].append(p)
        nxt = bisect_left(starts, origin + timedelta(seconds=origin_every_s))
        i = max(nxt, i + 1)
    return {name: Scores(acc.result(), regret_of(placed[name])) for name, acc in accs.items()}
