"""The planner: a pure function from jobs, forecasts, sites and ``now`` to a plan.

No clock reads, no I/O. For each job it picks the site and start minimising expected emissions

    expected_g = power_w x PUE x integral of intensity over [start, start + duration]
                 (+ the transfer energy x the home zone's mean intensity when it moves)

over every start its bounds allow, with the forecast treated as a piecewise-constant
function (sub-interval overlaps weighted exactly). Time outside the forecast, and gaps
inside it, count at the forecast's mean. Ties go to the earliest start, then the home site.

Exactness: intensities are resolved to 0.001 gCO2/kWh and times to whole seconds, and
integrals are computed in integers, so equal windows tie exactly. The cost of a start
``s`` is piecewise linear in ``s`` with breakpoints where ``s`` or ``s + duration`` crosses
a forecast boundary, so the earliest minimiser over every second of ``[earliest, latest]``
is one of: ``earliest``, ``latest``, a boundary, or a boundary minus the duration. The
planner evaluates exactly those candidates.

The whole queue. Jobs are placed one by one, higher ``priority`` first, then earlier latest
start (tight deadlines are protected), into a ledger of GPU and CPU use per site per slot
(``PlanOptions.slot_s``; a job holds every slot its run overlaps, so no slot is ever
over-committed). A site capacity of 0 means the planner does not manage that resource
there. Each job first tries its unconstrained optimum; only when that collides with
capacity does it search further. Where capacity does not bind, every job therefore gets
exactly the single-job optimum above. When it binds, the search is still exact for that
job given the jobs already placed: feasibility only changes where ``s`` or ``s + duration``
crosses a slot boundary, so the candidates become forecast breakpoints, slot boundaries
``k*slot`` and ``k*slot - duration`` (plus ``earliest`` and ``latest``). When few jobs
contend (``exact_max_jobs``), a branch-and-bound over those candidates replaces the greedy
answer with the joint optimum.

Sweeps: a trial of a sweep with a cap (``Job.sweep_limit``, Slurm's ``%N``) also takes one
unit of its sweep's own ledger, a :class:`_Ledger` whose one resource is "trials running"
with the cap as capacity, over each of its run intervals and whatever site it is on. The
searches read a site's ledger and the sweep's together (:class:`_Capped`), and ``fits`` and
``reserve`` check and take both, so the cap is one more capacity, never exceeded; a job
outside a capped sweep is planned exactly as without this rule.

Relocation: a job may name other allowed sites; moving away from home delays its earliest
start by the transfer delay (the job's own figure, else the destination site's) and adds
the transfer energy at the home zone's mean forecast intensity. Running jobs passed in
(``running``/``suspended``) are not planned; they hold their site's capacity until their
expected end.

Interruptible jobs may be split into runs on a grid of ``min_chunk_s`` (so every run is at
least that long) with at most ``max_pauses`` pauses, chosen by dynamic programming (or by
taking the cheapest slots when pauses are unlimited); the split is used only when it beats
the best single run.

Speed (none of it changes an answer) lives in two places, each with a plain reference
beside it that the property tests compare against: :func:`best_starts` searches every window
of one duration on one forecast at once (numpy: candidate costs from the profile's cumulative
integral, and the earliest least of each window's range of candidates from a sparse table),
against :func:`best_start`, one window at a time in plain Python; and :class:`_Ledger` keeps
GPU and CPU use per slot as numpy counts, so a capacity search tests every candidate start of
a window at once (a start fits iff the running count of blocked slots does not change over
the slots it holds), against the counts themselves. Integrals stay in epoch-second integers
until the plan entries are written. numpy is imported on first use: a plan of a few jobs on
sites without managed capacity never loads it. Nothing is kept between plans.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from intensity.model import Forecast
from scheduler.holds import holds, sweep_holds, takes
from scheduler.model import TERMINAL_STATES, Job, JobState, Plan, PlanEntry, Site

MILLI = 1000  # intensity resolution: 1/1000 gCO2/kWh
# grams = power_w * (milli-g/kWh * s) / (1000 milli * 3600 s/h * 1000 W/kW)
_G_PER_UNIT_W = 1.0 / (MILLI * 3600.0 * 1000.0)


TERMINAL = TERMINAL_STATES
RUNNING_STATES = frozenset({JobState.RUNNING, JobState.SUSPENDED})
_INF = 1 << 62


@dataclass(frozen=True)
class PlanOptions:
    """Knobs of the planner that are not part of a job."""

    #: when true, a job whose bounds are already past (or that no capacity can take by its
    #: deadline) is planned as early as it fits (overdue); when false it is left unplanned
    allow_overdue: bool = True
    #: width of a capacity slot, seconds (the ledger's resolution)
    slot_s: int = 300
    #: respect site GPU/CPU capacity (0 on a site = not managed)
    enforce_capacity: bool = True
    #: interruptible jobs: shortest run, and most pauses (``None``: unlimited)
    min_chunk_s: int = 3600
    max_pauses: int | None = 3
    #: a job with a ``current`` placement moves only if that saves more than this percent
    hysteresis_pct: float = 0.0
    #: the plan in force: job id -> (site, start); used with ``hysteresis_pct``
    current: Mapping[int, tuple[str, datetime]] = field(default_factory=dict)
    #: placements in force given as run intervals (a paused job's remaining work):
    #: job id -> (site, intervals); kept like ``current`` under ``hysteresis_pct``, priced
    #: over exactly those intervals
    current_runs: Mapping[int, tuple[str, Sequence[tuple[datetime, datetime]]]] = field(default_factory=dict)
    #: jobs already accepted: placed before any other (a new submit cannot push them out)
    committed: frozenset[int] = frozenset()
    #: keep every accepted job (committed, or with a placement in ``current``) at its
    #: placement in force, and plan the rest around them; :func:`plan` does this by itself
    #: when re-planning greedily would push an accepted job past its deadline
    pin_accepted: bool = False
    #: joint branch-and-bound when at most this many jobs are displaced by capacity
    exact_max_jobs: int = 6
    exact_max_nodes: int = 100_000
    #: how far past its window an overdue job may be pushed looking for capacity, seconds
    overdue_search_s: int = 14 * 86400
    #: capacity already held outside ``jobs`` (started runs whose intervals are known):
    #: ``(site, start, end, gpus, cpus)``
    reserved: Sequence[tuple[str, datetime, datetime, int, int]] = ()
    #: trials of capped sweeps already running outside ``jobs`` (:func:`scheduler.holds.
    #: sweep_holds`): ``(sweep_id, start, end)``, each counting against its sweep's cap
    sweep_reserved: Sequence[tuple[int, datetime, datetime]] = ()


def _np():  # type: ignore[no-untyped-def]
    """numpy, imported on first use: a short command planning a few jobs never loads it."""
    import numpy

    return numpy


#: a group of at least this many windows of one duration on one forecast is searched with
#: numpy (:func:`best_starts`); fewer are searched one by one (:func:`best_start`), in plain
#: Python, so that planning a submit on a quiet queue does not import numpy
VECTOR_MIN = 32
#: milli-g/kWh values up to this keep every integral of the planning horizon inside int64
_INT64_SAFE_MILLI = 1 << 28


class Profile:
    """A zone's forecast as an exact integer step function of epoch seconds.

    ``F(t)`` is the integral of intensity (milli-g/kWh x s) from the first boundary to
    ``t``; outside ``[b0, bN)`` and in gaps the intensity is the forecast mean. ``cost`` is
    the plain scalar integral; ``costs`` the same over an array of starts (numpy).
    """

    __slots__ = ("_arrays", "_bx", "_px", "_vx", "b", "fill", "prefix", "v")

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
        self.prefix = [0, *itertools.accumulate(val * (b[i + 1] - b[i]) for i, val in enumerate(v))]
        # the same step function indexed by ``j = bisect_right(b, t)``, with the fill before
        # ``b[0]`` and after ``b[-1]``: ``F(t) = _px[j] + _vx[j] * (t - _bx[j])``, no branches
        if b:
            self._bx = [b[0], *b]
            self._vx = [self.fill, *v, self.fill]
            self._px = [0, *self.prefix]
        else:  # F(t) = fill * t
            self._bx, self._vx, self._px = [0], [self.fill], [0]
        self._arrays: tuple[Any, Any, Any, Any] | None = None

    def F(self, t: int) -> int:
        j = bisect_right(self.b, t)
        return self._px[j] + self._vx[j] * (t - self._bx[j])

    def cost(self, start: int, duration_s: int) -> int:
        """Integral of intensity over ``[start, start + duration_s)`` in milli-g/kWh x s."""
        return self.F(start + duration_s) - self.F(start)

    @property
    def exact_in_int64(self) -> bool:
        """Whether every integral over the planning horizon fits numpy's int64."""
        return max(map(abs, self._vx)) < _INT64_SAFE_MILLI

    def _np_arrays(self) -> tuple[Any, Any, Any, Any]:
        if self._arrays is None:
            np = _np()
            dtype = np.int64 if self.exact_in_int64 else object  # object: exact Python ints
            self._arrays = (np.array(self.b, dtype=np.int64), np.array(self._px, dtype=dtype),
                            np.array(self._vx, dtype=dtype), np.array(self._bx, dtype=np.int64))
        return self._arrays

    def costs(self, ts: Any, duration_s: int) -> Any:
        """``cost(t, duration_s)`` for each of the times ``ts``, as a numpy array."""
        np = _np()
        b, px, vx, bx = self._np_arrays()
        t0 = np.asarray(ts, dtype=np.int64)
        t1 = t0 + duration_s
        i = np.searchsorted(b, t0, side="right")
        j = np.searchsorted(b, t1, side="right")
        return (px[j] + vx[j] * (t1 - bx[j])) - (px[i] + vx[i] * (t0 - bx[i]))


