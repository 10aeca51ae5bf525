"""The ONE integral of a forecast over a window, and the best-window arithmetic on it.

A forecast is a piecewise-constant function of time. :class:`Series` holds it as a step
function of epoch seconds: ``F(t)`` is the integral of intensity from the first boundary
to ``t``; time before the first point, after the last and in gaps counts at the
forecast's time-weighted mean (the fill). Two number types share the same steps:

* **exact integers** (:meth:`Series.cost`, :meth:`Series.costs`): intensities resolved to
  0.001 gCO2/kWh (milli-g/kWh) and times to whole seconds, so integrals are integers and
  equal windows tie exactly. Every *choice* of a window is made on these: the planner,
  ``carbonshift forecast ZONE`` and ``wait-window`` (one arithmetic, one answer on
  near-ties).
* **floats** (:meth:`Series.integral`, :meth:`Series.mean_g_per_kwh`): the unrounded
  integral over any ``[a, b)``, for the means reported to people (window means, the
  forecaster's checks, a live projection).

Best windows. The cost of a start ``s`` for a job of ``d`` seconds is piecewise linear in
``s`` with breakpoints where ``s`` or ``s + d`` crosses a boundary, so the earliest least
start over every second of ``[earliest, latest]`` is one of ``earliest``, ``latest``, a
boundary or a boundary minus ``d``. :func:`best_start` evaluates those one by one (the
plain reference); :func:`best_starts` does it for many windows of one duration at once
(numpy: :func:`candidates` and their costs from the cumulative integral, and the earliest
least of each window's range from a sparse table, :func:`earliest_least`). The property
tests compare the two, and both against brute force.

numpy is imported on first use (:func:`np`): a short CLI command choosing one window
never loads it. Nothing is kept between calls but what a :class:`Series` object holds.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intensity.model import Forecast, IntensityPoint

MILLI = 1000  # intensity resolution of the exact integrals: 1/1000 gCO2/kWh
#: milli-g/kWh values up to this keep every integral of a planning horizon inside int64
INT64_SAFE_MILLI = 1 << 28

__all__ = [
    "MILLI",
    "Candidates",
    "Series",
    "Window",
    "best_start",
    "best_starts",
    "best_starts_and_now",
    "best_window",
    "candidates",
    "earliest_least",
    "np",
    "window_mean_g_per_kwh",
]


def np():  # type: ignore[no-untyped-def]
    """numpy, imported on first use."""
    import numpy

    return numpy


class Series:
    """A zone's forecast as a step function of epoch seconds (see the module docstring).

    ``b`` are the boundaries (ascending, whole seconds), ``v`` the milli-g/kWh value of
    each step ``[b[i], b[i+1])`` (gaps filled), ``fill`` the value outside them, ``prefix``
    the exact integral up to each boundary.
    """

    __slots__ = ("_arrays", "_bx", "_floats", "_px", "_raw", "_vx", "b", "fill",
                 "fill_g_per_kwh", "prefix", "v")

    def __init__(self, forecast: Forecast) -> None:
        pts = forecast.points
        b: list[int] = []
        v: list[int] = []
        raw: list[float] = []  # the unrounded value of each step, for the float integral
        mean = forecast.mean_g_per_kwh() if pts else 0.0
        self.fill_g_per_kwh = mean if math.isfinite(mean) else 0.0
        self.fill = round(mean * MILLI) if math.isfinite(mean) else 0
        for p in pts:
            s = int(p.start.timestamp())
            e = int(p.end.timestamp())
            if e <= s:
                continue
            if b and s > b[-1]:  # a gap: fill with the mean
                v.append(self.fill)
                raw.append(self.fill_g_per_kwh)
                b.append(s)
            elif b and s < b[-1]:
                s = b[-1]
                if e <= s:
                    continue
            if not b:
                b.append(s)
            v.append(round(p.intensity_g_per_kwh * MILLI))
            raw.append(p.intensity_g_per_kwh)
            b.append(e)
        self.b = b
        self.v = v
        self.prefix = [0, *itertools.accumulate(val * (b[i + 1] - b[i]) for i, val in enumerate(v))]
        # the same step function indexed by ``j = bisect_right(b, t)``, with the fill before
        # ``b[0]`` and after ``b[-1]``: ``F(t) = _px[j] + _vx[j] * (t - _bx[j])``, no branches
        if b:
            self._bx = [b[0], *b]
            self._vx = [self.fill, *v, self.fill]
            self._px = [0, *self.prefix]
        else:  # F(t) = fill * t
            self._bx, self._vx, self._px = [0], [self.fill], [0]
        self._raw = raw  # the unrounded step values, for the float integral only
        self._floats: tuple[list[float], list[float]] | None = None
        self._arrays: tuple[Any, Any, Any, Any] | None = None

    @classmethod
    def of_points(cls, points: Sequence[IntensityPoint]) -> Series:
        """The series of ``points`` (any order; ``ValueError`` when they overlap)."""
        from intensity.model import Forecast

        zone = points[0].zone if points else ""
        return cls(Forecast(zone, tuple(points)))

    # -- exact integers ---------------------------------------------------------------
    def F(self, t: int) -> int:
        j = bisect_right(self.b, t)
        return self._px[j] + self._vx[j] * (t - self._bx[j])

    def cost(self, start: int, duration_s: int) -> int:
        """Integral of intensity over ``[start, start + duration_s)`` in milli-g/kWh x s."""
        return self.F(start + duration_s) - self.F(start)

    def cost_over(self, intervals: Iterable[tuple[int, int]]) -> int:
        """The integral over each ``(start, end)`` of ``intervals``, summed (a split run)."""
        return sum(self.F(b) - self.F(a) for a, b in intervals)

    @property
    def exact_in_int64(self) -> bool:
        """Whether every integral over a planning horizon fits numpy's int64."""
        return max(map(abs, self._vx)) < INT64_SAFE_MILLI

    def _np_arrays(self) -> tuple[Any, Any, Any, Any]:
        if self._arrays is None:
            n = np()
            dtype = n.int64 if self.exact_in_int64 else object  # object: exact Python ints
            self._arrays = (n.array(self.b, dtype=n.int64), n.array(self._px, dtype=dtype),
                            n.array(self._vx, dtype=dtype), n.array(self._bx, dtype=n.int64))
        return self._arrays

    def costs(self, ts: Any, duration_s: int) -> Any:
        """``cost(t, duration_s)`` for each of the times ``ts``, as a numpy array."""
        n = np()
        b, px, vx, bx = self._np_arrays()
        t0 = n.asarray(ts, dtype=n.int64)
        t1 = t0 + duration_s
        i = n.searchsorted(b, t0, side="right")
        j = n.searchsorted(b, t1, side="right")
        return (px[j] + vx[j] * (t1 - bx[j])) - (px[i] + vx[i] * (t0 - bx[i]))

    # -- floats -----------------------------------------------------------------------
    def integral(self, a: float, b: float) -> float:
        """The unrounded integral (g/kWh x s) over ``[a, b)``, epoch seconds."""
        if self._floats is None:
            vals = [self.fill_g_per_kwh, *self._raw, self.fill_g_per_kwh]
            bx = self._bx
            acc = [0.0, 0.0]
            for i, val in enumerate(self._raw):
                acc.append(acc[-1] + val * (bx[i + 2] - bx[i + 1]))
            self._floats = (vals, acc)
        vals, acc = self._floats

        def upto(t: float) -> float:
            j = bisect_right(self.b, t)
            return acc[j] + vals[j] * (t - self._bx[j])

        return upto(b) - upto(a)

    def mean_g_per_kwh(self, a: float, b: float) -> float:
        """The time-weighted mean intensity over ``[a, b)``; ``ValueError`` if empty."""
        if b <= a:
            raise ValueError("empty window: end must be after start")
        return self.integral(a, b) / (b - a)


