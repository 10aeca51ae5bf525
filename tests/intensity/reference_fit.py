"""The local forecaster as it was before numpy: plain Python, Gaussian elimination.

Kept only as the reference that :mod:`intensity.forecast` is compared against
(``test_forecast_fit.py``): the same features, sample weights, ridge and IRLS round, the
same gap-free series, solved by hand. Copied from the last pure-Python version; only the
constants and the unchanged helpers are imported.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta

from intensity.forecast import (
    _ANCHOR_H,
    _IRLS_ROUNDS,
    _MAX_SAMPLES,
    _N_FEATURES,
    _PLAN_SMOOTH_H,
    _PROFILE,
    _RIDGE,
    DAY_S,
    HALF_LIFE_DAYS,
    MAX_FIT_DAYS,
    MIN_FIT_DAYS,
    REFIT_DAYS,
    _at,
    _level_on_profile,
    _profile_forecast,
    _ts,
    infer_resolution_s,
)
from intensity.model import IntensityPoint, Kind, Source

_CACHE_SIZE = 64
_coef_cache: OrderedDict[tuple[object, ...], list[list[float]]] = OrderedDict()


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
    spans = [(p.start.timestamp(), p.end.timestamp(), p.intensity_g_per_kwh) for p in points]
    hi = max(b for _, b, _ in spans)
    first = min(a for a, _, _ in spans)
    steps = max(1, math.ceil((hi - first) / resolution_s - 1e-9))
    lo = hi - steps * resolution_s
    total = [0.0] * steps
    covered = [0.0] * steps
    for a, b, v in spans:
        a = max(a, lo)
        if b <= a:
            continue
        i = int((a - lo) // resolution_s)
        if b - a == resolution_s and a == lo + i * resolution_s:  # the usual, aligned case
            total[i] += resolution_s * v
            covered[i] += resolution_s
            continue
        while i < steps:
            cell_a = lo + i * resolution_s
            cell_b = cell_a + resolution_s
            ov = min(b, cell_b) - max(a, cell_a)
            if ov > 0:
                total[i] += ov * v
                covered[i] += ov
            if cell_b >= b:
                break
            i += 1
    t0 = lo
    values: list[float | None] = [
        (t / c if c > 0 else None) for t, c in zip(total, covered, strict=True)
    ]
    period = max(1, DAY_S // resolution_s)
    out: list[float] = []
    known = next((v for v in values if v is not None), 0.0)
    for i, cell in enumerate(values):
        if cell is not None:
            out.append(cell)
        elif i >= period:
            out.append(out[i - period])
        else:
            out.append(out[i - 1] if out else known)
    return t0, out


class _Features:
    """Features of the direct model at an origin, from a gap-free series (O(1) each).

    ``t0`` is the timestamp of ``y[0]`` and ``resolution_s`` the step, for the weekday of
    a target.
    """

    def __init__(self, y: Sequence[float], period: int, t0: float, resolution_s: int) -> None:
        self.y = y
        self.p = period
        self.t0 = t0
        self.res = resolution_s
        cum = [0.0]
        for v in y:
            cum.append(cum[-1] + v)
        self.cum = cum

    def mean(self, a: int, b: int) -> float:
        return (self.cum[b] - self.cum[a]) / (b - a)

    def min_origin(self, lead: int) -> int:
        """The first origin whose features all lie inside the series."""
        return 7 * self.p + 1  # the look-backs below reach at most 7 p + 1 before the origin

    def at(self, n: int, lead: int) -> list[float]:
        """Features for the value ``lead`` steps after origin ``n`` (``y[:n]`` known)."""
        y, p = self.y, self.p
        t = n + lead
        k = lead // p + 1  # the latest whole day back whose same-phase value is known
        week = 7 * p
        prof = sum(y[t - (k + d) * p] for d in range(7)) / 7.0
        day = self.mean(n - p, n)
        out = [1.0, y[n - 1], day, self.mean(n - week, n), prof, y[t - k * p],
               y[t - (lead // week + 1) * week], y[n - 2], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
               sum(y[n - 1 - d * p] for d in range(1, 8)) / 7.0, y[n - 1 - p]]
        weekday = (math.floor((self.t0 + t * self.res) / DAY_S) + 3) % 7  # Monday = 0
        out[8 + weekday] = day
        return out


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve ``a x = b`` by Gaussian elimination with partial pivoting (small systems)."""
    n = len(b)
    m = [[*row[:], b[i]] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-12:
            raise ValueError("singular system")
        m[col], m[piv] = m[piv], m[col]
        pv = m[col][col]
        for r in range(col + 1, n):
            f = m[r][col] / pv
            if f:
                row_r, row_c = m[r], m[col]
                for c in range(col, n + 1):
                    row_r[c] -= f * row_c[c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


def _prior() -> list[float]:
    """The weights the ridge shrinks toward: the same-phase profile alone."""
    w = [0.0] * _N_FEATURES
    w[_PROFILE] = 1.0
    return w


def _fit_anchor(feats: _Features, n_end: int, lead: int) -> list[float]:
    """Weights for one lead from origins whose target lies before ``n_end``.

    The target is the deviation from the same-phase profile; samples are weighted by
    age (half-life :data:`HALF_LIFE_DAYS`); ridge least squares on standardised features,
    then :data:`_IRLS_ROUNDS` rounds of iteratively reweighted least squares toward the
    least-absolute-error fit (the errors we report are MAE).
    """
    first = feats.min_origin(lead)
    last = n_end - lead  # exclusive: target index n + lead < n_end
    if last - first < 24:
        return _prior()
    stride = max(1, (last - first) // _MAX_SAMPLES)
    y = feats.y
    origins = range(last - 1, first - 1, -stride)
    xs = [feats.at(n, lead) for n in origins]
    ts = [y[n + lead] - x[_PROFILE] for n, x in zip(origins, xs, strict=True)]
    per_day = 1.0 / (HALF_LIFE_DAYS * feats.p)
    base = [0.5 ** ((last - n) * per_day) for n in origins]
    weights = base
    coef = _prior()
    for _ in range(1 + _IRLS_ROUNDS):
        try:
            coef = _ridge(xs, ts, weights)
        except ValueError:
            return coef
        res = [abs(t - sum(a * b for a, b in zip(coef, x, strict=True)))
               for x, t in zip(xs, ts, strict=True)]
        floor = max(1e-6, 0.1 * sum(res) / len(res))
        weights = [w / max(r, floor) for w, r in zip(base, res, strict=True)]
    coef[_PROFILE] += 1.0  # back from the deviation to the value itself
    return coef


def _ridge(
    xs: Sequence[Sequence[float]], ts: Sequence[float], weights: Sequence[float]
) -> list[float]:
    """Weighted ridge least squares with an unpenalised intercept (feature 0), each other
    weight penalised by :data:`_RIDGE` on the standardised scale; raw-scale weights out."""
    nf = _N_FEATURES
    wsum = sum(weights)
    mu = [0.0] * nf
    tmu = 0.0
    for x, target, w in zip(xs, ts, weights, strict=True):
        for i in range(1, nf):
            mu[i] += w * x[i]
        tmu += w * target
    mu = [m / wsum for m in mu]
    tmu /= wsum
    m = nf - 1
    xtx = [[0.0] * m for _ in range(m)]
    xty = [0.0] * m
    for x, target, w in zip(xs, ts, weights, strict=True):
        c = [x[i + 1] - mu[i + 1] for i in range(m)]
        tc = w * (target - tmu)
        for i in range(m):
            ci = c[i] * w
            if ci == 0.0:
                continue
            xty[i] += c[i] * tc
            row = xtx[i]
            for j in range(i, m):
                row[j] += ci * c[j]
    for i in range(m):
        for j in range(i):
            xtx[i][j] = xtx[j][i]
    # penalty lam on the standardised weights b_i * sd_i adds lam * sd_i^2 to the raw
    # diagonal; a feature constant over the samples (a weekday not seen) gets weight 0
    lam = _RIDGE * wsum
    for i in range(m):
        var = xtx[i][i] / wsum
        xtx[i][i] = xtx[i][i] + lam * var if var > 1e-12 else 1.0
    beta = _solve(xtx, xty)
    intercept = tmu - sum(b * mu[i + 1] for i, b in enumerate(beta))
    return [intercept, *beta]


def _coefficients(
    zone: str, y: Sequence[float], t0: float, n_end: int, period: int, resolution_s: int,
    day_index: int,
) -> list[list[float]] | None:
    """Anchor weights fitted on ``y[:n_end]`` (cached by the exact training values)."""
    # whole blocks, so a history window sliding within the block keeps the same fit
    train_days = min(MAX_FIT_DAYS, (n_end // period) // REFIT_DAYS * REFIT_DAYS)
    if train_days < MIN_FIT_DAYS:
        return None
    train = y[n_end - train_days * period : n_end]
    key = (zone, resolution_s, day_index, train_days, hash(tuple(train)))
    hit = _coef_cache.get(key)
    if hit is not None:
        _coef_cache.move_to_end(key)
        return hit
    feats = _Features(train, period, t0 + (n_end - len(train)) * resolution_s, resolution_s)
    anchors = [
        _fit_anchor(feats, len(train), max(0, round(h * 3600 / resolution_s)))
        for h in _ANCHOR_H
    ]
    _coef_cache[key] = anchors
    if len(_coef_cache) > _CACHE_SIZE:
        _coef_cache.popitem(last=False)
    return anchors


def _weights_for(anchors: list[list[float]], lead_h: float) -> list[float]:
    if lead_h <= _ANCHOR_H[0]:
        return anchors[0]
    if lead_h > _ANCHOR_H[-1]:
        # beyond the fitted leads, the weights of the same phase on the third day: the
        # last value keeps its phase relation to the target, the rest is level and profile
        # (wrapped onto [47, 71): both ends are anchors, so 71-72 h cannot fall off the end)
        lead_h = _ANCHOR_H[-1] - 24.0 + (lead_h - (_ANCHOR_H[-1] - 24.0)) % 24.0
    j = bisect_left(_ANCHOR_H, lead_h)
    h0, h1 = _ANCHOR_H[j - 1], _ANCHOR_H[j]
    w = (lead_h - h0) / (h1 - h0)
    return [a + w * (b - a) for a, b in zip(anchors[j - 1], anchors[j], strict=True)]


def local_forecast(
    zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int,
    *, for_planning: bool = False,
) -> list[IntensityPoint]:
    """Forecast ``zone`` over ``[now, now + horizon_s)`` from its own ``history``.

    Only history ending at or before ``now`` is used. Points are at the history's
    resolution, aligned to it, ``kind=FORECAST``, ``source=LOCAL``, ``provider="local"``
    and ``issued_at=now``; the first one covers ``now``. Returns ``[]`` when there is no
    usable history.

    The default is the point forecast: each value the model's best guess on its own
    (least absolute error). ``for_planning=True`` gives the curve to choose run windows
    on (see :func:`planning_forecast`).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if horizon_s <= 0:
        return []
    now_ts = _ts(now)
    past = [p for p in _tail(history, now, MAX_FIT_DAYS + 9) if p.end <= now]
    if not past:
        return []
    resolution_s = infer_resolution_s(past)
    if resolution_s > DAY_S:
        resolution_s = 3600
    period = max(1, round(DAY_S / resolution_s))
    t0, y = regular_series(past, resolution_s)
    n = len(y)  # index of the first unobserved step
    first_idx = math.floor((now_ts - t0) / resolution_s)
    last_idx = math.ceil((now_ts + horizon_s - t0) / resolution_s)  # exclusive
    leads = range(first_idx - n, last_idx - n)
    signal = past[-1].signal
    # training targets end where the current refit block starts
    day_index = math.floor((t0 + n * resolution_s) / DAY_S) // REFIT_DAYS * REFIT_DAYS
    n_end = min(n, round((day_index * DAY_S - t0) / resolution_s))
    anchors = (
        _coefficients(zone, y, t0, n_end, period, resolution_s, day_index)
        if n_end > 0 else None
    )
    if anchors is None:
        values = _profile_forecast(y, period, resolution_s, leads)
    else:
        feats = _Features(y, period, t0, resolution_s)
        values = []
        profile = []
        for lead in leads:
            w = _weights_for(anchors, lead * resolution_s / 3600)
            x = feats.at(n, lead)
            values.append(sum(a * b for a, b in zip(w, x, strict=True)))
            profile.append(x[_PROFILE])
        if for_planning:
            values = _level_on_profile(values, profile, round(_PLAN_SMOOTH_H * 3600 / resolution_s))
    hi = 2.0 * max(y)
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


def _tail(history: Sequence[IntensityPoint], now: datetime, days: int) -> list[IntensityPoint]:
    """The points of ``history`` from ``days`` before ``now`` on (sorted by start)."""
    cutoff = now - timedelta(days=days)
    pts = list(history)
    if any(b.start < a.start for a, b in itertools.pairwise(pts)):
        pts.sort(key=lambda p: p.start)
    i = len(pts)
    while i > 0 and pts[i - 1].end > cutoff:
        i -= 1
    return pts[i:]