class _Candidates:
    """Candidate starts of one duration (numpy arrays, ascending) and their integer costs."""

    __slots__ = ("costs", "times")

    def __init__(self, times: Any, costs: Any) -> None:
        self.times = times
        self.costs = costs

    def least(self, i: int, j: int) -> tuple[int, int]:
        """``(cost, index)`` of the earliest least cost among candidates ``i..j-1``, ``i < j``."""
        k = i + int(_np().argmin(self.costs[i:j]))
        return int(self.costs[k]), k


def _epoch(t: datetime) -> int:
    return math.ceil(t.timestamp())


def _dt(t: int) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def _sorted_unique(*parts: Any) -> Any:
    """The distinct values of the int64 arrays ``parts``, ascending (a sort and one pass:
    numpy's own ``unique`` hashes first, several times slower on these few thousand)."""
    np = _np()
    x = np.sort(np.concatenate(parts))
    keep = np.ones(len(x), dtype=bool)
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def _candidates(profile: Profile, duration_s: int) -> _Candidates:
    """Every boundary and every boundary minus the duration, sorted, with their costs."""
    np = _np()
    b = np.array(profile.b, dtype=np.int64)
    times = _sorted_unique(b, b - duration_s)
    return _Candidates(times, profile.costs(times, duration_s))


def _window_starts(profile: Profile, duration_s: int, earliest: int, latest: int) -> list[int]:
    """The starts in ``(earliest, latest]`` where the cost's slope can change: boundaries,
    and boundaries minus the duration, ascending."""
    b = profile.b
    ends = b[bisect_right(b, earliest + duration_s):bisect_right(b, latest + duration_s)]
    within = b[bisect_right(b, earliest):bisect_right(b, latest)]
    return sorted(set(within).union([t - duration_s for t in ends]))


def best_start(
    profile: Profile,
    duration_s: int,
    earliest: int,
    latest: int,
    *,
    threshold_milli: int | None = None,
) -> tuple[int, int, str]:
    """``(start, cost, reason)`` of the earliest optimal start in ``[earliest, latest]``.

    The plain reference: candidates one by one. With ``threshold_milli`` the earliest start
    whose window mean is strictly below it wins (``threshold``); when no window gets below
    it, the minimum (``threshold-not-met``).
    """
    if latest < earliest:
        latest = earliest
    times = _window_starts(profile, duration_s, earliest, latest)
    if latest > earliest and (not times or times[-1] != latest):
        times.append(latest)
    costs = [profile.cost(t, duration_s) for t in times]
    e_cost = profile.cost(earliest, duration_s)
    if threshold_milli is not None:
        limit = threshold_milli * duration_s
        if e_cost < limit:
            return earliest, e_cost, "threshold"
        prev_t, prev_c = earliest, e_cost
        for t, c in zip(times, costs, strict=True):
            if c < limit:
                # linear between prev and t: find the first whole second below the limit
                s = _first_below(profile, duration_s, prev_t, prev_c, t, c, limit)
                return s, profile.cost(s, duration_s), "threshold"
            prev_t, prev_c = t, c
        reason = "threshold-not-met"
    else:
        reason = "min-emissions"
    best_t, best_c = earliest, e_cost
    for t, c in zip(times, costs, strict=True):
        if c < best_c:
            best_t, best_c = t, c
    return best_t, best_c, reason


def best_starts(cands: _Candidates, profile: Profile, duration_s: int, earliest: Any,
                latest: Any) -> tuple[Any, Any]:
    """:func:`best_start` (no threshold) for many windows of one duration at once: the
    starts and costs (numpy arrays) of the earliest least window of each ``[earliest[k],
    latest[k]]``, from ``cands`` (``_candidates(profile, duration_s)``)."""
    np = _np()
    e = np.asarray(earliest, dtype=np.int64)
    last = np.maximum(np.asarray(latest, dtype=np.int64), e)
    best_t, best_c = e.copy(), profile.costs(e, duration_s)
    i = np.searchsorted(cands.times, e, side="right")
    j = np.searchsorted(cands.times, last, side="right")
    some = np.flatnonzero(j > i)  # windows with candidates in (earliest, latest]
    if len(some):
        k = _earliest_least(cands.costs, i[some], j[some])
        m = cands.costs[k]
        better = m < best_c[some]
        best_t[some[better]] = cands.times[k[better]]
        best_c[some[better]] = m[better]
    l_cost = profile.costs(last, duration_s)
    later = l_cost < best_c
    return np.where(later, last, best_t), np.where(later, l_cost, best_c)


def _earliest_least(values: Any, i: Any, j: Any) -> Any:
    """For each range ``[i[q], j[q])`` (non-empty), the index of the earliest least of
    ``values`` in it. A sparse table: level ``k`` holds the earliest least of every range
    of ``2**k`` values; a range is covered by two such ranges that overlap, its first and
    its last ``2**k`` values, and the first wins ties."""
    np = _np()
    n = len(values)
    longest = int((j - i).max())
    table = np.zeros((max(1, longest.bit_length()), n), dtype=np.int64)
    table[0] = np.arange(n)
    span = 1
    for level in range(1, len(table)):
        a, b = table[level - 1, :n - span], table[level - 1, span:n]
        table[level, :n - span] = np.where(values[b] < values[a], b, a)
        span *= 2
    level = np.frexp((j - i).astype(np.float64))[1] - 1  # floor(log2(length)), exactly
    first = table[level, i]
    final = table[level, j - (1 << level)]
    return np.where(values[final] < values[first], final, first)


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