class Candidates:
    """Candidate starts of one duration (numpy arrays, ascending) and their integer costs."""

    __slots__ = ("costs", "times")

    def __init__(self, times: Any, costs: Any) -> None:
        self.times = times
        self.costs = costs

    def least(self, i: int, j: int) -> tuple[int, int]:
        """``(cost, index)`` of the earliest least cost among candidates ``i..j-1``, ``i < j``."""
        k = i + int(np().argmin(self.costs[i:j]))
        return int(self.costs[k]), k


def sorted_unique(*parts: Any) -> Any:
    """The distinct values of the int64 arrays ``parts``, ascending (a sort and one pass:
    numpy's own ``unique`` hashes first, several times slower on these few thousand)."""
    n = np()
    x = n.sort(n.concatenate(parts))
    keep = n.ones(len(x), dtype=bool)
    n.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def candidates(series: Series, duration_s: int) -> Candidates:
    """Every boundary and every boundary minus the duration, sorted, with their costs."""
    b = np().array(series.b, dtype=np().int64)
    times = sorted_unique(b, b - duration_s)
    return Candidates(times, series.costs(times, duration_s))


def window_starts(series: Series, duration_s: int, earliest: int, latest: int) -> list[int]:
    """The starts in ``(earliest, latest]`` where the cost's slope can change: boundaries,
    and boundaries minus the duration, ascending."""
    b = series.b
    ends = b[bisect_right(b, earliest + duration_s):bisect_right(b, latest + duration_s)]
    within = b[bisect_right(b, earliest):bisect_right(b, latest)]
    return sorted(set(within).union([t - duration_s for t in ends]))


