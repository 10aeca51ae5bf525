"""Planning under forecast uncertainty: a forecast source's own error by lead time.

An :class:`ErrorModel` is fitted on ``(lead_s, forecast, actual)`` pairs of one source
(stored vintages against the actuals that followed, :func:`pairs_from_vintages`) and only
on pairs whose actual was known by the decision time, so a plan never sees its future. It
keeps, per lead bucket (:data:`LEAD_EDGES_H`), the mean and the quantiles of the **ratio**
``actual / forecast``: errors of intensity forecasts scale with the level, and a ratio
turns a point forecast into a planning value by one multiplication.

:func:`adjust` gives the curve to plan on, by mode (:data:`MODES`):

* ``off``: the point forecast unchanged;
* ``bias``: the expected intensity, ``forecast x mean ratio`` at the point's lead, so a
  window is chosen for its expected grams (a source that runs low at long leads no longer
  makes distant windows look cleaner than they turn out);
* ``quantile``: ``forecast x`` the ``q``-quantile of the ratio at the point's lead (default
  :data:`DEFAULT_Q`): the spread grows with lead, so a distant window must beat a near one
  by more than its extra uncertainty.

Pure: no I/O, no scheduler imports; numpy is not needed.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from intensity.model import IntensityPoint, Kind

#: The planning curves by uncertainty mode (``[intensity] forecast_uncertainty``).
MODES = ("off", "bias", "quantile")
#: Lower edges of the lead buckets, hours (the last one is open-ended).
LEAD_EDGES_H: tuple[float, ...] = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 36)
#: The quantiles an :class:`ErrorModel` keeps.
QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
#: The quantile the ``quantile`` mode plans on.
DEFAULT_Q = 0.75
#: A bucket needs this many pairs to have its own statistics; one with fewer takes those of
#: the nearest bucket that has enough (nearer leads first).
MIN_PAIRS = 8


@dataclass(frozen=True)
class LeadBucket:
    """Error statistics of the pairs whose lead falls in ``[lo_s, next bucket's lo_s)``."""

    lo_s: int
    n: int
    mean_ratio: float  #: mean of ``actual / forecast``
    quantiles: tuple[tuple[float, float], ...]  #: ``(q, ratio)`` pairs, q ascending

    @property
    def bias_pct(self) -> float:
        """Mean relative error ``actual / forecast - 1``, in percent."""
        return (self.mean_ratio - 1.0) * 100.0

    def ratio_at(self, q: float) -> float:
        """The ``q``-quantile of the ratio, linear between the kept quantiles (clamped)."""
        qs = self.quantiles
        if q <= qs[0][0]:
            return qs[0][1]
        for (q0, r0), (q1, r1) in itertools.pairwise(qs):
            if q <= q1:
                return r0 + (r1 - r0) * (q - q0) / (q1 - q0)
        return qs[-1][1]


@dataclass(frozen=True)
class ErrorModel:
    """A source's error by lead: one :class:`LeadBucket` per populated bucket."""

    buckets: tuple[LeadBucket, ...]

    @property
    def n(self) -> int:
        return sum(b.n for b in self.buckets)

    def bucket_at(self, lead_s: float) -> LeadBucket | None:
        """The bucket whose statistics apply at ``lead_s`` (negative leads: the first)."""
        if not self.buckets:
            return None
        i = bisect_right([b.lo_s for b in self.buckets], lead_s) - 1
        return self.buckets[max(0, i)]

    def factor(self, lead_s: float, mode: str, q: float = DEFAULT_Q) -> float:
        """What a point forecast at ``lead_s`` is multiplied by in ``mode``."""
        check_mode(mode)
        b = self.bucket_at(lead_s)
        if mode == "off" or b is None:
            return 1.0
        return b.mean_ratio if mode == "bias" else b.ratio_at(q)


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else ``ValueError`` naming them."""
    if mode not in MODES:
        raise ValueError(f"unknown forecast uncertainty mode {mode!r}: give one of {', '.join(MODES)}")
    return mode


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile of ascending ``sorted_values``, linear between order statistics
    (numpy's default, ``method="linear"``)."""
    if not sorted_values:
        raise ValueError("no values")
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def fit_error_model(
    pairs: Iterable[tuple[float, float, float]],
    *,
    edges_h: Sequence[float] = LEAD_EDGES_H,
    quantiles: Sequence[float] = QUANTILES,
    min_pairs: int = MIN_PAIRS,
) -> ErrorModel:
    """An :class:`ErrorModel` from ``(lead_s, forecast, actual)`` pairs.

    Pairs with a forecast at or below zero, a negative lead or a non-finite value are left
    out. A bucket with fewer than ``min_pairs`` pairs takes the statistics of the nearest
    bucket that has enough (the nearer lead on a tie); with no such bucket the model is
    empty and changes nothing."""
    edges_s = [round(h * 3600) for h in edges_h]
    ratios: list[list[float]] = [[] for _ in edges_s]
    for lead_s, forecast, actual in pairs:
        if lead_s < 0 or not (forecast > 0 and math.isfinite(forecast) and math.isfinite(actual)):
            continue
        ratios[bisect_right(edges_s, lead_s) - 1].append(actual / forecast)
    own: dict[int, LeadBucket] = {}
    for i, rs in enumerate(ratios):
        if len(rs) >= min_pairs:
            rs.sort()
            own[i] = LeadBucket(edges_s[i], len(rs), math.fsum(rs) / len(rs),
                                tuple((q, quantile(rs, q)) for q in sorted(quantiles)))
    if not own:
        return ErrorModel(())
    out = []
    for i, lo in enumerate(edges_s):
        j = min(own, key=lambda k: (abs(k - i), k))
        out.append(replace(own[j], lo_s=lo) if j != i else own[i])
    return ErrorModel(tuple(out))


def pairs_from_vintages(
    forecasts: Iterable[IntensityPoint], actuals: Iterable[IntensityPoint], known_by: datetime,
) -> list[tuple[float, float, float]]:
    """``(lead_s, forecast, actual)`` of every forecast point issued before ``known_by``
    whose interval the ``actuals`` cover fully and had ended by then (lead: the point's
    start minus its ``issued_at``; the actual: the time-weighted mean over the interval)."""
    from intensity.accuracy import _Actuals

    acts = _Actuals(a for a in actuals if a.kind is Kind.ACTUAL and a.end <= known_by)
    out = []
    for f in forecasts:
        if f.kind is not Kind.FORECAST or f.issued_at is None or f.issued_at >= known_by:
            continue
        if f.end > known_by:
            continue
        actual = acts.over(f.start, f.end)
        if actual is not None:
            out.append(((f.start - f.issued_at).total_seconds(), f.intensity_g_per_kwh, actual))
    return out


def adjust(
    values: Sequence[float], leads_s: Sequence[float], model: ErrorModel | None, mode: str,
    *, q: float = DEFAULT_Q,
) -> list[float]:
    """``values`` (a point forecast at ``leads_s``) as the curve to plan on in ``mode``."""
    check_mode(mode)
    if model is None or mode == "off":
        return list(values)
    return [v * model.factor(lead, mode, q) for v, lead in zip(values, leads_s, strict=True)]


def adjust_points(
    points: Sequence[IntensityPoint], model: ErrorModel | None, mode: str, now: datetime,
    *, q: float = DEFAULT_Q,
) -> list[IntensityPoint]:
    """:func:`adjust` on forecast points, the lead of each its start minus ``now``; actuals
    (already known) and every point when the model is empty or the mode ``off`` are kept
    as they are."""
    check_mode(mode)
    if model is None or not model.buckets or mode == "off":
        return list(points)
    return [
        p if p.kind is not Kind.FORECAST else replace(
            p, intensity_g_per_kwh=p.intensity_g_per_kwh
            * model.factor((p.start - now).total_seconds(), mode, q))
        for p in points
    ]


# -- the local forecaster's own error, from a back-test on the history it is given ----------

#: ``forecaster(zone, history, now, horizon_s) -> points`` (the local forecaster's shape).
Forecaster = Callable[[str, Sequence[IntensityPoint], datetime, int], list[IntensityPoint]]
#: The back-test behind the local forecaster's error model: origins this far back ...
BACKTEST_DAYS = 28
#: ... this far apart, each forecasting this far ahead.
BACKTEST_EVERY_S = 12 * 3600
BACKTEST_HORIZON_S = 25 * 3600


def backtest_pairs(
    forecaster: Forecaster, zone: str, history: Sequence[IntensityPoint], now: datetime,
    *, days: int = BACKTEST_DAYS, every_s: int = BACKTEST_EVERY_S,
    horizon_s: int = BACKTEST_HORIZON_S,
) -> list[tuple[float, float, float]]:
    """``(lead_s, forecast, actual)`` pairs of ``forecaster`` re-run at past origins (every
    ``every_s`` on the hour over the last ``days`` whose ``horizon_s`` had ended by ``now``),
    each seeing only the ``history`` that had ended by its origin, against that history."""
    acts = sorted((p for p in history if p.kind is Kind.ACTUAL and p.end <= now), key=lambda p: p.end)
    ends = [p.end for p in acts]
    last = now - timedelta(seconds=horizon_s)
    origin = (last - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    out: list[tuple[float, float, float]] = []
    while origin <= last:
        seen = acts[:bisect_right(ends, origin)]
        if seen:
            fc = forecaster(zone, seen, origin, horizon_s)
            out.extend(pairs_from_vintages([replace(p, issued_at=origin) for p in fc], acts, now))
        origin += timedelta(seconds=every_s)
    return out


def with_uncertainty(
    local: Forecaster, mode: str, *, q: float = DEFAULT_Q, backtest: Forecaster | None = None,
) -> Forecaster:
    """``local`` planning on the curve of ``mode`` (:func:`adjust_points`), its error model
    fitted by :func:`backtest_pairs` of ``backtest`` (default ``local``) on the history each
    call is given, once per zone and UTC day in this process. ``off`` gives ``local``."""
    check_mode(mode)
    if mode == "off":
        return local
    models: dict[tuple[str, int], ErrorModel] = {}

    def planned(zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int) -> list[IntensityPoint]:
        pts = local(zone, history, now, horizon_s)
        if not pts:
            return pts
        key = (zone, int(now.timestamp()) // 86400)
        if key not in models:
            for old in [k for k in models if k[1] != key[1]]:  # only today's are kept
                del models[old]
            models[key] = fit_error_model(backtest_pairs(backtest or local, zone, history, now))
        return adjust_points(pts, models[key], mode, now, q=q)

    return planned