class _Ledger:
    """GPU and CPU use of one site, per slot of ``slot_s`` seconds from slot ``k0``, as
    numpy counts: a capacity search reads which slots of a window cannot take a job with
    one comparison over the window (:meth:`blocked`)."""

    __slots__ = ("cpu", "cpu_used", "gpu", "gpu_used", "k0", "slot_s")

    def __init__(self, site: Site, slot_s: int, k0: int) -> None:
        np = _np()
        self.gpu = max(0, site.gpus)
        self.cpu = max(0, site.cpus)
        self.slot_s = slot_s
        self.k0 = k0
        self.gpu_used = np.zeros(0, dtype=np.int64)
        self.cpu_used = np.zeros(0, dtype=np.int64)

    def manages(self, gpus: int, cpus: int) -> bool:
        return (self.gpu > 0 and gpus > 0) or (self.cpu > 0 and cpus > 0)

    def can_ever(self, gpus: int, cpus: int) -> bool:
        return not ((self.gpu > 0 and gpus > self.gpu) or (self.cpu > 0 and cpus > self.cpu))

    def _grow(self, b: int) -> None:
        """Make the ledger cover slots ``[0, b)`` (unused slots are empty)."""
        n = len(self.gpu_used)
        if b > n:
            np = _np()
            grow = max(b - n + 64, n)  # doubling: growing to the horizon stays linear
            self.gpu_used = np.concatenate((self.gpu_used, np.zeros(grow, dtype=np.int64)))
            self.cpu_used = np.concatenate((self.cpu_used, np.zeros(grow, dtype=np.int64)))

    def span(self, a_s: int, b_s: int) -> tuple[int, int]:
        """The slots ``[a, b)`` (indices from ``k0``) a run over ``[a_s, b_s)`` holds."""
        a = a_s // self.slot_s - self.k0
        if a < 0:
            a = 0
        b = -(-b_s // self.slot_s) - self.k0
        if b <= a:
            b = a + 1
        if b > len(self.gpu_used):
            self._grow(b)
        return a, b

    def free(self, a_s: int, b_s: int, gpus: int, cpus: int) -> bool:
        """Whether ``[a_s, b_s)`` has ``gpus`` GPUs and ``cpus`` CPUs left in every slot."""
        a, b = self.span(a_s, b_s)
        if self.gpu > 0 and gpus > 0 and self.gpu_used[a:b].max() + gpus > self.gpu:
            return False
        return not (self.cpu > 0 and cpus > 0 and self.cpu_used[a:b].max() + cpus > self.cpu)

    def blocked(self, a: int, b: int, gpus: int, cpus: int) -> Any:
        """A boolean per ledger slot of ``[a, b)`` (indices from ``k0``): true where the
        slot cannot take ``gpus`` GPUs and ``cpus`` CPUs more."""
        self._grow(b)
        gpu = self.gpu_used[a:b] > self.gpu - gpus if self.gpu > 0 and gpus > 0 else None
        cpu = self.cpu_used[a:b] > self.cpu - cpus if self.cpu > 0 and cpus > 0 else None
        if gpu is not None and cpu is not None:
            return gpu | cpu
        if gpu is None and cpu is None:
            return _np().zeros(b - a, dtype=bool)
        return gpu if gpu is not None else cpu

    def take(self, a_s: int, b_s: int, gpus: int, cpus: int, sign: int = 1) -> None:
        a, b = self.span(a_s, b_s)
        if self.gpu > 0 and gpus > 0:
            self.gpu_used[a:b] += sign * gpus
        if self.cpu > 0 and cpus > 0:
            self.cpu_used[a:b] += sign * cpus


class _Capped:
    """What a trial of a capped sweep finds on a site: the site's ledger (``None`` where
    the site's capacity is not managed) and its sweep's (one "trial running" per run
    interval, the cap as capacity). The same interface as :class:`_Ledger` for the
    searches: a slot is blocked where either cannot take the trial."""

    __slots__ = ("k0", "site", "slot_s", "sweep")

    def __init__(self, site: _Ledger | None, sweep: _Ledger) -> None:
        self.site = site
        self.sweep = sweep
        self.k0 = sweep.k0
        self.slot_s = sweep.slot_s

    def manages(self, gpus: int, cpus: int) -> bool:
        return True

    def can_ever(self, gpus: int, cpus: int) -> bool:
        return self.site is None or self.site.can_ever(gpus, cpus)

    def span(self, a_s: int, b_s: int) -> tuple[int, int]:
        if self.site is not None:
            self.site.span(a_s, b_s)
        return self.sweep.span(a_s, b_s)

    def free(self, a_s: int, b_s: int, gpus: int, cpus: int) -> bool:
        return self.sweep.free(a_s, b_s, 1, 0) and (
            self.site is None or self.site.free(a_s, b_s, gpus, cpus))

    def blocked(self, a: int, b: int, gpus: int, cpus: int) -> Any:
        out = self.sweep.blocked(a, b, 1, 0)
        if self.site is not None and self.site.manages(gpus, cpus):
            out = out | self.site.blocked(a, b, gpus, cpus)
        return out


_Room = _Ledger | _Capped


class _Blocked:
    """The blocked slots of the ledger slots ``[lo, hi)`` for one job, read in O(1) per
    window: ``clear(a, b)`` (no blocked slot in ``[a, b)``) and ``last(a, b)`` (the last
    blocked one, or ``-1``)."""

    __slots__ = ("_blocked", "_count", "_last", "lo")

    def __init__(self, led: _Room, lo: int, hi: int, gpus: int, cpus: int) -> None:
        np = _np()
        self._blocked = led.blocked(lo, hi, gpus, cpus)
        self.lo = lo
        self._count = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(self._blocked, out=self._count[1:])
        self._last: Any = None

    def clear(self, a: int, b: int) -> bool:
        return bool(self._count[b - self.lo] == self._count[a - self.lo])

    def clear_many(self, first: Any, after: Any) -> Any:
        """``clear`` for arrays of windows ``[first, after)``."""
        return self._count[after - self.lo] == self._count[first - self.lo]

    def last(self, a: int, b: int) -> int:
        if self.clear(a, b):
            return -1
        if self._last is None:
            np = _np()
            lo = self.lo
            self._last = np.maximum.accumulate(np.where(self._blocked, np.arange(lo, lo + len(self._blocked)), -1))
        return int(self._last[b - 1 - self.lo])


@dataclass(slots=True)
class _Option:
    """One site a job may run on, with its bounds and fixed costs there."""

    site: str
    zone: str
    pue: float
    profile: Profile | None
    earliest: int
    latest: int
    transfer_g: float
    home: bool
    rank: int
    #: the earliest least contiguous window ``(start, cost)`` ignoring capacity, when
    #: :meth:`_Planner.prepare` computed it for a whole group of windows at once
    best: tuple[int, int] | None = None
    #: the cost of starting at ``earliest``, when computed with ``best``
    now_cost: int | None = None


@dataclass(slots=True)
class _Choice:
    """A placement: site option, intervals, integer cost and grams."""

    option: _Option
    intervals: Sequence[tuple[int, int]]  # tuples of ints: the GC stops tracking them
    cost: int
    grams: float
    reason: str


@dataclass(slots=True)
class _Task:
    job: Job
    duration_s: int
    options: list[_Option]
    home: _Option
    overdue: bool
    threshold_milli: int | None
    choice: _Choice | None = None
    unconstrained: _Choice | None = None
    #: per option: the grams of its single-job optimum, the option, and the optimum
    per_option: list[tuple[float, _Option, _Choice]] = field(default_factory=list)
    late: Sequence[_Option] = ()


class _Full(_Candidates):
    """Capacity-search candidates of one (zone, duration): ascending times, their costs,
    and the ledger slots ``[first, after)`` each start would hold."""

    __slots__ = ("after", "first")

    def __init__(self, times: Any, costs: Any, first: Any, after: Any) -> None:
        super().__init__(times, costs)
        self.first = first
        self.after = after


class _Planner:
    """State of one :func:`plan` call: profiles, memoised candidates, capacity ledgers."""

    def __init__(
        self, forecasts: Mapping[str, Forecast], sites: Mapping[str, Site], now_s: int,
        options: PlanOptions,
    ) -> None:
        self.forecasts = forecasts
        self.sites = sites
        self.now_s = now_s
        self.opt = options
        self.slot_s = max(1, int(options.slot_s))
        self.profiles: dict[str, Profile | None] = {}
        self.full: dict[tuple[str, int], _Full] = {}
        self.cands: dict[tuple[str, int], _Candidates] = {}
        self.datetimes: dict[int, datetime] = {}
        self.ledgers: dict[str, _Ledger | None] = {}
        self.sweeps: dict[int, _Ledger] = {}
        self.k0 = now_s // self.slot_s

    # -- inputs ---------------------------------------------------------------------------
    def profile(self, zone: str) -> Profile | None:
        if zone not in self.profiles:
            fc = self.forecasts.get(zone)
            self.profiles[zone] = Profile(fc) if fc is not None and fc.points else None
        return self.profiles[zone]

    def ledger(self, site_name: str) -> _Ledger | None:
        """The site's ledger; ``None`` where no capacity is managed."""
        try:
            return self.ledgers[site_name]
        except KeyError:
            site = self.sites.get(site_name)
            managed = self.opt.enforce_capacity and site is not None and (site.gpus > 0 or site.cpus > 0)
            led = self.ledgers[site_name] = _Ledger(site, self.slot_s, self.k0) if managed else None  # type: ignore[arg-type]
            return led

    def sweep(self, job: Job) -> _Ledger | None:
        """The ledger of running trials of ``job``'s sweep (``None`` outside a capped
        sweep); made at first use, holding the trials already running outside the plan."""
        sid = job.sweep_id
        if sid is None or job.sweep_limit is None:
            return None
        led = self.sweeps.get(sid)
        if led is None:
            cap = Site(f"sweep {sid}", "", gpus=max(1, job.sweep_limit))
            led = self.sweeps[sid] = _Ledger(cap, self.slot_s, self.k0)
            for s, a, b in self.opt.sweep_reserved:
                if s == sid and _epoch(b) > self.now_s:
                    led.take(max(self.now_s, _epoch(a)), _epoch(b), 1, 0)
        return led

    def room(self, t: _Task, site_name: str) -> _Room | None:
        """What a capacity search for ``t`` on ``site_name`` reads: the site's ledger, and
        for a trial of a capped sweep its sweep's too."""
        led = self.ledger(site_name)
        sw = self.sweep(t.job)
        return led if sw is None else _Capped(led, sw)

    def task(self, job: Job) -> _Task:
        assert job.id is not None
        d = job.duration_s
        earliest = max(self.now_s, _epoch(job.earliest_start))
        latest = math.floor(job.latest_start.timestamp())
        overdue = False
        if latest < earliest - 1:  # a second of rounding is not lateness
            latest = earliest
            overdue = True
        elif latest < earliest:
            latest = earliest
        home_site = self.sites.get(job.site)
        home_zone = home_site.zone if home_site is not None else job.zone
        home_profile = self.profile(home_zone)
        options: list[_Option] = []
        late: list[_Option] = []  # sites the transfer delay puts past the latest start
        for rank, name in enumerate(dict.fromkeys((job.site, *job.allowed_sites))):
            site = self.sites.get(name)
            if rank > 0 and (site is None or job.run_now):
                continue
            zone = site.zone if site is not None else job.zone
            profile = self.profile(zone)
            pue = site.pue if site is not None else 1.0
            if rank == 0:
                options.append(_Option(name, zone, pue, profile, earliest, latest, 0.0, True, 0))
                continue
            if profile is None:
                continue
            assert site is not None
            delay = job.transfer_delay_s if job.transfer_delay_s is not None else site.transfer_delay_s
            energy_j = job.transfer_energy_j if job.transfer_energy_j is not None else site.transfer_energy_j
            e = earliest + max(0, int(delay))
            mean = home_profile.fill / MILLI if home_profile is not None else 0.0
            transfer_g = max(0.0, energy_j) / 3.6e6 * mean
            opt = _Option(name, zone, pue, profile, e, max(e, latest), transfer_g, False, rank)
            (options if e <= latest else late).append(opt)
        threshold = (
            round(job.threshold_g_per_kwh * MILLI) if job.threshold_g_per_kwh is not None else None
        )
        return _Task(job, d, options, options[0], overdue, threshold, late=late or ())

    # -- costs ----------------------------------------------------------------------------
    def grams(self, opt: _Option, cost: int, job: Job) -> float:
        return expected_grams(cost, job.power_w, opt.pue) + opt.transfer_g

    def interval_cost(self, opt: _Option, intervals: Sequence[tuple[int, int]]) -> int:
        p = opt.profile
        if p is None:
            return 0
        return sum(p.cost(a, b - a) for a, b in intervals)

    def option_optimum(self, t: _Task, opt: _Option) -> _Choice:
        """The single-job optimum on one option, ignoring capacity (exact, earliest tie)."""
        job, d = t.job, t.duration_s
        p = opt.profile
        if p is None:
            return _Choice(opt, ((opt.earliest, opt.earliest + d),), 0, math.nan, "no-forecast")
        if job.run_now:
            start, cost, reason = opt.earliest, p.cost(opt.earliest, d), "run-now"
        elif opt.best is not None:
            (start, cost), reason = opt.best, "min-emissions"
        else:
            start, cost, reason = best_start(
                p, d, opt.earliest, opt.latest, threshold_milli=t.threshold_milli,
            )
        c = _Choice(opt, ((start, start + d),), cost, self.grams(opt, cost, job), reason)
        if job.interruptible and not job.run_now and t.threshold_milli is None:
            sp = self.split(t, opt, None)
            if sp is not None and sp.grams < c.grams:
                c = sp
        return c

    def unconstrained(self, t: _Task) -> _Choice:
        """The single-job optimum over every option (home first on ties): ``_better``
        orders placements on different options totally, by grams, then start, then rank."""
        best: _Choice | None = None
        t.per_option = []
        for opt in t.options:
            c = self.option_optimum(t, opt)
            t.per_option.append((c.grams, opt, c))
            if best is None or _better(c, best):
                best = c
        assert best is not None
        return best

    def prepare(self, tasks: Sequence[_Task]) -> None:
        """Compute the contiguous optimum of every option at once, per group of windows of
        one duration on one forecast (:func:`best_starts`), where a group is large enough
        to be worth numpy; the rest are searched one by one when asked."""
        groups: dict[tuple[str, int], list[_Option]] = {}
        for t in tasks:
            if t.job.run_now or t.threshold_milli is not None:
                continue
            for o in t.options:
                if o.profile is not None:
                    groups.setdefault((o.zone, t.duration_s), []).append(o)
        for (zone, d), opts in groups.items():
            p = opts[0].profile
            assert p is not None
            if len(opts) < VECTOR_MIN or not p.exact_in_int64:
                continue
            earliest = [o.earliest for o in opts]
            starts, costs = best_starts(self.candidates(zone, p, d), p, d, earliest,
                                        [o.latest for o in opts])
            now = p.costs(earliest, d).tolist()
            for o, s, c, n in zip(opts, starts.tolist(), costs.tolist(), now, strict=True):
                o.best, o.now_cost = (s, c), n

    def candidates(self, zone: str, p: Profile, d: int) -> _Candidates:
        key = (zone, d)
        hit = self.cands.get(key)
        if hit is None:
            hit = self.cands[key] = _candidates(p, d)
        return hit

    # -- capacity -------------------------------------------------------------------------
    def fits(self, t: _Task, c: _Choice) -> bool:
        sw = self.sweep(t.job)
        if sw is not None and not all(sw.free(a, b, 1, 0) for a, b in c.intervals):
            return False
        led = self.ledger(c.option.site)
        if led is None:
            return True
        g, cp = t.job.gpus, t.job.cpus
        if not led.manages(g, cp):
            return True
        if len(c.intervals) == 1:  # the common case, without a generator
            return led.free(*c.intervals[0], g, cp)
        return all(led.free(a, b, g_, c_) for a, b, g_, c_ in takes(t.job, c.intervals))

    def reserve(self, t: _Task, c: _Choice, sign: int = 1) -> None:
        sw = self.sweep(t.job)
        if sw is not None:
            for a, b in c.intervals:
                sw.take(a, b, 1, 0, sign)
        led = self.ledger(c.option.site)
        if led is None:
            return
        for a, b, g, cp in takes(t.job, c.intervals):
            led.take(a, b, g, cp, sign)

    def full_candidates(self, opt: _Option, d: int) -> _Full:
        """Forecast breakpoints, slot boundaries and slot boundaries minus ``d`` over the
        planning horizon, with their costs and the slots ``[first, after)`` each would hold
        (as :meth:`_Ledger.span` says)."""
        key = (opt.zone, d)
        hit = self.full.get(key)
        if hit is not None:
            return hit
        np = _np()
        p = opt.profile
        assert p is not None
        slot = self.slot_s
        lo = self.now_s - d - slot
        hi = self.horizon_end
        grid = np.arange(-(-lo // slot) * slot, hi + slot, slot, dtype=np.int64)
        b = np.array(p.b, dtype=np.int64)  # boundaries, and boundaries minus d, in [lo, hi]
        ends = b[(b >= lo + d) & (b <= hi + d)] - d
        times = _sorted_unique(b[(b >= lo) & (b <= hi)], ends, grid, grid[grid - d >= lo] - d)
        first = np.maximum(times // slot - self.k0, 0)
        after = np.maximum(-(-(times + d) // slot) - self.k0, first + 1)
        hit = self.full[key] = _Full(times, p.costs(times, d), first, after)
        return hit

    horizon_end: int = 0

    def best_feasible(self, t: _Task, opt: _Option) -> _Choice | None:
        """Lowest-emission start on ``opt`` that fits the ledger (exact over candidates)."""
        job, d = t.job, t.duration_s
        led = self.room(t, opt.site)
        p = opt.profile
        g, cp = job.gpus, job.cpus
        e, l_ = opt.earliest, opt.latest
        if led is not None and not led.can_ever(g, cp):
            return None
        if led is None or not led.manages(g, cp):
            return self.option_optimum(t, opt)
        if p is None:
            s = self.first_fit(t, opt, e, l_)
            return None if s is None else _Choice(opt, ((s, s + d),), 0, math.nan, "no-forecast")
        best: _Choice | None = None
        if job.interruptible and not job.run_now and t.threshold_milli is None:
            best = self.split(t, opt, led)
        if job.run_now or t.threshold_milli is not None:
            limit = None if t.threshold_milli is None or job.run_now else t.threshold_milli * d
            s = self.first_fit(t, opt, e, l_, limit=limit)
            reason = "run-now" if job.run_now else "threshold"
            if s is None and t.threshold_milli is not None:
                reason = "threshold-not-met"
            if s is not None:
                c = p.cost(s, d)
                return _Choice(opt, ((s, s + d),), c, self.grams(opt, c, job), reason + ":capacity")
            if job.run_now:
                return None
        # A start fits iff no slot it holds is blocked; of the candidates in [e, l_] and
        # both ends, the earliest least cost that fits wins.
        full = self.full_candidates(opt, d)
        times = full.times
        i0, i1 = int(times.searchsorted(e, "left")), int(times.searchsorted(l_, "right"))
        e_slots, l_slots = led.span(e, e + d), led.span(l_, l_ + d)
        lo_slot, hi_slot = e_slots[0], l_slots[1]
        if i1 > i0:
            lo_slot, hi_slot = min(lo_slot, int(full.first[i0])), max(hi_slot, int(full.after[i1 - 1]))
        blocked = _Blocked(led, lo_slot, hi_slot, g, cp)
        found: tuple[int, int] | None = None
        if i1 > i0:
            fits = blocked.clear_many(full.first[i0:i1], full.after[i0:i1])
            costs = _np().where(fits, full.costs[i0:i1], _INF)
            k = int(costs.argmin())
            if costs[k] < _INF:
                found = (int(times[i0 + k]), int(costs[k]))
        for s, (a, b) in ((e, e_slots), (l_, l_slots)):
            if blocked.clear(a, b):
                c = p.cost(s, d)
                if found is None or c < found[1] or (c == found[1] and s < found[0]):
                    found = (s, c)
        if found is not None:
            s, c = found
            contiguous = _Choice(opt, ((s, s + d),), c, self.grams(opt, c, job), "min-emissions:capacity")
            if best is None or _better(contiguous, best):
                best = contiguous
        return best

    def first_fit(self, t: _Task, opt: _Option, e: int, l_: int, limit: int | None = None) -> int | None:
        """Earliest start in ``[e, l_]`` on a slot boundary (or ``e``) that fits, and whose
        cost is below ``limit`` when given."""
        led = self.room(t, opt.site)
        d, g, cp = t.duration_s, t.job.gpus, t.job.cpus
        p = opt.profile
        slot = self.slot_s
        blocked: _Blocked | None = None
        if led is not None and led.manages(g, cp):
            # the ledger does not change during the search: its blocked slots, once
            lo, hi = led.span(e, l_ + d)
            blocked = _Blocked(led, lo, max(hi, led.span(l_, l_ + d)[1]), g, cp)
        s = e
        while s <= l_:
            if blocked is not None:
                assert led is not None
                last = blocked.last(*led.span(s, s + d))
                if last >= 0:  # jump past the last blocked slot of the window
                    s = max((last + led.k0 + 1) * slot, (s // slot + 1) * slot)
                    continue
            if limit is None or p is None or p.cost(s, d) < limit:
                return s
            s = (s // slot + 1) * slot
        return None

    def split(self, t: _Task, opt: _Option, led: _Room | None) -> _Choice | None:
        """Best split of an interruptible job on ``opt`` (``None`` when no split helps)."""
        p = opt.profile
        if p is None:
            return None
        job = t.job
        step = max(1, self.opt.min_chunk_s)
        free = None
        finish_by = opt.latest + t.duration_s
        if led is not None and led.manages(job.gpus, job.cpus):
            # every step split_plan asks about lies in [earliest, finish_by): the ledger's
            # blocked slots there, once
            lo, hi = led.span(opt.earliest, finish_by)
            blocked = _Blocked(led, lo, hi, job.gpus, job.cpus)

            def free(a: int, b: int) -> bool:
                x, y = led.span(a, b)
                if x < lo or y > hi:
                    return led.free(a, b, job.gpus, job.cpus)
                return blocked.clear(x, y)

        res = split_plan(
            p, t.duration_s, opt.earliest, finish_by, step_s=step,
            max_pauses=self.opt.max_pauses, free=free,
        )
        if res is None:
            return None
        cost, intervals = res
        c = _Choice(opt, tuple(intervals), cost, self.grams(opt, cost, job), f"split:{len(intervals)}")
        if free is not None and len(intervals) > 1 and not self.fits(t, c):
            return None  # a stop-mode job keeps its GPUs through its pauses: they are taken
        return c

    def place(self, t: _Task) -> _Choice | None:
        """Best placement of ``t`` given the ledger, or ``None`` if nothing fits in time."""
        u = t.unconstrained
        assert u is not None
        cur = self.current(t)
        if self.fits(t, u):
            best: _Choice | None = u
        else:
            best = None
            # each option's own optimum bounds what it can offer: best bound first, and
            # stop once no remaining option can beat the best placement found
            bounds = sorted(
                t.per_option, key=lambda x: (x[0] if math.isfinite(x[0]) else math.inf, x[1].rank),
            )
            for grams, opt, lb in bounds:
                if best is not None and math.isfinite(best.grams) and grams > best.grams:
                    break
                c = lb if lb is not u and self.fits(t, lb) else self.best_feasible(t, opt)
                if c is not None and (best is None or _better(c, best)):
                    best = c
        if cur is not None and self.fits(t, cur) and (
            best is None
            or not math.isfinite(best.grams)
            or best.grams >= cur.grams * (1.0 - self.opt.hysteresis_pct / 100.0)
        ):
            return cur
        return best

    def current(self, t: _Task) -> _Choice | None:
        """The job's placement in the plan in force, if still allowed (for hysteresis); run
        intervals in force (``current_runs``) count even without hysteresis: a paused job
        moves only for a gain (they may be cheaper than any split this plan searches)."""
        if self.opt.hysteresis_pct <= 0 and t.job.id not in self.opt.current_runs:
            return None
        return self.in_force(t)

    def in_force(self, t: _Task) -> _Choice | None:
        """The job's placement in the plan in force, if still inside its window."""
        if t.job.id in self.opt.current_runs:
            return self.runs_in_force(t)
        if t.job.id not in self.opt.current:
            return None
        site, start = self.opt.current[t.job.id]  # type: ignore[index]
        s = _epoch(start)
        for opt in t.options:
            # the transfer to the site it is placed on counts from when it was placed there,
            # not again from every re-plan's ``now``
            lo = opt.earliest if opt.home else min(opt.earliest, t.home.earliest)
            if opt.site == site and lo <= s <= opt.latest and opt.profile is not None:
                c = opt.profile.cost(s, t.duration_s)
                return _Choice(opt, ((s, s + t.duration_s),), c, self.grams(opt, c, t.job), "kept")
        return None

    def runs_in_force(self, t: _Task) -> _Choice | None:
        """The job's run intervals in force (``current_runs``), if they still start inside
        its window and end by its finish-by time."""
        site, spans = self.opt.current_runs[t.job.id]  # type: ignore[index]
        intervals = tuple((_epoch(a), _epoch(b)) for a, b in spans if b > a)
        if not intervals:
            return None
        for opt in t.options:
            if (opt.site == site and opt.profile is not None and opt.earliest <= intervals[0][0]
                    and intervals[0][0] <= opt.latest and intervals[-1][1] <= opt.latest + t.duration_s):
                c = self.interval_cost(opt, intervals)
                return _Choice(opt, intervals, c, self.grams(opt, c, t.job), "kept")
        return None

    def overdue(self, t: _Task) -> _Choice | None:
        """The earliest-finishing placement after the window (capacity or lateness)."""
        best: _Choice | None = None
        d = t.duration_s
        for opt in [*t.options, *t.late]:
            led = self.ledger(opt.site)
            if led is not None and not led.can_ever(t.job.gpus, t.job.cpus):
                continue
            s = self.first_fit(t, opt, opt.earliest, opt.latest + self.opt.overdue_search_s)
            if s is None:
                continue
            c = opt.profile.cost(s, d) if opt.profile is not None else 0
            g = self.grams(opt, c, t.job) if opt.profile is not None else math.nan
            ch = _Choice(opt, ((s, s + d),), c, g, "overdue:capacity")
            if best is None or s + d < best.intervals[-1][1]:
                best = ch
        return best


def _better(a: _Choice, b: _Choice) -> bool:
    """``a`` emits less than ``b``; ties go to the earlier start, then the home site."""
    ga, gb = a.grams, b.grams
    if not math.isfinite(gb):
        return math.isfinite(ga)
    if not math.isfinite(ga):
        return False
    if ga != gb:
        if a.option is b.option:
            return a.cost < b.cost if a.cost != b.cost else a.intervals[0][0] < b.intervals[0][0]
        return ga < gb
    if a.intervals[0][0] != b.intervals[0][0]:
        return a.intervals[0][0] < b.intervals[0][0]
    return a.option.rank < b.option.rank


def split_plan(
    profile: Profile,
    duration_s: int,
    earliest: int,
    finish_by: int,
    *,
    step_s: int,
    max_pauses: int | None,
    free: Callable[[int, int], bool] | None = None,
) -> tuple[int, list[tuple[int, int]]] | None:
    """Cheapest split of ``duration_s`` into runs on a grid of ``step_s`` within
    ``[earliest, finish_by]``: each run is whole grid steps (so at least ``step_s``
    long, the last one trimmed to the exact duration), at most ``max_pauses`` pauses.

    Returns ``(cost, intervals)`` with the exact integer cost, or ``None`` when the window
    holds too few free steps or the job is a single step. ``free(a, b)`` marks usable steps.
    """
    g0 = -(-earliest // step_s) * step_s
    n_steps = (finish_by - g0) // step_s
    n = -(-duration_s // step_s)
    if n <= 1 or n_steps < n:
        return None
    starts = [g0 + i * step_s for i in range(n_steps)]
    f = [profile.F(s) for s in (*starts, g0 + n_steps * step_s)]
    costs = [b - a for a, b in itertools.pairwise(f)]
    if free is not None:
        costs = [c if free(s, s + step_s) else _INF for s, c in zip(starts, costs, strict=True)]
    runs_max = None if max_pauses is None else max_pauses + 1
    chosen: list[int] | None
    cheapest = sorted(range(n_steps), key=costs.__getitem__)[:n]  # stable: earliest of ties
    if costs[cheapest[-1]] >= _INF:
        return None
    cheapest.sort()
    runs = 1 + sum(1 for a, b in itertools.pairwise(cheapest) if b != a + 1)
    if runs_max is None or runs <= runs_max:
        chosen = cheapest
    else:
        chosen = _split_dp(costs, n, runs_max)
        if chosen is None:
            return None
    rem = duration_s - (n - 1) * step_s
    intervals: list[tuple[int, int]] = []
    for k, i in enumerate(chosen):
        a = starts[i]
        b = a + (rem if k == n - 1 else step_s)
        if intervals and intervals[-1][1] == a:
            intervals[-1] = (intervals[-1][0], b)
        else:
            intervals.append((a, b))
    cost = sum(profile.cost(a, b - a) for a, b in intervals)
    return cost, intervals


def _split_dp(costs: list[int], n: int, runs_max: int) -> list[int] | None:
    """Choose ``n`` steps in at most ``runs_max`` runs minimising the sum of ``costs``.

    ``val[r][o][k]``: least cost with ``k`` steps taken in ``r`` runs, ``o`` whether the
    previous step was taken. Tables per step are kept to walk the choice back.
    """
    width = n + 1
    inf = _INF
    val = [[[inf] * width for _ in range(2)] for _ in range(runs_max + 1)]
    val[0][0][0] = 0
    history: list[list[list[list[int]]]] = []
    for c in costs:
        history.append(val)
        new = [[[inf] * width for _ in range(2)] for _ in range(runs_max + 1)]
        for r in range(runs_max + 1):
            off, on = val[r]
            # skip this step
            new[r][0] = [a if a <= b else b for a, b in zip(off, on, strict=True)]
            if c >= inf:
                continue
            # take it, continuing a run
            cont = [inf] + [v + c for v in on[:-1]]
            tgt = new[r][1]
            new[r][1] = [a if a <= b else b for a, b in zip(tgt, cont, strict=True)]
            # take it, starting a run
            if r + 1 <= runs_max:
                fresh = [inf] + [v + c for v in off[:-1]]
                tgt = new[r + 1][1]
                new[r + 1][1] = [a if a <= b else b for a, b in zip(tgt, fresh, strict=True)]
        val = new
    best, state = inf, None
    for r in range(runs_max + 1):
        for o in range(2):
            if val[r][o][n] < best:
                best, state = val[r][o][n], (r, o)
    if state is None or best >= inf:
        return None
    r, o = state
    k = n
    chosen: list[int] = []
    tables = [*history[1:], val]  # tables[i]: after step i
    for i in range(len(costs) - 1, -1, -1):
        prev = history[i]
        cur_v = tables[i][r][o][k]
        if o == 0:  # step i skipped: came from (r, 0) or (r, 1) with the same k
            o = 0 if prev[r][0][k] == cur_v else 1
            continue
        chosen.append(i)  # step i taken: continuing a run, or starting run r
        if prev[r][1][k - 1] + costs[i] == cur_v:
            k -= 1
        else:
            o, k, r = 0, k - 1, r - 1
    chosen.reverse()
    return chosen


def plan(
    jobs: Sequence[Job],
    forecasts: Mapping[str, Forecast],
    sites: Mapping[str, Site],
    now: datetime,
    options: PlanOptions | None = None,
) -> Plan:
    """Plan the queue: a site and start (or run intervals) for every waiting job.

    ``forecasts`` maps a zone to its forecast; a job whose zone has none is planned at its
    earliest start (``no-forecast``): carbon data never blocks work. Jobs in ``running`` or
    ``suspended`` state are not planned but hold capacity on their site until their
    expected end; terminal jobs are ignored.
    """
    options = options or PlanOptions()
    result = Plan()
    now_s = _epoch(now)
    pl = _Planner(forecasts, sites, now_s, options)
    tasks: list[_Task] = []
    horizon = now_s + 3600
    for job in jobs:
        if job.id is None:
            raise ValueError("plan() needs jobs with ids")
        if job.state in TERMINAL:
            continue
        if job.state in RUNNING_STATES:
            _hold_running(pl, job, now)
            continue
        t = pl.task(job)
        if t.overdue and not options.allow_overdue:
            result.unplanned[job.id] = "latest start has passed"
            continue
        tasks.append(t)
        horizon = max(horizon, t.home.latest + t.duration_s)
    pl.horizon_end = horizon
    pl.prepare(tasks)
    for site_name, a, b, gpus, cpus in options.reserved:
        led = pl.ledger(site_name)
        if led is not None and b > now:
            led.take(max(now_s, _epoch(a)), _epoch(b), gpus, cpus)
    committed = options.committed
    if options.pin_accepted:
        tasks = _pin_accepted(pl, tasks, result)
    tasks.sort(key=lambda t: (
        t.job.id not in committed, -t.job.priority, t.home.latest, -t.duration_s, t.job.id,
    ))
    # While the joint search may still run (at most ``exact_max_jobs`` jobs on sites with
    # managed capacity), placed jobs are held; once it cannot (or where no site manages
    # capacity, so there is nothing to search jointly), each entry is written as soon as its
    # job is placed and the job's planning state is let go, in the same order
    managed = options.enforce_capacity and any(s.gpus > 0 or s.cpus > 0 for s in sites.values())
    joint = managed and not ((options.hysteresis_pct > 0 and options.current) or options.current_runs)
    held: list[_Task] = []
    pooled = 0
    displaced = False
    tasks.reverse()
    while tasks:
        t = tasks.pop()
        t.unconstrained = pl.unconstrained(t)
        c = pl.place(t)
        t.per_option.clear()  # placed: what the other sites offered is garbage now
        displaced = displaced or c is not t.unconstrained
        t.unconstrained = None
        if c is None:
            if not options.pin_accepted and not t.overdue and (
                    t.job.id in committed or t.job.id in options.current):
                # the greedy order cannot fit every accepted job (the plan in force did):
                # keep them where they are and plan the rest around them
                return plan(jobs, forecasts, sites, now, replace(options, pin_accepted=True))
            if options.allow_overdue:
                c = pl.overdue(t)
                if c is None:
                    result.unplanned[t.job.id] = "no allowed site can ever hold its GPUs/CPUs"  # type: ignore[index]
                    continue
            else:
                late = pl.overdue(t)
                assert t.job.id is not None
                if late is not None:
                    result.earliest_finish[t.job.id] = _dt(late.intervals[-1][1])
                    result.unplanned[t.job.id] = (
                        f"no capacity before its deadline: the earliest finish that fits is "
                        f"{_dt(late.intervals[-1][1]).isoformat()}"
                    )
                else:
                    result.unplanned[t.job.id] = "no allowed site can ever hold its GPUs/CPUs"
                continue
        t.choice = c
        pl.reserve(t, c)
        if joint:
            held.append(t)
            pooled += pl.ledger(c.option.site) is not None
            if pooled <= options.exact_max_jobs:
                continue
            joint = False  # too many jobs share capacity for the joint search
            for h in held:
                result.entries[h.job.id] = _entry(pl, h, h.choice)  # type: ignore[arg-type,index]
            held = []
        else:
            result.entries[t.job.id] = _entry(pl, t, c)  # type: ignore[index]
    if joint and displaced:
        _improve_exactly(pl, held)
    for h in held:
        result.entries[h.job.id] = _entry(pl, h, h.choice)  # type: ignore[arg-type,index]
    return result


def _pin_accepted(pl: _Planner, tasks: list[_Task], result: Plan) -> list[_Task]:
    """Reserve every accepted, unsplit job at its placement in force (where it still fits
    its window and the ledger); return the tasks left to plan."""
    opt = pl.opt
    rest: list[_Task] = []
    for t in tasks:
        accepted = t.job.id in opt.committed or t.job.id in opt.current
        c = pl.in_force(t) if accepted and not t.job.interruptible else None
        if c is None or not pl.fits(t, c):
            rest.append(t)
            continue
        c.reason = "kept: a re-plan would push an accepted job past its deadline"
        pl.reserve(t, c)
        result.entries[t.job.id] = _entry(pl, t, c)  # type: ignore[index]
    return rest


def _hold_running(pl: _Planner, job: Job, now: datetime) -> None:
    """A running or suspended job holds its site's capacity as :func:`holds` says, and a
    trial its sweep's as :func:`sweep_holds` says."""
    now_s = _epoch(now)
    for site, a, b, gpus, cpus in holds(job, None, now):
        led = pl.ledger(site)
        if led is not None:
            led.take(max(now_s, _epoch(a)), _epoch(b), gpus, cpus)
    sw = pl.sweep(job)
    if sw is not None:
        for _, a, b in sweep_holds(job, None, now):
            sw.take(max(now_s, _epoch(a)), _epoch(b), 1, 0)


def _entry(pl: _Planner, t: _Task, c: _Choice) -> PlanEntry:
    job, d = t.job, t.duration_s
    assert job.id is not None
    home = t.home
    prefix = "overdue:" if t.overdue and not c.reason.startswith("overdue") else ""
    if home.profile is None:
        now_g = math.nan
    else:
        now_c = home.now_cost if home.now_cost is not None else home.profile.cost(home.earliest, d)
        now_g = expected_grams(now_c, job.power_w, home.pue)
    if c.option.profile is None or not math.isfinite(c.grams):
        expected, mean = math.nan, math.nan
    else:
        expected, mean = c.grams, c.cost / (d * MILLI)
    reason = prefix + c.reason
    if not c.option.home:
        reason += f"; relocated from {home.site}"
    dts = pl.datetimes  # many runs share their ends: each instant converted once
    intervals = []
    for a, b in c.intervals:
        da = dts.get(a)
        if da is None:
            da = dts[a] = _dt(a)
        db = dts.get(b)
        if db is None:
            db = dts[b] = _dt(b)
        intervals.append((da, db))
    return PlanEntry(
        job_id=job.id, site=c.option.site, start=intervals[0][0], expected_g=expected,
        run_now_g=now_g, mean_intensity_g_per_kwh=mean, reason=reason,
        intervals=tuple(intervals),
    )


def _improve_exactly(pl: _Planner, placed: list[_Task]) -> None:
    """Joint branch-and-bound over the jobs that share capacity, when they are few.

    Only non-interruptible, non-threshold, non-run-now jobs on forecast sites take part;
    the greedy plan is the incumbent, so the result is never worse.
    """
    opt = pl.opt
    pool = [t for t in placed if t.choice is not None and pl.ledger(t.choice.option.site) is not None]
    if not pool or len(pool) > opt.exact_max_jobs:
        return
    if any(t.job.interruptible or t.job.run_now or t.threshold_milli is not None
           or any(o.profile is None for o in t.options) for t in pool):
        return
    # candidate placements per job, by grams
    cand: list[list[_Choice]] = []
    for t in pool:
        lst: list[_Choice] = []
        for o in t.options:
            full = pl.full_candidates(o, t.duration_s)
            i = int(full.times.searchsorted(o.earliest, "left"))
            j = int(full.times.searchsorted(o.latest, "right"))
            times, costs = full.times[i:j].tolist(), full.costs[i:j].tolist()
            seen = set(times)
            pts = list(zip(times, costs, strict=True))
            for s in (o.earliest, o.latest):
                if s not in seen:
                    pts.append((s, o.profile.cost(s, t.duration_s)))  # type: ignore[union-attr]
            for s, cost in pts:
                lst.append(_Choice(o, ((s, s + t.duration_s),), cost, pl.grams(o, cost, t.job),
                                   "min-emissions:joint"))
        lst.sort(key=lambda ch: (ch.grams, ch.intervals[0][0], ch.option.rank))
        cand.append(lst)
    for t in pool:
        pl.reserve(t, t.choice, -1)  # type: ignore[arg-type]
    incumbent = math.fsum(t.choice.grams for t in pool if t.choice is not None)
    if any(t.choice is None or t.choice.reason.startswith("overdue") for t in pool):
        incumbent = math.inf  # any in-window plan beats an overdue one
    lb = [c[0].grams if c else math.inf for c in cand]
    rest = [0.0] * (len(pool) + 1)
    for i in range(len(pool) - 1, -1, -1):
        rest[i] = rest[i + 1] + lb[i]
    found: list[_Choice] | None = None
    stack: list[_Choice] = []
    nodes = 0
    eps = 1e-9 * max(1.0, abs(incumbent)) if math.isfinite(incumbent) else 0.0

    def dfs(i: int, acc: float) -> None:
        nonlocal found, incumbent, nodes
        if i == len(pool):
            if acc < incumbent - eps:
                incumbent, found = acc, list(stack)
            return
        for ch in cand[i]:
            nodes += 1
            if nodes > opt.exact_max_nodes:
                return
            if acc + ch.grams + rest[i + 1] >= incumbent - eps:
                return
            if pl.fits(pool[i], ch):
                pl.reserve(pool[i], ch)
                stack.append(ch)
                dfs(i + 1, acc + ch.grams)
                stack.pop()
                pl.reserve(pool[i], ch, -1)

    dfs(0, 0.0)
    if found is not None:
        for t, ch in zip(pool, found, strict=True):
            t.choice = ch
    for t in pool:
        pl.reserve(t, t.choice)  # type: ignore[arg-type]


def window_mean_g_per_kwh(forecast: Forecast, start: datetime, duration_s: int) -> float:
    """Mean forecast intensity over ``[start, start + duration_s)`` (planner semantics)."""
    p = Profile(forecast)
    s = _epoch(start)
    return p.cost(s, duration_s) / (duration_s * MILLI)


#: The longest forecast worth planning on. Providers forecast a day or two; past that the
#: chain extends with the local forecaster, whose per-lead weights stop changing after 48 h
#: and whose profile repeats weekly, so a window starting later than this is no cheaper
#: than one a week earlier. Past a forecast's end the planner takes its mean (see
#: :class:`Profile`) and prefers the earliest of equal starts, so a far deadline is planned
#: on this horizon: planning costs O(horizon), never O(distance to the deadline).
MAX_FORECAST_HORIZON_S = 9 * 86400


def horizon_needed_s(jobs: Sequence[Job], now: datetime) -> int:
    """Forecast horizon that covers every job's latest finish (at least one hour, at most
    :data:`MAX_FORECAST_HORIZON_S`)."""
    latest = now + timedelta(hours=1)
    for j in jobs:
        latest = max(latest, j.latest_start + timedelta(seconds=j.duration_s))
    return min(int((latest - now).total_seconds()), MAX_FORECAST_HORIZON_S)


__all__ = [
    "MAX_FORECAST_HORIZON_S",
    "PlanOptions",
    "Profile",
    "best_start",
    "bisect_left",
    "expected_grams",
    "horizon_needed_s",
    "plan",
    "split_plan",
    "window_mean_g_per_kwh",
]