def best_start(
    series: Series,
    duration_s: int,
    earliest: int,
    latest: int,
    *,
    threshold_milli: int | None = None,
) -> tuple[int, int, str]:
    """``(start, cost, reason)`` of the earliest least start in ``[earliest, latest]``.

    The plain reference: candidates one by one. With ``threshold_milli`` the earliest start
    whose window mean is strictly below it wins (``threshold``); when no window gets below
    it, the minimum (``threshold-not-met``).
    """
    if latest < earliest:
        latest = earliest
    times = window_starts(series, duration_s, earliest, latest)
    if latest > earliest and (not times or times[-1] != latest):
        times.append(latest)
    costs = [series.cost(t, duration_s) for t in times]
    e_cost = series.cost(earliest, duration_s)
    if threshold_milli is not None:
        limit = threshold_milli * duration_s
        if e_cost < limit:
            return earliest, e_cost, "threshold"
        prev_t, prev_c = earliest, e_cost
        for t, c in zip(times, costs, strict=True):
            if c < limit:
                # linear between prev and t: find the first whole second below the limit
                s = _first_below(series, duration_s, prev_t, prev_c, t, c, limit)
                return s, series.cost(s, duration_s), "threshold"
            prev_t, prev_c = t, c
        reason = "threshold-not-met"
    else:
        reason = "min-emissions"
    best_t, best_c = earliest, e_cost
    for t, c in zip(times, costs, strict=True):
        if c < best_c:
            best_t, best_c = t, c
    return best_t, best_c, reason


def best_starts(cands: Candidates, series: Series, duration_s: int, earliest: Any,
                latest: Any) -> tuple[Any, Any]:
    """:func:`best_start` (no threshold) for many windows of one duration at once: the
    starts and costs (numpy arrays) of the earliest least window of each ``[earliest[k],
    latest[k]]``, from ``cands`` (``candidates(series, duration_s)``)."""
    starts, costs, _ = best_starts_and_now(cands, series, duration_s, earliest, latest)
    return starts, costs


def best_starts_and_now(cands: Candidates, series: Series, duration_s: int, earliest: Any,
                        latest: Any) -> tuple[Any, Any, Any]:
    """:func:`best_starts`, and the cost of each window started at its earliest (the
    run-now counterfactual), computed on the way."""
    n = np()
    e = n.asarray(earliest, dtype=n.int64)
    last = n.maximum(n.asarray(latest, dtype=n.int64), e)
    now_c = series.costs(e, duration_s)
    best_t, best_c = e.copy(), now_c.copy()
    i = n.searchsorted(cands.times, e, side="right")
    j = n.searchsorted(cands.times, last, side="right")
    some = n.flatnonzero(j > i)  # windows with candidates in (earliest, latest]
    if len(some):
        k = earliest_least(cands.costs, i[some], j[some])
        m = cands.costs[k]
        better = m < best_c[some]
        best_t[some[better]] = cands.times[k[better]]
        best_c[some[better]] = m[better]
    l_cost = series.costs(last, duration_s)
    later = l_cost < best_c
    return n.where(later, last, best_t), n.where(later, l_cost, best_c), now_c


