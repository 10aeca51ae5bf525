"""One job: its options (home site first, then the allowed sites its transfer delay still
lets start in time) and its best start on one option, without capacity (the exact single-
job optimum, earliest on ties) and with it (the earliest least start that fits the
ledger, over the candidates where cost or feasibility can change).

Where capacity does not bind, every job gets exactly the single-job optimum. When it
binds, the search is still exact for that job given the jobs already placed: feasibility
only changes where ``s`` or ``s + duration`` crosses a slot boundary, so the candidates
become forecast breakpoints, slot boundaries ``k*slot`` and ``k*slot - duration`` (plus
``earliest`` and ``latest``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from math import ceil, floor

from intensity.model import Forecast
from intensity.series import MILLI, Series, best_start, best_starts_and_now, np
from scheduler.domain.model import Job, PlanEntry, plan_entry
from scheduler.planning.capacity import Blocked
from scheduler.planning.context import Context
from scheduler.planning.split import split_on
from scheduler.planning.types import (
    G_PER_UNIT_W,
    INF,
    Choice,
    Option,
    Task,
    better,
    epoch,
    to_datetime,
)

#: a group of at least this many windows of one duration on one forecast is searched with
#: numpy (:func:`best_starts`); fewer are searched one by one (:func:`best_start`), in plain
#: Python, so that planning a submit on a quiet queue does not import numpy
VECTOR_MIN = 32
#: the reason of a job at its single-job optimum
MIN_EMISSIONS = "min-emissions"


def bounds(now_s: int, job: Job) -> tuple[int, int, bool]:
    """``(earliest, latest, overdue)``: the job's start bounds in epoch seconds, and whether
    its latest start has passed (by more than a second of rounding)."""
    earliest = ceil(job.earliest_start.timestamp())  # epoch(), written out: every job, every plan
    if earliest < now_s:
        earliest = now_s
    latest = floor(job.latest_start.timestamp())
    if latest < earliest - 1:  # a second of rounding is not lateness
        return earliest, earliest, True
    return earliest, latest if latest > earliest else earliest, False


def make_task(ctx: Context, job: Job) -> Task:
    """The job's bounds in epoch seconds and its options."""
    assert job.id is not None
    d = job.duration_s
    earliest, latest, overdue = bounds(ctx.now_s, job)
    home_site = ctx.sites.get(job.site)
    home_zone = home_site.zone if home_site is not None else job.zone
    home_profile = ctx.profile(home_zone)
    options: list[Option] = []
    late: list[Option] = []  # sites the transfer delay puts past the latest start
    for rank, name in enumerate(dict.fromkeys((job.site, *job.allowed_sites))):
        site = ctx.sites.get(name)
        if rank > 0 and (site is None or job.run_now):
            continue
        zone = site.zone if site is not None else job.zone
        profile = ctx.profile(zone)
        pue = site.pue if site is not None else 1.0
        if rank == 0:
            options.append(Option(name, zone, pue, profile, earliest, latest, 0.0, True, 0))
            continue
        if profile is None:
            continue
        assert site is not None
        delay = job.transfer_delay_s if job.transfer_delay_s is not None else site.transfer_delay_s
        energy_j = job.transfer_energy_j if job.transfer_energy_j is not None else site.transfer_energy_j
        e = earliest + max(0, int(delay))
        mean = home_profile.fill / MILLI if home_profile is not None else 0.0
        transfer_g = max(0.0, energy_j) / 3.6e6 * mean
        opt = Option(name, zone, pue, profile, e, max(e, latest), transfer_g, False, rank)
        (options if e <= latest else late).append(opt)
    threshold = round(job.threshold_g_per_kwh * MILLI) if job.threshold_g_per_kwh is not None else None
    splits = job.interruptible and not job.run_now and threshold is None
    return Task(job, d, options, options[0], overdue, threshold, late=late or (), splits=splits)


def prepare(ctx: Context, tasks: Sequence[Task]) -> None:
    """Compute the contiguous optimum of every option at once, per group of windows of
    one duration on one forecast (:func:`best_starts`), where a group is large enough to
    be worth numpy; the rest are searched one by one when asked."""
    groups: dict[tuple[str, int], list[Option]] = {}
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
        starts, costs, now = best_starts_and_now(ctx.candidates(zone, p, d), p, d, earliest,
                                                 [o.latest for o in opts])
        for o, s, c, n in zip(opts, starts.tolist(), costs.tolist(), now.tolist(), strict=True):
            o.best, o.now_cost = (s, c), n


