"""Pure forecasting helpers: resampling, window means, best windows, the local forecaster.

Everything here is a pure function of its arguments (no clock, no I/O); the only state is
a small cache of fitted coefficients keyed by the exact training data, so calling the
local forecaster again with the same past is cheap and gives the same answer.

Window arithmetic
-----------------
:func:`window_mean_g_per_kwh` and :func:`best_window` are those of
:mod:`intensity.series` (the one integral of a forecast, shared with the planner),
re-exported here.

The local forecaster
--------------------
:func:`local_forecast` predicts a zone's intensity from its own history, for zones and
horizons no provider forecasts. The model is a *direct multi-horizon linear model*: for
each lead time, the value ``L`` steps after the last observation is the same-phase
profile plus a linear correction from features known at the origin:

* an intercept;
* the last two values (what persists over the next hours, and the current ramp);
* the means of the last day and of the last week (the recent level, which persists over
  multi-day weather regimes, and the level it reverts to);
* the same-phase profile: the mean of the seven most recent observed values at the same
  time of day as the target (the daily shape, with every weekday in it once), and the
  most recent of them on its own;
* the same phase one week back (weekday and weekend shapes differ);
* the last day's mean times a one-hot of the target's weekday (seven features: demand,
  and with it the marginal plant, follows the week, in proportion to the level).

The weights are fitted per anchor lead (interpolated in between) by ridge least squares
on standardised features, shrinking toward the bare profile, then one round of
iteratively reweighted least squares toward the least-absolute-error fit (we report
MAE). Training uses the zone's own history only, up to :data:`MAX_FIT_DAYS` days, with
samples losing half their weight every :data:`HALF_LIFE_DAYS` days; the training targets
all lie before the start of the current :data:`REFIT_DAYS`-day block, so nothing at or
after the forecast origin is ever seen. Fitting costs O(samples x features^2) per anchor
with the samples capped at :data:`_MAX_SAMPLES` (strided over the history), and is done
at most once per zone, resolution and block (the coefficient cache, keyed by the exact
training values); a forecast then costs O(history) for resampling plus O(horizon).

Why this model: on the 16 Electricity Maps 2023 hourly zones with a rolling origin
(``tests/benchmarks/bench_forecaster.py`` reruns it) it beats persistence and
same-hour-yesterday at every lead on average. What carries it is history: the same
features fitted on 56 days gain about 9% MAE on the better baseline at 24 h, on 180 days
12%; the weekday terms add a point or two (KR, BR-SP, US-MIDA-PJM). Gradient-boosted
trees on the same features did worse (too few samples), and more lags or longer means
added nothing. At 1-6 h the last value dominates; at 24-48 h the profile and the level
carry what is predictable without a weather forecast, which is little in wind-driven
grids (DE, GB, ERCOT: within a few percent of persistence at 24 h). With less than
:data:`MIN_FIT_DAYS` of history the forecaster falls back to a seasonal profile with an
exponentially decaying correction toward the last observed value (and with less than a
day, to the last value decaying toward the mean).

With weather inputs (``weather=``, :mod:`intensity.weather`: hourly values known at the
origin for the past and the forecast horizon), each input adds regressors (see
:data:`_WEATHER_MAX_SAMPLES`), fitted the same way on the steps whose weather was given,
on up to :data:`WEATHER_MAX_FIT_DAYS` days; the fit is kept under a version naming the
inputs. ``tests/benchmarks/bench_weather.py`` measures it on recorded GFS forecasts.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import median
from typing import Any

from intensity.fits import FitKey, load_fit, save_fit
from intensity.model import IntensityPoint, Kind, Source
from intensity.series import Window, best_window, window_mean_g_per_kwh
from intensity.weather import WeatherSeries

__all__ = [
    "MIN_FIT_DAYS",
    "PLANNING_CURVE",
    "PLANNING_CURVES",
    "WEATHER_PLANNING_CURVE",
    "Window",
    "best_window",
    "infer_resolution_s",
    "local_forecast",
    "planning_curve",
    "planning_forecast",
    "regular_series",
    "resample",
    "window_mean_g_per_kwh",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_S = 86400

# -- window arithmetic -----------------------------------------------------------------


def _ts(value: datetime) -> float:
    return value.timestamp()


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# -- resampling --------------------------------------------------------------------------


def infer_resolution_s(points: Sequence[IntensityPoint]) -> int:
    """The series' resolution: the median point duration, at least one second."""
    if not points:
        raise ValueError("no points")
    return max(1, round(median(p.duration_s for p in points)))


def _align_down(ts: float, step_s: int) -> float:
    return math.floor(ts / step_s) * step_s