def earliest_least(values: Any, i: Any, j: Any) -> Any:
    """For each range ``[i[q], j[q])`` (non-empty), the index of the earliest least of
    ``values`` in it. A sparse table: level ``k`` holds the earliest least of every range
    of ``2**k`` values; a range is covered by two such ranges that overlap, its first and
    its last ``2**k`` values, and the first wins ties."""
    n_ = np()
    n = len(values)
    longest = int((j - i).max())
    table = n_.zeros((max(1, longest.bit_length()), n), dtype=n_.int64)
    table[0] = n_.arange(n)
    span = 1
    for level in range(1, len(table)):
        a, b = table[level - 1, :n - span], table[level - 1, span:n]
        table[level, :n - span] = n_.where(values[b] < values[a], b, a)
        span *= 2
    level = n_.frexp((j - i).astype(n_.float64))[1] - 1  # floor(log2(length)), exactly
    first = table[level, i]
    final = table[level, j - (1 << level)]
    return n_.where(values[final] < values[first], final, first)


def _first_below(
    series: Series, duration_s: int, t0: int, c0: int, t1: int, c1: int, limit: int
) -> int:
    """First whole second in ``(t0, t1]`` whose cost is below ``limit`` (cost is linear)."""
    if c0 == c1 or t1 - t0 <= 1:
        return t1
    guess = t0 + math.floor((c0 - limit) * (t1 - t0) / (c0 - c1))
    s = max(t0 + 1, min(t1, guess))
    while s > t0 + 1 and series.cost(s - 1, duration_s) < limit:
        s -= 1
    while s < t1 and series.cost(s, duration_s) >= limit:
        s += 1
    return s


# -- one window, in datetimes: `forecast ZONE`, wait-window, the forecaster's checks --------
@dataclass(frozen=True)
class Window:
    """A run window ``[start, end)`` and the mean intensity over it."""

    start: datetime
    end: datetime
    mean_g_per_kwh: float

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def _series_of(points: Sequence[IntensityPoint]) -> Series:
    series = Series.of_points(points)
    if not series.b:
        raise ValueError("no intensity points to integrate")
    return series


def window_mean_g_per_kwh(points: Sequence[IntensityPoint], start: datetime, end: datetime) -> float:
    """Time-weighted mean intensity over ``[start, end)``, unrounded: each point counts for
    exactly the seconds it overlaps the window; time no point covers counts at the
    series' mean. ``ValueError`` for an empty window or no points."""
    a, b = start.timestamp(), end.timestamp()
    if b <= a:
        raise ValueError("empty window: end must be after start")
    return _series_of(points).mean_g_per_kwh(a, b)


def best_window(points: Sequence[IntensityPoint], duration_s: float, earliest: datetime,
                latest_end: datetime) -> Window:
    """The least window of ``duration_s`` starting at or after ``earliest`` and ending by
    ``latest_end``, the earliest of equal ones, chosen as the planner chooses: on the exact
    integer integral (0.001 g/kWh, whole seconds: the start is ``earliest`` rounded up to the
    second, or later), so `forecast ZONE` and a submit's plan name the same start. Its mean
    is the unrounded one. ``ValueError`` if the job does not fit or there are no points."""
    if duration_s <= 0:
        raise ValueError("duration must be positive")
    if latest_end.timestamp() - duration_s < earliest.timestamp() - 1e-9:
        raise ValueError(
            f"a job of {duration_s:.0f} s does not fit between {earliest.isoformat()} "
            f"and {latest_end.isoformat()}"
        )
    d = max(1, round(duration_s))
    lo = math.ceil(earliest.timestamp())
    last = max(lo, math.floor(latest_end.timestamp()) - d)  # a second of rounding is not lateness
    series = _series_of(points)
    start, _, _ = best_start(series, d, lo, last)
    return Window(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + d, UTC),
                  series.mean_g_per_kwh(start, start + d))