def option_optimum(ctx: Context, t: Task, opt: Option) -> Choice:
    """The single-job optimum on one option, ignoring capacity (exact, earliest tie)."""
    job, d = t.job, t.duration_s
    p = opt.profile
    if p is None:
        return Choice(opt, ((opt.earliest, opt.earliest + d),), 0, math.nan, "no-forecast")
    if job.run_now:
        start, cost, reason = opt.earliest, p.cost(opt.earliest, d), "run-now"
    elif opt.best is not None:
        (start, cost), reason = opt.best, MIN_EMISSIONS
    else:
        start, cost, reason = best_start(p, d, opt.earliest, opt.latest, threshold_milli=t.threshold_milli)
    c = Choice(opt, ((start, start + d),), cost, ctx.grams(opt, cost, job), reason)
    if t.splits:
        sp = split_on(ctx, t, opt, None)
        if sp is not None and sp.grams < c.grams:
            c = sp
    return c


def unconstrained(ctx: Context, t: Task) -> Choice:
    """The single-job optimum over every option (home first on ties): :func:`better`
    orders placements on different options totally, by grams, then start, then rank."""
    best: Choice | None = None
    t.per_option = []
    for opt in t.options:
        c = option_optimum(ctx, t, opt)
        t.per_option.append((c.grams, opt, c))
        if best is None or better(c, best):
            best = c
    assert best is not None
    return best


def best_feasible(ctx: Context, t: Task, opt: Option) -> Choice | None:
    """Lowest-emission start on ``opt`` that fits the ledger (exact over candidates)."""
    job, d = t.job, t.duration_s
    room = ctx.capacity.room(job, opt.site)
    p = opt.profile
    g, cp = job.gpus, job.cpus
    e, l_ = opt.earliest, opt.latest
    if room is not None and not room.can_ever(g, cp):
        return None
    if room is None or not room.manages(g, cp):
        return option_optimum(ctx, t, opt)
    if p is None:
        s = first_fit(ctx, t, opt, e, l_)
        return None if s is None else Choice(opt, ((s, s + d),), 0, math.nan, "no-forecast")
    best: Choice | None = None
    if t.splits:
        best = split_on(ctx, t, opt, room)
    if job.run_now or t.threshold_milli is not None:
        limit = None if t.threshold_milli is None or job.run_now else t.threshold_milli * d
        s = first_fit(ctx, t, opt, e, l_, limit=limit)
        reason = "run-now" if job.run_now else "threshold"
        if s is None and t.threshold_milli is not None:
            reason = "threshold-not-met"
        if s is not None:
            c = p.cost(s, d)
            return Choice(opt, ((s, s + d),), c, ctx.grams(opt, c, job), reason + ":capacity")
        if job.run_now:
            return None
    # A start fits iff no slot it holds is blocked; of the candidates in [e, l_] and both
    # ends, the earliest least cost that fits wins.
    full = ctx.full_candidates(opt, d)
    times = full.times
    i0, i1 = int(times.searchsorted(e, "left")), int(times.searchsorted(l_, "right"))
    e_slots, l_slots = room.span(e, e + d), room.span(l_, l_ + d)
    lo_slot, hi_slot = e_slots[0], l_slots[1]
    if i1 > i0:
        lo_slot, hi_slot = min(lo_slot, int(full.first[i0])), max(hi_slot, int(full.after[i1 - 1]))
    blocked = Blocked(room, lo_slot, hi_slot, g, cp)
    found: tuple[int, int] | None = None
    if i1 > i0:
        fits = blocked.clear_many(full.first[i0:i1], full.after[i0:i1])
        costs = np().where(fits, full.costs[i0:i1], INF)
        k = int(costs.argmin())
        if costs[k] < INF:
            found = (int(times[i0 + k]), int(costs[k]))
    for s, (a, b) in ((e, e_slots), (l_, l_slots)):
        if blocked.clear(a, b):
            c = p.cost(s, d)
            if found is None or c < found[1] or (c == found[1] and s < found[0]):
                found = (s, c)
    if found is not None:
        s, c = found
        contiguous = Choice(opt, ((s, s + d),), c, ctx.grams(opt, c, job), "min-emissions:capacity")
        if best is None or better(contiguous, best):
            best = contiguous
    return best