def resample(
    points: Sequence[IntensityPoint],
    resolution_s: int,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    align: bool = True,
) -> list[IntensityPoint]:
    """Time-weighted means on a regular grid of ``resolution_s`` aligned to the epoch
    (or, with ``align=False``, starting exactly at ``start``).

    Each output interval's value is the exact overlap-weighted mean of the input points
    over the part of the interval they cover; intervals no point touches are left out
    (a gap stays a gap). The other fields are copied from the first overlapping point.
    """
    if resolution_s <= 0:
        raise ValueError("resolution must be positive")
    pts = sorted(points, key=lambda p: p.start)
    if not pts:
        return []
    lo = _ts(start) if start else _ts(pts[0].start)
    if align:
        lo = _align_down(lo, resolution_s)
    hi = _ts(end) if end else max(_ts(p.end) for p in pts)
    out: list[IntensityPoint] = []
    acc: dict[int, list[float]] = {}
    first: dict[int, IntensityPoint] = {}
    for p in pts:
        a, b = max(_ts(p.start), lo), min(_ts(p.end), hi)
        if b <= a:
            continue
        i = int((a - lo) // resolution_s)
        while True:
            cell_a = lo + i * resolution_s
            cell_b = cell_a + resolution_s
            ov = min(b, cell_b) - max(a, cell_a)
            if ov > 0:
                slot = acc.setdefault(i, [0.0, 0.0])
                slot[0] += ov * p.intensity_g_per_kwh
                slot[1] += ov
                first.setdefault(i, p)
            if cell_b >= b:
                break
            i += 1
    for i in sorted(acc):
        total, secs = acc[i]
        p = first[i]
        cell_a = lo + i * resolution_s
        out.append(
            IntensityPoint(
                zone=p.zone, start=_at(cell_a), end=_at(cell_a + resolution_s),
                intensity_g_per_kwh=total / secs, kind=p.kind, provider=p.provider,
                signal=p.signal, issued_at=p.issued_at, source=p.source,
                estimated=p.estimated,
            )
        )
    return out


def regular_series(
    points: Sequence[IntensityPoint], resolution_s: int
) -> tuple[float, list[float]]:
    """``(first_start_ts, values)`` on a gap-free grid of ``resolution_s``.

    The grid ends exactly where the last point ends (so the next step is the first
    unobserved one). Slots no point covers are filled with the value one day earlier when there is one,
    else the previous slot's value (so a gap never invents a level of its own).
    """
    if not points:
        raise ValueError("no history")
    _, starts, ends, vals = _arrays(points)
    t0, y = _regular(starts, ends, vals, resolution_s)
    return t0, y.tolist()


def _arrays(points: Sequence[IntensityPoint]) -> tuple[list[IntensityPoint], Any, Any, Any]:
    """The points sorted by start, with their start and end timestamps and values as arrays."""
    import numpy as np

    pts = list(points)
    starts = np.array(_stamps([p.start for p in pts]), dtype=float)
    if len(pts) > 1 and bool(np.any(starts[1:] < starts[:-1])):
        order = np.argsort(starts, kind="stable")
        pts = [pts[i] for i in order]
        starts = starts[order]
    ends = np.array(_stamps([p.end for p in pts]), dtype=float)
    vals = np.fromiter((p.intensity_g_per_kwh for p in pts), dtype=float, count=len(pts))
    return pts, starts, ends, vals


#: Timestamps of the datetimes seen lately: a forecast every hour reads the same months of
#: history each time, and ``datetime.timestamp`` was most of a warm forecast's cost.
_TS_MEMO: dict[datetime, float] = {}
_TS_MEMO_SIZE = 200_000


def _stamps(times: list[datetime]) -> list[float]:
    """``[t.timestamp() for t in times]``, through :data:`_TS_MEMO` (equal aware datetimes
    are the same instant, so the memo is exact)."""
    memo = _TS_MEMO
    if len(memo) > _TS_MEMO_SIZE:
        memo.clear()
    out = []
    for t in times:
        v = memo.get(t)
        if v is None:
            v = memo[t] = t.timestamp()
        out.append(v)
    return out


def _regular(starts: Any, ends: Any, vals: Any, resolution_s: int) -> tuple[float, Any]:
    """:func:`regular_series` on arrays (at least one point): ``(t0, values array)``."""
    import numpy as np

    res = resolution_s
    hi = float(ends.max())
    first = float(starts.min())
    steps = max(1, math.ceil((hi - first) / res - 1e-9))
    lo = hi - steps * res
    a = np.maximum(starts, lo)
    use = ends > a
    a, b, v = a[use], ends[use], vals[use]
    idx = ((a - lo) // res).astype(np.int64)
    aligned = (b - a == res) & (a == lo + idx * res)  # the usual case: one whole cell each
    total = np.zeros(steps)
    covered = np.zeros(steps)
    np.add.at(total, idx[aligned], res * v[aligned])
    np.add.at(covered, idx[aligned], float(res))
    for ai, bi, vi, i in zip(a[~aligned].tolist(), b[~aligned].tolist(), v[~aligned].tolist(),
                             idx[~aligned].tolist(), strict=True):
        while i < steps:
            cell_a = lo + i * res
            cell_b = cell_a + res
            ov = min(bi, cell_b) - max(ai, cell_a)
            if ov > 0:
                total[i] += ov * vi
                covered[i] += ov
            if cell_b >= bi:
                break
            i += 1
    seen = covered > 0
    out = np.zeros(steps)
    out[seen] = total[seen] / covered[seen]
    gaps = np.flatnonzero(~seen).tolist()
    if gaps:
        period = max(1, DAY_S // res)
        known = float(out[int(np.argmax(seen))]) if seen.any() else 0.0
        for i in gaps:  # in order: a gap may copy a slot filled just before
            out[i] = out[i - period] if i >= period else (out[i - 1] if i > 0 else known)
    return lo, out


# -- the local forecaster -------------------------------------------------------------------

#: Days of history the regression needs (a week of lags, three of leads, training days).
MIN_FIT_DAYS = 14
#: Weights are refitted when a new block of this many days starts. With months of
#: history behind each fit, a fit up to a week old loses almost nothing (measured: within
#: 0.2 points of MAE gain at 24 h), and weekly refits keep a year of simulation cheap.
REFIT_DAYS = 7
#: At most this many days of history are used for fitting (older data is ignored).
#: The lead over the baselines grows with the history: on the 2023 zones, at 24 h lead,
#: 56 days give a 9% lower MAE than the better baseline, 112 days 12%, 180 days 12-13%.
MAX_FIT_DAYS = 180
#: Training samples lose half their weight every this many days of age (regimes drift).
HALF_LIFE_DAYS = 60.0
#: Anchor leads, in hours; weights for leads in between are interpolated. The same-phase
#: features step back a day where the lead crosses a whole day, so anchors sit on both
#: sides of 24 h and 48 h and no interpolation spans that step.
_ANCHOR_H = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 18.0, 23.0, 24.0, 30.0, 38.0, 47.0, 48.0,
             59.0, 71.0)
#: At most this many training origins per anchor (older ones are strided over).
_MAX_SAMPLES = 600
#: Ridge strength on standardised features, as a share of the total sample weight
#: (light: with months of samples the fit needs little help; 0.01 cost 1-5 points).
_RIDGE = 0.001
#: Features: intercept, last value, last day's mean, last week's mean, same-phase
#: profile, same phase one day back, same phase one week back, the value before the last
#: (with the last, the current ramp), then the last day's mean times a one-hot of the
#: target's weekday (seven: weekly demand patterns scale with the level), and last the
#: seven-day profile at the last observed step and that step one day back: beside the last
#: value they give how far the present stands off its usual cycle, an anomaly that fades
#: over hours (with them the mean MAE gain over the better baseline on the 2023 zones went
#: from 20% to 38% at 1 h, 18% to 24% at 6 h, 12.9% to 13.8% at 24 h).
_N_FEATURES = 17
#: Index of the same-phase profile among the features (the model predicts the target's
#: deviation from it, so the ridge shrinks toward the profile).
_PROFILE = 4
#: Reweighting rounds toward a least-absolute-error fit (0: plain ridge).
_IRLS_ROUNDS = 1
#: The planning curve averages the model's deviation from the profile over this many
#: hours of lead either side (see :func:`planning_forecast`). Tuned on the 2022 files of
#: GB, DE and California (``bench_planning_curve.py``: kg-weighted share of the oracle's
#: savings 87.1% for the point forecast, 87.4% at 4 h, 87.7% at 6 h, 88.0% at 8 h, 87.8%
#: at 12 h, 85.5% for the bare profile), then held out: on 2024 6 h and 8 h score 89.6%
#: and 89.7%, on the sixteen 2023 zones 89.7% and 89.5%, so 6 h stays (the better of the
#: two over both held-out sets).
_PLAN_SMOOTH_H = 6.0
#: The ``recent`` planning curve (see :func:`planning_curve`): its profile is the mean of
#: up to this many latest same-phase values, each day back weighing less by this half-life
#: (in days), so the shape follows the last days more than a flat seven-day mean does;
#: the model's deviation from it is averaged over this many hours of lead either side and
#: counts in full at lead 0, falling linearly to this floor at 24 h of lead and after (the
#: model's far leads carry least information about the level). Chosen on the 2022 files of
#: GB, DE and California (``bench_planning_curve.py``), then held out on 2024 and 2023.
_RECENT_PROFILE_DAYS = 21
_RECENT_HALF_LIFE_DAYS = 5.0
_RECENT_SMOOTH_H = 8.0
_RECENT_FLOOR = 0.5
#: Fallback model: per-hour decay of the last observation's deviation from the profile.
_PHI_PER_H = 0.9
#: What a stored fit must have been fitted with to be reused (:mod:`intensity.fits`).
_FIT_VERSION = "direct-1:" + repr(
    (_ANCHOR_H, _N_FEATURES, _PROFILE, _MAX_SAMPLES, _RIDGE, _IRLS_ROUNDS, HALF_LIFE_DAYS,
     MAX_FIT_DAYS, REFIT_DAYS, MIN_FIT_DAYS)
)
_CACHE_SIZE = 64
_coef_cache: OrderedDict[FitKey, list[list[float]]] = OrderedDict()

# -- weather inputs (``local_forecast(..., weather=...)``) --
#: With weather inputs, each input adds its value at the target, its anomaly against the
#: same-phase days the profile averages (the profile carries their weather, the target
#: has its own) and its value at the origin (beside the last value); a wind input also
#: adds its square and the square's anomaly (wind power rises steeply with speed; a
#: cube as well changed the DE 24 h MAE by 0.1 g/kWh).
#: More features want more samples and a longer span: the weather-to-intensity relation
#: holds across seasons, and the inputs explain what the regime terms could not.
_WEATHER_MAX_SAMPLES = 3000
WEATHER_MAX_FIT_DAYS = 540
_WEATHER_VERSION = "weather-1:" + repr((_WEATHER_MAX_SAMPLES, WEATHER_MAX_FIT_DAYS))


def clear_cache() -> None:
    """Forget fitted coefficients (tests use this to measure cold calls)."""
    _coef_cache.clear()


def _design(
    y: Any, cum: Any, period: int, t0: float, resolution_s: int, origins: Any, leads: Any
) -> Any:
    """Feature rows of the direct model (see the module docstring), one per pair of
    ``origins[i]`` (``y[:n]`` known) and ``leads[i]`` (the target is ``y[n + lead]``);
    either may be a scalar. ``y`` is the gap-free series as a float array and ``cum`` its
    prefix sums (``cum[i]`` = sum of ``y[:i]``). The look-backs reach at most ``7 period + 1``
    steps before an origin (:func:`_min_origin`).
    """
    import numpy as np

    n, lead = np.broadcast_arrays(np.asarray(origins, dtype=np.int64),
                                  np.asarray(leads, dtype=np.int64))
    p, week = period, 7 * period
    t = n + lead
    k = lead // p + 1  # the latest whole day back whose same-phase value is known
    prof = y[t - k * p]
    for d in range(1, 7):
        prof = prof + y[t - (k + d) * p]
    anomaly = y[n - 1 - p]
    for d in range(2, 8):
        anomaly = anomaly + y[n - 1 - d * p]
    day = (cum[n] - cum[n - p]) / p
    x = np.zeros((n.size, _N_FEATURES))
    x[:, 0] = 1.0
    x[:, 1] = y[n - 1]
    x[:, 2] = day
    x[:, 3] = (cum[n] - cum[n - week]) / week
    x[:, 4] = prof / 7.0
    x[:, 5] = y[t - k * p]
    x[:, 6] = y[t - (lead // week + 1) * week]
    x[:, 7] = y[n - 2]
    weekday = (np.floor((t0 + t * resolution_s) / DAY_S).astype(np.int64) + 3) % 7  # Monday = 0
    x[np.arange(n.size), 8 + weekday] = day
    x[:, 15] = anomaly / 7.0
    x[:, 16] = y[n - 1 - p]
    return x


@dataclass(frozen=True)
class _WeatherGrid:
    """Weather inputs on the intensity series' grid: ``w[i]`` the inputs during step ``i``
    (gaps filled from the nearest known hour), ``known[i]`` whether they were given there,
    ``wind`` which columns are wind speeds, ``names`` the inputs' names."""

    w: Any
    known: Any
    wind: Any
    names: tuple[str, ...]

    def slice(self, a: int, b: int) -> _WeatherGrid:
        return _WeatherGrid(self.w[a:b], self.known[a:b], self.wind, self.names)


def _weather_grid(weather: WeatherSeries, t0: float, resolution_s: int, steps: int) -> _WeatherGrid | None:
    """``weather`` on the grid ``t0 + i * resolution_s`` for ``i < steps`` (each step takes
    the hour it starts in), or ``None`` when an input has no value at all."""
    import numpy as np

    names = weather.names
    if not names or not weather.usable():
        return None
    at = t0 + np.arange(steps) * float(resolution_s)
    idx = np.floor((at - _ts(weather.start)) / weather.step_s).astype(np.int64)
    inside = (idx >= 0) & (idx < len(weather))
    cols = []
    known = inside.copy()
    for name in names:
        col = np.asarray(weather.values[name], dtype=float)
        v = np.full(steps, np.nan)
        v[inside] = col[idx[inside]]
        ok = np.isfinite(v)
        if not ok.any():
            return None
        known &= ok
        # forward fill, then the first known value backwards
        pos = np.where(ok, np.arange(steps), -1)
        np.maximum.accumulate(pos, out=pos)
        first = int(np.argmax(ok))
        v = np.where(pos >= 0, v[np.maximum(pos, 0)], v[first])
        cols.append(v)
    wind = np.array(["wind" in name for name in names])
    return _WeatherGrid(np.column_stack(cols), known, wind, names)


def _n_weather(grid: _WeatherGrid | None) -> int:
    """How many features the weather inputs add (see :data:`_WEATHER_MAX_SAMPLES`)."""
    if grid is None:
        return 0
    return 3 * len(grid.names) + 2 * int(grid.wind.sum())


def _weather_design(grid: _WeatherGrid, period: int, origins: Any, leads: Any) -> Any:
    """The weather features for each pair of origin and lead (as :func:`_design`)."""
    import numpy as np

    n, lead = np.broadcast_arrays(np.asarray(origins, dtype=np.int64),
                                  np.asarray(leads, dtype=np.int64))
    t = n + lead
    k = lead // period + 1
    w = grid.w
    at_t = w[t]
    prof = w[t - k * period]
    for d in range(1, 7):
        prof = prof + w[t - (k + d) * period]
    prof = prof / 7.0
    parts = [at_t, at_t - prof, w[n - 1]]
    for power in (2,) if grid.wind.any() else ():
        pw = w[:, grid.wind] ** power
        pw_prof = pw[t - k * period]
        for d in range(1, 7):
            pw_prof = pw_prof + pw[t - (k + d) * period]
        parts += [pw[t], pw[t] - pw_prof / 7.0]
    return np.column_stack(parts)


def _min_origin(period: int) -> int:
    """The first origin whose features all lie inside the series."""
    return 7 * period + 1


def _prior(extra: int = 0) -> list[float]:
    """The weights the ridge shrinks toward: the same-phase profile alone (and ``extra``
    weather weights of zero)."""
    w = [0.0] * (_N_FEATURES + extra)
    w[_PROFILE] = 1.0
    return w


def _fit_anchor(
    y: Any, cum: Any, period: int, t0: float, resolution_s: int, n_end: int, lead: int,
    grid: _WeatherGrid | None = None,
) -> list[float]:
    """Weights for one lead from origins whose target lies before ``n_end``.

    The target is the deviation from the same-phase profile; samples are weighted by
    age (half-life :data:`HALF_LIFE_DAYS`); ridge least squares on standardised features,
    then :data:`_IRLS_ROUNDS` rounds of iteratively reweighted least squares toward the
    least-absolute-error fit (the errors we report are MAE).
    """
    import numpy as np

    extra = _n_weather(grid)
    first = _min_origin(period)
    last = n_end - lead  # exclusive: target index n + lead < n_end
    if last - first < 24:
        return _prior(extra)
    origins = np.arange(last - 1, first - 1, -1, dtype=np.int64)
    if grid is not None:  # only origins whose own and target's weather were given
        origins = origins[grid.known[origins - 1] & grid.known[origins + lead]]
        if origins.size < 24:
            return _prior(extra)
    cap = _MAX_SAMPLES if grid is None else _WEATHER_MAX_SAMPLES
    origins = origins[:: max(1, origins.size // cap)]
    xs = _design(y, cum, period, t0, resolution_s, origins, lead)
    if grid is not None:
        xs = np.hstack([xs, _weather_design(grid, period, origins, lead)])
    ts = y[origins + lead] - xs[:, _PROFILE]
    base = 0.5 ** ((last - origins) * (1.0 / (HALF_LIFE_DAYS * period)))
    weights = base
    coef = None
    for _ in range(1 + _IRLS_ROUNDS):
        try:
            coef = _ridge(xs, ts, weights)
        except ValueError:  # singular: keep the last good fit
            break
        res = np.abs(ts - xs @ coef)
        weights = base / np.maximum(res, max(1e-6, 0.1 * float(res.mean())))
    if coef is None:
        return _prior(extra)
    out = [float(c) for c in coef]
    out[_PROFILE] += 1.0  # back from the deviation to the value itself
    return out


def _ridge(xs: Any, ts: Any, weights: Any) -> Any:
    """Weighted ridge least squares with an unpenalised intercept (feature 0), each other
    weight penalised by :data:`_RIDGE` on the standardised scale; raw-scale weights out.

    Solved on the centred weighted normal equations with :func:`numpy.linalg.solve`;
    ``ValueError`` when they are singular.
    """
    import numpy as np

    wsum = float(weights.sum())
    mu = weights @ xs[:, 1:] / wsum
    tmu = float(weights @ ts) / wsum
    c = xs[:, 1:] - mu
    xtx = (c * weights[:, None]).T @ c
    xty = c.T @ (weights * (ts - tmu))
    # penalty lam on the standardised weights b_i * sd_i adds lam * sd_i^2 to the raw
    # diagonal; a feature constant over the samples (a weekday not seen) gets weight 0
    diag = np.diagonal(xtx).copy()
    var = diag / wsum
    np.fill_diagonal(xtx, np.where(var > 1e-12, diag + _RIDGE * wsum * var, 1.0))
    try:
        beta = np.linalg.solve(xtx, xty)
    except np.linalg.LinAlgError:
        raise ValueError("singular system") from None
    if not np.all(np.isfinite(beta)):
        raise ValueError("singular system")
    return np.concatenate(([tmu - float(beta @ mu)], beta))


def _fingerprint(train: Any) -> str:
    """A digest of the exact training values (the same in every process)."""
    import hashlib

    import numpy as np

    return hashlib.blake2b(np.ascontiguousarray(train, dtype="<f8").tobytes(), digest_size=16).hexdigest()


def _coefficients(
    zone: str, y: Any, t0: float, n_end: int, period: int, resolution_s: int,
    day_index: int, fit_dir: str | os.PathLike[str] | None = None,
    grid: _WeatherGrid | None = None,
) -> list[list[float]] | None:
    """Anchor weights fitted on ``y[:n_end]``, reused while the same block's fit is due.

    The fit is keyed by the zone, the resolution, the span it was fitted on (its end, the
    start of the current :data:`REFIT_DAYS` block, and its length) and a fingerprint of the
    exact training values: kept in this process (:data:`_CACHE_SIZE` fits) and, with
    ``fit_dir``, in a small JSON file there that every other process reuses
    (:mod:`intensity.fits`). With weather inputs (``grid``) the span may be longer
    (:data:`WEATHER_MAX_FIT_DAYS`), the fingerprint covers the inputs' training values too
    and the version names the inputs, so the two kinds of fit never stand in for each other.
    """
    import numpy as np

    # whole blocks, so a history window sliding within the block keeps the same fit
    max_days = MAX_FIT_DAYS if grid is None else WEATHER_MAX_FIT_DAYS
    train_days = min(max_days, (n_end // period) // REFIT_DAYS * REFIT_DAYS)
    if train_days < MIN_FIT_DAYS:
        return None
    a = n_end - train_days * period
    train = y[a:n_end]
    sub = grid.slice(a, n_end) if grid is not None else None
    version = _FIT_VERSION
    digest = train
    if sub is not None:
        version += "|" + _WEATHER_VERSION + ":" + ",".join(sub.names)
        digest = np.concatenate([train, sub.w.ravel(), sub.known.astype(float)])
    key = FitKey(zone, resolution_s, day_index * DAY_S, train_days, _fingerprint(digest))
    hit = _coef_cache.get(key)
    if hit is not None:
        _coef_cache.move_to_end(key)
        return hit
    anchors = load_fit(fit_dir, key, version) if fit_dir is not None else None
    if anchors is None:
        cum = np.concatenate(([0.0], np.cumsum(train)))
        t_train = t0 + (n_end - len(train)) * resolution_s
        anchors = [
            _fit_anchor(train, cum, period, t_train, resolution_s, len(train),
                        max(0, round(h * 3600 / resolution_s)), sub)
            for h in _ANCHOR_H
        ]
        if fit_dir is not None:
            save_fit(fit_dir, key, version, anchors)
    _coef_cache[key] = anchors
    if len(_coef_cache) > _CACHE_SIZE:
        _coef_cache.popitem(last=False)
    return anchors


def _weights_at(anchors: Any, lead_h: Any) -> Any:
    """Weights for each lead in ``lead_h`` (hours, an array), interpolated between the
    anchors' rows (``anchors``: one row per :data:`_ANCHOR_H` lead)."""
    import numpy as np

    hs = np.asarray(_ANCHOR_H)
    lead_h = np.asarray(lead_h, dtype=float)
    # beyond the fitted leads, the weights of the same phase on the third day: the
    # last value keeps its phase relation to the target, the rest is level and profile
    # (wrapped onto [47, 71): both ends are anchors, so 71-72 h cannot fall off the end)
    wrap = hs[-1] - 24.0
    lh = np.where(lead_h > hs[-1], wrap + np.mod(lead_h - wrap, 24.0), lead_h)
    j = np.clip(np.searchsorted(hs, lh, side="left"), 1, len(hs) - 1)
    w = (lh - hs[j - 1]) / (hs[j] - hs[j - 1])
    a = np.asarray(anchors, dtype=float)
    out = a[j - 1] + w[:, None] * (a[j] - a[j - 1])
    out[lead_h <= hs[0]] = a[0]
    return out


def _weights_for(anchors: list[list[float]], lead_h: float) -> list[float]:
    """Weights for one lead (hours); see :func:`_weights_at`."""
    return [float(w) for w in _weights_at(anchors, [lead_h])[0]]


def _profile_forecast(y: Sequence[float], period: int, resolution_s: int, leads: range) -> list[float]:
    """Fallback: same-phase profile over the days at hand plus a decaying correction."""
    n = len(y)
    days = min(7, n // period)
    last = y[-1]
    if days < 1:
        mean = sum(y) / n
        phi = _PHI_PER_H ** (resolution_s / 3600)
        return [mean + (last - mean) * phi ** (lead + 1) for lead in leads]
    weights = [0.8**d for d in range(days)]
    wsum = sum(weights)

    def profile(t: int) -> float:
        k = (t - n) // period + 1  # first whole period back that is observed
        return sum(w * y[t - (k + d) * period] for d, w in enumerate(weights)) / wsum

    dev = last - profile(n - 1)
    phi = _PHI_PER_H ** (resolution_s / 3600)
    return [profile(n + lead) + dev * phi ** (lead + 1) for lead in leads]


def local_forecast(
    zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int,
    *, for_planning: bool = False, fit_dir: str | os.PathLike[str] | None = None,
    curve: str | None = None,
    weather: WeatherSeries | None = None,
) -> list[IntensityPoint]:
    """Forecast ``zone`` over ``[now, now + horizon_s)`` from its own ``history``.

    Only history ending at or before ``now`` is used. Points are at the history's
    resolution, aligned to it, ``kind=FORECAST``, ``source=LOCAL``, ``provider="local"``
    and ``issued_at=now``; the first one covers ``now``. Returns ``[]`` when there is no
    usable history.

    The default is the point forecast: each value the model's best guess on its own
    (least absolute error). ``for_planning=True`` gives the curve to choose run windows
    on (see :func:`planning_forecast`), ``curve`` one of :data:`PLANNING_CURVES` by name.
    With ``fit_dir``, fitted weights are also kept in
    (and reused from) that folder, so other processes skip the fit until the next refit
    is due (:mod:`intensity.fits`).

    With ``weather`` (hourly inputs as known at ``now``: the recent past and the forecast,
    :mod:`intensity.weather`), the model also regresses on them (see
    :func:`_weather_design`), trained only on the steps whose weather was given; without
    it, or when an input has no value, nothing changes.
    """
    import numpy as np

    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if horizon_s <= 0:
        return []
    now_ts = _ts(now)
    pts, starts, ends, vals = _arrays(history)
    # the tail of MAX_FIT_DAYS + 9 days before now, and of it what had ended by now
    cutoff = now_ts - ((MAX_FIT_DAYS if weather is None else WEATHER_MAX_FIT_DAYS) + 9) * DAY_S
    old = np.flatnonzero(ends <= cutoff)
    first = int(old[-1]) + 1 if old.size else 0
    keep = np.flatnonzero(ends[first:] <= now_ts) + first
    if not keep.size:
        return []
    durations = ends[keep] - starts[keep]
    resolution_s = max(1, round(float(np.median(durations))))
    if resolution_s > DAY_S:
        resolution_s = 3600
    period = max(1, round(DAY_S / resolution_s))
    t0, y = _regular(starts[keep], ends[keep], vals[keep], resolution_s)
    n = len(y)  # index of the first unobserved step
    first_idx = math.floor((now_ts - t0) / resolution_s)
    last_idx = math.ceil((now_ts + horizon_s - t0) / resolution_s)  # exclusive
    leads = range(first_idx - n, last_idx - n)
    signal = pts[int(keep[-1])].signal
    # training targets end where the current refit block starts
    day_index = math.floor((t0 + n * resolution_s) / DAY_S) // REFIT_DAYS * REFIT_DAYS
    n_end = min(n, round((day_index * DAY_S - t0) / resolution_s))
    grid = None
    if weather is not None:
        grid = _weather_grid(weather, t0, resolution_s, max(n, n + leads.stop))
    anchors = (
        _coefficients(zone, y, t0, n_end, period, resolution_s, day_index, fit_dir, grid)
        if n_end > 0 else None
    )
    values: list[float]
    if anchors is None:
        values = _profile_forecast(y.tolist(), period, resolution_s, leads)
    else:
        cum = np.concatenate(([0.0], np.cumsum(y)))
        lead_arr = np.arange(leads.start, leads.stop, dtype=np.int64)
        x = _design(y, cum, period, t0, resolution_s, n, lead_arr)
        if grid is not None:
            x = np.hstack([x, _weather_design(grid, period, n, lead_arr)])
        w = _weights_at(anchors, lead_arr * (resolution_s / 3600))
        values = (w * x).sum(axis=1).tolist()
        if for_planning or curve is not None:
            chosen = curve or (PLANNING_CURVE if grid is None else WEATHER_PLANNING_CURVE)
            recent = _recent_profile(y, period, n, lead_arr) if chosen == "recent" else None
            values = planning_curve(chosen, values, x[:, _PROFILE].tolist(), resolution_s,
                                    recent_profile=recent)
    hi = 2.0 * float(y.max())
    issued = now
    out: list[IntensityPoint] = []
    for lead, v in zip(leads, values, strict=True):
        a = t0 + (n + lead) * resolution_s
        out.append(
            IntensityPoint(
                zone=zone, start=_at(a), end=_at(a + resolution_s),
                intensity_g_per_kwh=min(max(v, 0.0), hi), kind=Kind.FORECAST,
                provider="local", signal=signal, issued_at=issued,
                source=Source.LOCAL, estimated=True,
            )
        )
    return out


#: The curves the scheduler can plan on: the model's own point forecast, the seven-day
#: same-phase profile's shape at the model's level (its deviation from the profile
#: smoothed over :data:`_PLAN_SMOOTH_H` hours of lead either side), the bare seven-day
#: profile (the mean of the seven latest observed values at the same time of day), or a
#: recency-weighted 21-day profile at the model's level weighted down with lead
#: (``recent``: see :data:`_RECENT_PROFILE_DAYS`).
PLANNING_CURVES = ("point", "blend", "profile", "recent")
#: The curve :func:`planning_forecast` gives (submit, the daemon, ``carbonshift forecast``
#: and ``simulate`` all plan on it), chosen by measurement on held-out years
#: (``tests/benchmarks/bench_planning_curve.py``; table in the README): kg-weighted share
#: of the oracle's savings on 2024 (GB, DE, California) point 88.9%, blend 89.6%, profile
#: 85.7%, recent 90.4%; on the sixteen 2023 zones 89.4%, 89.7%, 87.3%, 90.2%. Choosing per
#: zone by trailing 28-day regret did worse than the blend on both (88.6%, 89.3%).
PLANNING_CURVE = "recent"
#: The curve a weather-informed model plans on (``bench_weather.py`` measured its blend:
#: DE, second half of 2021, 87% of the oracle's savings); ``recent`` is unmeasured there.
WEATHER_PLANNING_CURVE = "blend"


def planning_curve(
    curve: str, point: Sequence[float], profile: Sequence[float], resolution_s: int,
    *, smooth_h: float | None = None, recent_profile: Sequence[float] | None = None,
) -> list[float]:
    """The values of ``curve`` (one of :data:`PLANNING_CURVES`) from the model's ``point``
    forecast and the seven-day ``profile`` at the same steps of ``resolution_s``, the
    first step being the one that covers now; ``smooth_h`` overrides :data:`_PLAN_SMOOTH_H`
    for the blend. ``recent`` is the recency-weighted ``recent_profile`` (needed for it)
    plus the model's deviation from it, smoothed over :data:`_RECENT_SMOOTH_H` and
    weighted down with lead to :data:`_RECENT_FLOOR`. ``ValueError`` for an unknown curve."""
    if curve == "point":
        return list(point)
    if curve == "profile":
        return list(profile)
    if curve == "blend":
        half = round((_PLAN_SMOOTH_H if smooth_h is None else smooth_h) * 3600 / resolution_s)
        return _level_on_profile(point, profile, half)
    if curve == "recent":
        if recent_profile is None:
            raise ValueError("the recent planning curve needs recent_profile")
        half = round((_RECENT_SMOOTH_H if smooth_h is None else smooth_h) * 3600 / resolution_s)
        day = DAY_S / resolution_s
        weights = [max(_RECENT_FLOOR, 1.0 - (1.0 - _RECENT_FLOOR) * i / day) for i in range(len(point))]
        return _level_on_profile(point, recent_profile, half, weights)
    raise ValueError(f"unknown planning curve {curve!r}: give one of {', '.join(PLANNING_CURVES)}")


def planning_forecast(
    zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int,
    *, fit_dir: str | os.PathLike[str] | None = None, curve: str | None = None,
) -> list[IntensityPoint]:
    """The local forecast to plan on: :data:`PLANNING_CURVE` (or ``curve``) of
    :data:`PLANNING_CURVES`.

    The blend is the seven-day same-phase profile plus the model's deviation from it,
    averaged over the leads within :data:`_PLAN_SMOOTH_H` hours either side: a planner
    ranks windows, so what it needs right is the *difference* between hours, and the
    model's per-lead values, each fitted on its own, carry lead-to-lead noise that
    reorders hours, while the profile's shape is the least noisy estimate of the daily
    cycle. ``recent`` (the default) takes the profile's shape from the last three weeks,
    the latest days weighing most, and trusts the model's level less the further ahead.
    Which curve plans best is measured with the real window choice on held-out years
    (``tests/benchmarks/bench_planning_curve.py``).
    """
    return local_forecast(zone, history, now, horizon_s, for_planning=True, fit_dir=fit_dir,
                          curve=curve or PLANNING_CURVE)


def _level_on_profile(values: Sequence[float], profile: Sequence[float], half: int,
                      weights: Sequence[float] | None = None) -> list[float]:
    """``profile`` plus the mean of ``values - profile`` over ``[i - half, i + half)``,
    times ``weights[i]`` where given."""
    dev = [v - p for v, p in zip(values, profile, strict=True)]
    cum = [0.0]
    for d in dev:
        cum.append(cum[-1] + d)
    n = len(dev)
    out = []
    for i, p in enumerate(profile):
        a, b = max(0, i - half), min(n, i + max(1, half))
        out.append(p + (1.0 if weights is None else weights[i]) * (cum[b] - cum[a]) / (b - a))
    return out


def _recent_profile(y: Any, period: int, n: int, leads: Any) -> list[float]:
    """At each lead after the last observed step ``n - 1``: the same-phase values of the
    :data:`_RECENT_PROFILE_DAYS` latest whole days back that are observed, weighted
    ``0.5 ** (d / _RECENT_HALF_LIFE_DAYS)`` for the ``d``-th of them (fewer where the
    history is shorter)."""
    import numpy as np

    lead = np.asarray(leads, dtype=np.int64)
    t = n + lead
    k0 = lead // period + 1  # as the design's profile: the latest day back that is known
    total = np.zeros(len(lead))
    wsum = np.zeros(len(lead))
    for d in range(_RECENT_PROFILE_DAYS):
        idx = t - (k0 + d) * period
        ok = idx >= 0
        w = 0.5 ** (d / _RECENT_HALF_LIFE_DAYS)
        total[ok] += w * y[idx[ok]]
        wsum[ok] += w
    return (total / np.maximum(wsum, 1e-12)).tolist()
