"""The planner: a pure function from jobs, forecasts, sites and ``now`` to a plan.

No clock reads, no I/O. For each job it picks the start minimising expected emissions

    expected_g = power_w x PUE x integral of intensity over [start, start + duration]

over every start its bounds allow, with the forecast treated as a piecewise-constant
function (sub-interval overlaps weighted exactly). Time outside the forecast, and gaps
inside it, count at the forecast's mean. Ties go to the earliest start.

Exactness: intensities are resolved to 0.001 gCO2/kWh and times to whole seconds, and
integrals are computed in integers, so equal windows tie exactly. The cost of a start
``s`` is piecewise linear in ``s`` with breakpoints where ``s`` or ``s + duration`` crosses
a forecast boundary, so the earliest minimiser over every second of ``[earliest, latest]``
is one of: ``earliest``, ``latest``, a boundary, or a boundary minus the duration. The
planner evaluates exactly those candidates.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from intensity.model import Forecast
from scheduler.model import Job, Plan, PlanEntry, Site

MILLI = 1000  # intensity resolution: 1/1000 gCO2/kWh
# grams = power_w * (milli-g/kWh * s) / (1000 milli * 3600 s/h * 1000 W/kW)
_G_PER_UNIT_W = 1.0 / (MILLI * 3600.0 * 1000.0)


@dataclass(frozen=True)
class PlanOptions:
    """Knobs of the planner that are not part of a job."""

    #: when true, a job whose bounds are already past is planned at ``now`` (overdue)
    allow_overdue: bool = True


class Profile:
    """A zone's forecast as an exact integer step function of epoch seconds.

    ``F(t)`` is the integral of intensity (milli-g/kWh x s) from the first boundary to
    ``t``; outside ``[b0, bN)`` and in gaps the intensity is the forecast mean.
    """

    __slots__ = ("b", "fill", "prefix", "v")

    def __init__(self, forecast: Forecast) -> None:
        pts = forecast.points
        b: list[int] = []
        v: list[int] = []
        mean = forecast.mean_g_per_kwh() if pts else 0.0
        self.fill = round(mean * MILLI) if math.isfinite(mean) else 0
        for p in pts:
            s = int(p.start.timestamp())
            e = int(p.end.timestamp())
            if e <= s:
                continue
            if b and s > b[-1]:  # a gap: fill with the mean
                v.append(self.fill)
                b.append(s)
            elif b and s < b[-1]:
                s = b[-1]
                if e <= s:
                    continue
            if not b:
                b.append(s)
            v.append(round(p.intensity_g_per_kwh * MILLI))
            b.append(e)
        self.b = b
        self.v = v
        prefix = [0]
        acc = 0
        for i, val in enumerate(v):
            acc += val * (b[i + 1] - b[i])
            prefix.append(acc)
        self.prefix = prefix

    def F(self, t: int) -> int:  # noqa: N802 - the usual name of an antiderivative
        b = self.b
        if not b:
            return self.fill * t
        if t <= b[0]:
            return self.fill * (t - b[0])
        if t >= b[-1]:
            return self.prefix[-1] + self.fill * (t - b[-1])
        k = bisect_right(b, t) - 1
        return self.prefix[k] + self.v[k] * (t - b[k])

    def cost(self, start: int, duration_s: int) -> int:
        """Integral of intensity over ``[start, start + duration_s)`` in milli-g/kWh x s."""
        return self.F(start + duration_s) - self.F(start)


@dataclass
class _Candidates:
    times: list[int]
    costs: list[int]


@dataclass
class _Memo:
    profiles: dict[str, Profile] = field(default_factory=dict)
    candidates: dict[tuple[str, int], _Candidates] = field(default_factory=dict)


def _epoch(t: datetime) -> int:
    return math.ceil(t.timestamp())


def _dt(t: int) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def _candidates(profile: Profile, duration_s: int) -> _Candidates:
    """Every boundary and every boundary minus the duration, sorted, with their costs."""
    times = sorted(set(profile.b) | {t - duration_s for t in profile.b})
    return _Candidates(times, [profile.cost(t, duration_s) for t in times])


def best_start(
    profile: Profile,
    duration_s: int,
    earliest: int,
    latest: int,
    *,
    threshold_milli: int | None = None,
    memo: dict[int, _Candidates] | None = None,
) -> tuple[int, int, str]:
    """``(start, cost, reason)`` of the earliest optimal start in ``[earliest, latest]``.

    With ``threshold_milli`` the earliest start whose window mean is strictly below it wins
    (``threshold``); when no window gets below it, the minimum (``threshold-not-met``).
    """
    if latest < earliest:
        latest = earliest
    if memo is not None and duration_s in memo:
        cands = memo[duration_s]
    else:
        cands = _candidates(profile, duration_s)
        if memo is not None:
            memo[duration_s] = cands
    i = bisect_right(cands.times, earliest)
    j = bisect_right(cands.times, latest)
    e_cost = profile.cost(earliest, duration_s)
    if threshold_milli is not None:
        limit = threshold_milli * duration_s
        if e_cost < limit:
            return earliest, e_cost, "threshold"
        prev_t, prev_c = earliest, e_cost
        times = cands.times[i:j] + ([latest] if latest > earliest else [])
        costs = cands.costs[i:j] + ([profile.cost(latest, duration_s)] if latest > earliest else [])
        for t, c in zip(times, costs, strict=True):
            if c < limit:
                # linear between prev and t: find the first whole second below the limit
                s = _first_below(profile, duration_s, prev_t, prev_c, t, c, limit)
                return s, profile.cost(s, duration_s), "threshold"
            prev_t, prev_c = t, c
        reason_fallback = "threshold-not-met"
    else:
        reason_fallback = "min-emissions"
    best_t, best_c = earliest, e_cost
    if j > i:
        sub = cands.costs[i:j]
        m = min(sub)
        if m < best_c:
            best_c = m
            best_t = cands.times[i + sub.index(m)]
    if latest > earliest:
        l_cost = profile.cost(latest, duration_s)
        if l_cost < best_c:
            best_t, best_c = latest, l_cost
    return best_t, best_c, reason_fallback


def _first_below(
    profile: Profile, duration_s: int, t0: int, c0: int, t1: int, c1: int, limit: int
) -> int:
    """First whole second in ``(t0, t1]`` whose cost is below ``limit`` (cost is linear)."""
    if c0 == c1 or t1 - t0 <= 1:
        return t1
    guess = t0 + math.floor((c0 - limit) * (t1 - t0) / (c0 - c1))
    s = max(t0 + 1, min(t1, guess))
    while s > t0 + 1 and profile.cost(s - 1, duration_s) < limit:
        s -= 1
    while s < t1 and profile.cost(s, duration_s) >= limit:
        s += 1
    return s


def expected_grams(cost: int, power_w: float, pue: float = 1.0) -> float:
    return cost * power_w * pue * _G_PER_UNIT_W


def plan(
    jobs: Sequence[Job],
    forecasts: Mapping[str, Forecast],
    sites: Mapping[str, Site],
    now: datetime,
    options: PlanOptions | None = None,
) -> Plan:
    """Plan each job on its home site at its lowest-emission allowed start.

    ``forecasts`` maps a zone to its forecast; a job whose zone has none is planned at its
    earliest start (``no-forecast``): carbon data never blocks work.
    """
    options = options or PlanOptions()
    result = Plan()
    now_s = _epoch(now)
    memo = _Memo()
    per_zone_memo: dict[str, dict[int, _Candidates]] = {}
    for job in jobs:
        if job.id is None:
            raise ValueError("plan() needs jobs with ids")
        site = sites.get(job.site)
        zone = site.zone if site is not None else job.zone
        pue = site.pue if site is not None else 1.0
        earliest = max(now_s, _epoch(job.earliest_start))
        latest = math.floor(job.latest_start.timestamp())
        reason_prefix = ""
        if latest < earliest - 1:  # a second of rounding is not lateness
            if not options.allow_overdue:
                result.unplanned[job.id] = "latest start has passed"
                continue
            latest = earliest
            reason_prefix = "overdue:"
        elif latest < earliest:
            latest = earliest
        fc = forecasts.get(zone)
        if fc is None or not fc.points:
            start = earliest
            result.entries[job.id] = PlanEntry(
                job_id=job.id, site=job.site, start=_dt(start), expected_g=math.nan,
                run_now_g=math.nan, mean_intensity_g_per_kwh=math.nan,
                reason=reason_prefix + "no-forecast",
                intervals=((_dt(start), _dt(start + job.duration_s)),),
            )
            continue
        profile = memo.profiles.get(zone)
        if profile is None:
            profile = memo.profiles[zone] = Profile(fc)
        zmemo = per_zone_memo.setdefault(zone, {})
        d = job.duration_s
        now_cost = profile.cost(earliest, d)
        if job.run_now:
            start, cost, reason = earliest, now_cost, "run-now"
        else:
            threshold = (
                round(job.threshold_g_per_kwh * MILLI)
                if job.threshold_g_per_kwh is not None
                else None
            )
            start, cost, reason = best_start(
                profile, d, earliest, latest, threshold_milli=threshold, memo=zmemo
            )
        result.entries[job.id] = PlanEntry(
            job_id=job.id,
            site=job.site,
            start=_dt(start),
            expected_g=expected_grams(cost, job.power_w, pue),
            run_now_g=expected_grams(now_cost, job.power_w, pue),
            mean_intensity_g_per_kwh=cost / (d * MILLI),
            reason=reason_prefix + reason,
            intervals=((_dt(start), _dt(start + d)),),
        )
    return result


def window_mean_g_per_kwh(forecast: Forecast, start: datetime, duration_s: int) -> float:
    """Mean forecast intensity over ``[start, start + duration_s)`` (planner semantics)."""
    p = Profile(forecast)
    s = _epoch(start)
    return p.cost(s, duration_s) / (duration_s * MILLI)


def earliest_bound(now: datetime, job: Job) -> datetime:
    return max(now, job.earliest_start)


def horizon_needed_s(jobs: Sequence[Job], now: datetime) -> int:
    """Forecast horizon that covers every job's latest finish (at least one hour)."""
    latest = now + timedelta(hours=1)
    for j in jobs:
        latest = max(latest, j.latest_start + timedelta(seconds=j.duration_s))
    return int((latest - now).total_seconds())


__all__ = [
    "PlanOptions",
    "Profile",
    "best_start",
    "bisect_left",
    "expected_grams",
    "horizon_needed_s",
    "plan",
    "window_mean_g_per_kwh",
]