def first_fit(ctx: Context, t: Task, opt: Option, e: int, l_: int, limit: int | None = None) -> int | None:
    """Earliest start in ``[e, l_]`` on a slot boundary (or ``e``) that fits, and whose
    cost is below ``limit`` when given."""
    room = ctx.capacity.room(t.job, opt.site)
    d, g, cp = t.duration_s, t.job.gpus, t.job.cpus
    p = opt.profile
    slot = ctx.slot_s
    blocked: Blocked | None = None
    if room is not None and room.manages(g, cp):
        # the ledger does not change during the search: its blocked slots, once
        lo, hi = room.span(e, l_ + d)
        blocked = Blocked(room, lo, max(hi, room.span(l_, l_ + d)[1]), g, cp)
    s = e
    while s <= l_:
        if blocked is not None:
            assert room is not None
            last = blocked.last(*room.span(s, s + d))
            if last >= 0:  # jump past the last blocked slot of the window
                s = max((last + room.k0 + 1) * slot, (s // slot + 1) * slot)
                continue
        if limit is None or p is None or p.cost(s, d) < limit:
            return s
        s = (s // slot + 1) * slot
    return None


def window_mean_g_per_kwh(forecast: Forecast, start: datetime, duration_s: int) -> float:
    """Mean forecast intensity over ``[start, start + duration_s)`` as the planner sees it
    (start rounded up to the second, intensities to 0.001 g/kWh)."""
    return Series(forecast).cost(epoch(start), duration_s) / (duration_s * MILLI)


class Alone:
    """Jobs that share nothing with the rest of the plan, planned as columns: each runs in
    one go on its home site, which manages no capacity, with no threshold, no run-now, no
    sweep cap and no placement in force to keep. Each gets exactly its single-job optimum
    (:func:`option_optimum` on its one option), computed a group of one duration on one
    forecast at a time (:func:`best_starts`, or :func:`best_start` one by one for a small
    group): no task, option or choice objects per job."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # per job, in the order taken in: the job, its start bounds, whether overdue, its
        # site's PUE (columns: numbers in lists are not objects the GC walks)
        self.jobs: list[Job] = []
        self.earliest: list[int] = []
        self.latest: list[int] = []
        self.overdue: list[bool] = []
        self.pue: list[float] = []
        self.groups: dict[tuple[str, int], list[int]] = {}

    def add(self, job: Job, zone: str, pue: float, *, allow_overdue: bool) -> int | None:
        """Take ``job`` in (its latest start rounded up to its earliest, as :func:`bounds`
        says) and return its latest start; ``None`` (not taken) when it is overdue and
        overdue jobs are not planned."""
        earliest, latest, overdue = bounds(self.ctx.now_s, job)
        if overdue and not allow_overdue:
            return None
        i = len(self.jobs)
        self.jobs.append(job)
        self.earliest.append(earliest)
        self.latest.append(latest)
        self.overdue.append(overdue)
        self.pue.append(pue)
        key = (zone, job.duration_s)
        group = self.groups.get(key)
        if group is None:
            self.groups[key] = [i]
        else:
            group.append(i)
        return latest

    def entries(self, stamps: dict[int, datetime]) -> list[PlanEntry]:
        """Every job's plan entry (in the order taken in), as :mod:`scheduler.planning.greedy`
        writes it for the same job planned as a task: its single-job optimum."""
        n = len(self.jobs)
        starts, costs, nows = [0] * n, [0] * n, [0] * n
        whys = [MIN_EMISSIONS] * n
        for (zone, d), idx in self.groups.items():
            p = self.ctx.profile(zone)
            assert p is not None
            es = [self.earliest[i] for i in idx]
            ls = [self.latest[i] for i in idx]
            if len(idx) >= VECTOR_MIN and p.exact_in_int64:
                s_, c_, n_ = best_starts_and_now(self.ctx.candidates(zone, p, d), p, d, es, ls)
                for i, s, c, now in zip(idx, s_.tolist(), c_.tolist(), n_.tolist(), strict=True):
                    starts[i], costs[i], nows[i] = s, c, now
            else:
                for i, e, l_ in zip(idx, es, ls, strict=True):
                    starts[i], costs[i], whys[i] = best_start(p, d, e, l_)
                    nows[i] = p.cost(e, d)
        out: list[PlanEntry] = []
        add, get, finite, nan = out.append, stamps.get, math.isfinite, math.nan
        unit = G_PER_UNIT_W  # grams as expected_grams writes them, inlined (10,000s of jobs)
        entry = plan_entry  # PlanEntry(...), made faster
        for job, start, cost, now_c, why, overdue, pue in zip(
                self.jobs, starts, costs, nows, whys, self.overdue, self.pue, strict=True):
            d = job.duration_s
            end = start + d
            power_w = job.power_w
            grams = cost * power_w * pue * unit + 0.0  # + the transfer: none
            if finite(grams):
                expected, mean = grams, cost / (d * MILLI)
            else:
                expected, mean = nan, nan
            a = get(start)
            if a is None:
                a = stamps[start] = to_datetime(start)
            b = get(end)
            if b is None:
                b = stamps[end] = to_datetime(end)
            add(entry(job.id, job.site, a, expected, now_c * power_w * pue * unit, mean,
                      "overdue:" + why if overdue else why, ((a, b),)))
        return out
