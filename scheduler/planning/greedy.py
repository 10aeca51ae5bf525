"""The whole queue, greedily: the order jobs are placed in, pinning accepted jobs, and
hysteresis against the plan in force (the only place those rules live).

Jobs are placed one by one, committed (accepted) jobs first, then higher ``priority``,
then earlier latest start (tight deadlines are protected), longer first, by id. Each job
first tries its unconstrained optimum (:func:`~scheduler.planning.single.unconstrained`);
only when that collides with capacity does it search further, option by option, best bound
first. A job with a placement in force keeps it unless moving saves more than
``hysteresis_pct``. When the greedy order cannot fit an accepted job that the plan in
force held, the plan is made again with every accepted job pinned at its placement in
force (:func:`plan` does this by itself). When few jobs contend for capacity, the joint
branch-and-bound (:mod:`scheduler.planning.joint`) replaces the greedy answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from intensity.model import Forecast
from intensity.series import MILLI, np
from scheduler.domain.model import Job, Plan, PlanEntry, Site, plan_entry
from scheduler.planning.context import Context
from scheduler.planning.joint import improve_exactly
from scheduler.planning.options import PlanOptions
from scheduler.planning.single import (
    Alone,
    best_feasible,
    first_fit,
    make_task,
    prepare,
    unconstrained,
)
from scheduler.planning.types import (
    RUNNING_STATES,
    TERMINAL,
    Choice,
    Task,
    better,
    epoch,
    expected_grams,
    to_datetime,
)

NO_SITE = "no allowed site can ever hold its GPUs/CPUs"


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
    result = _greedy(jobs, forecasts, sites, now, options)
    if result is None:
        # the greedy order cannot fit every accepted job (the plan in force did): keep them
        # where they are and plan the rest around them
        result = _greedy(jobs, forecasts, sites, now, replace(options, pin_accepted=True))
        assert result is not None
    return result


def _greedy(jobs: Sequence[Job], forecasts: Mapping[str, Forecast], sites: Mapping[str, Site],
            now: datetime, options: PlanOptions) -> Plan | None:
    """One greedy pass; ``None`` when an accepted job no longer fits and the accepted jobs
    are not pinned yet."""
    result = Plan()
    ctx = Context(forecasts, sites, epoch(now), options)
    cap = ctx.capacity
    stamps: dict[int, datetime] = {}
    managed = options.enforce_capacity and any(s.gpus > 0 or s.cpus > 0 for s in sites.values())
    alone = Alone(ctx)  # jobs that share nothing: planned as columns, entries in queue order
    tasks = _intake(ctx, jobs, now, result, alone if not managed else None)
    prepare(ctx, tasks)
    columns = alone.entries(stamps)
    cap.hold_reserved(options.reserved, now)
    committed = options.committed
    if options.pin_accepted:
        tasks = _pin_accepted(ctx, tasks, result, stamps)
    queue = _queue_order(tasks, alone, committed)
    del tasks  # the queue holds them: each is let go once placed (the collector walks the rest)
    # While the joint search may still run (at most ``exact_max_jobs`` jobs on sites with
    # managed capacity), placed jobs are held; once it cannot (or where no site manages
    # capacity, so there is nothing to search jointly), each entry is written as soon as its
    # job is placed, in the same order
    joint = managed and not ((options.hysteresis_pct > 0 and options.current) or options.current_runs)
    held: list[Task] = []
    pooled = 0
    displaced = False
    queue.reverse()
    while queue:  # popped: a placed job's planning state is let go as its entry is written
        item = queue.pop()
        if isinstance(item, int):
            entry = columns[item]
            result.entries[entry.job_id] = entry
            continue
        t = item
        assert t.job.id is not None
        t.unconstrained = unconstrained(ctx, t)
        c = _place(ctx, t)
        t.per_option.clear()  # placed: what the other sites offered is garbage now
        displaced = displaced or c is not t.unconstrained
        t.unconstrained = None
        if c is None:
            if not options.pin_accepted and not t.overdue and (
                    t.job.id in committed or t.job.id in options.current):
                return None
            c = _late(ctx, t, result)
            if c is None:
                continue
        t.choice = c
        cap.reserve(t, c)
        if joint:
            held.append(t)
            pooled += cap.ledger(c.option.site) is not None
            if pooled <= options.exact_max_jobs:
                continue
            joint = False  # too many jobs share capacity for the joint search
            for h in held:
                result.entries[h.job.id] = _entry(h, h.choice, stamps)  # type: ignore[arg-type,index]
            held = []
        else:
            result.entries[t.job.id] = _entry(t, c, stamps)
    if joint and displaced:
        improve_exactly(ctx, held)
    for h in held:
        result.entries[h.job.id] = _entry(h, h.choice, stamps)  # type: ignore[arg-type,index]
    return result


def _intake(ctx: Context, jobs: Sequence[Job], now: datetime, result: Plan,
            alone: Alone | None) -> list[Task]:
    """The plannable jobs as tasks (or into ``alone``, where given, for those that share
    nothing); running and suspended jobs hold their capacity; overdue ones are refused
    when overdue jobs are not planned. Sets the planning horizon."""
    options = ctx.opt
    tasks: list[Task] = []
    horizon = ctx.now_s + 3600
    for job in jobs:
        if job.id is None:
            raise ValueError("plan() needs jobs with ids")
        if job.state in TERMINAL:
            continue
        if job.state in RUNNING_STATES:
            ctx.capacity.hold_running(job, now)
            continue
        if alone is not None and _alone(job, options):
            site = ctx.sites.get(job.site)
            zone = site.zone if site is not None else job.zone
            if ctx.profile(zone) is not None:
                latest = alone.add(job, zone, site.pue if site is not None else 1.0,
                                   allow_overdue=options.allow_overdue)
                if latest is None:
                    result.unplanned[job.id] = "latest start has passed"
                else:
                    horizon = max(horizon, latest + job.duration_s)
                continue
        t = make_task(ctx, job)
        if t.overdue and not options.allow_overdue:
            result.unplanned[job.id] = "latest start has passed"
            continue
        tasks.append(t)
        horizon = max(horizon, t.home.latest + t.duration_s)
    ctx.horizon_end = horizon
    return tasks


def _queue_order(tasks: list[Task], alone: Alone, committed: frozenset[int]) -> list[Task | int]:
    """The queue order: accepted first, higher priority, earlier latest start, longer, by
    id; then the order taken in (so equal keys keep it, and the items are never compared).
    An item is a task, or the index of a job in ``alone``.

    The keys hold numbers only, not the items (the collector stops tracking such tuples
    the first time it meets them: a queue of 10,000 keys that each held its task kept
    that many more objects in every collection while it lived); the positions are sorted
    by them, which is the same order as sorting (key, item) pairs, the keys being unique."""
    n = len(tasks)
    if n + len(alone.jobs) >= SORT_COLUMNS_MIN:
        order = _column_order(tasks, alone, committed)
    else:
        keys: list[tuple[bool, int, int, int, int, int]] = [
            (t.job.id not in committed, -t.job.priority, t.home.latest, -t.duration_s, t.job.id, k)  # type: ignore[misc]
            for k, t in enumerate(tasks)
        ]
        keys += [(j.id not in committed, -j.priority, latest, -j.duration_s, j.id, n + i)  # type: ignore[misc]
                 for i, (j, latest) in enumerate(zip(alone.jobs, alone.latest, strict=True))]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        del keys
    return [tasks[k] if k < n else k - n for k in order]


#: from this many jobs the queue order is sorted as columns (numpy's stable ``lexsort`` on
#: the same keys: the same order, the position the last key); fewer, as tuples
SORT_COLUMNS_MIN = 256


def _column_order(tasks: list[Task], alone: Alone, committed: frozenset[int]) -> list[int]:
    """:func:`_queue_order`'s positions, sorted key by key (the keys are the same)."""
    n = np()
    jobs = [t.job for t in tasks] + alone.jobs
    cols = [[j.id for j in jobs], [-j.duration_s for j in jobs],
            [t.home.latest for t in tasks] + alone.latest, [-j.priority for j in jobs]]
    if committed:
        cols.append([j.id not in committed for j in jobs])
    # least significant first; the sort is stable, so equal keys keep the order taken in
    return n.lexsort([n.array(c, dtype=n.int64) for c in cols]).tolist()


def _late(ctx: Context, t: Task, result: Plan) -> Choice | None:
    """A job nothing fits in its window: the earliest finish after it when overdue jobs are
    planned; else (or when no site can ever hold it) ``None``, with why in ``result``."""
    assert t.job.id is not None
    late = _overdue(ctx, t)
    if late is None:
        result.unplanned[t.job.id] = NO_SITE
        return None
    if ctx.opt.allow_overdue:
        return late
    end = to_datetime(late.intervals[-1][1])
    result.earliest_finish[t.job.id] = end
    result.unplanned[t.job.id] = (
        f"no capacity before its deadline: the earliest finish that fits is {end.isoformat()}"
    )
    return None


def _alone(job: Job, options: PlanOptions) -> bool:
    """Whether ``job`` (on a plan where no site manages capacity) shares nothing with the
    rest: one site, one run, no threshold, no run-now, no sweep cap, no placement in force
    that hysteresis or pinning keeps (see :class:`~scheduler.planning.single.Alone`)."""
    return (
        not job.interruptible and not job.run_now and job.threshold_g_per_kwh is None
        and (job.sweep_id is None or job.sweep_limit is None)
        and (not job.allowed_sites or all(name == job.site for name in job.allowed_sites))
        and not (options.hysteresis_pct > 0 and job.id in options.current)
        and not (options.pin_accepted and (job.id in options.committed or job.id in options.current))
    )


def _place(ctx: Context, t: Task) -> Choice | None:
    """Best placement of ``t`` given the ledger, or ``None`` if nothing fits in time; the
    placement in force instead when moving saves no more than the hysteresis."""
    u = t.unconstrained
    assert u is not None
    cap = ctx.capacity
    if cap.fits(t, u):
        best: Choice | None = u
    else:
        best = None
        # each option's own optimum bounds what it can offer: best bound first, and stop
        # once no remaining option can beat the best placement found
        bounds = sorted(t.per_option, key=lambda x: (x[0] if math.isfinite(x[0]) else math.inf, x[1].rank))
        for grams, opt, lb in bounds:
            if best is not None and math.isfinite(best.grams) and grams > best.grams:
                break
            c = lb if lb is not u and cap.fits(t, lb) else best_feasible(ctx, t, opt)
            if c is not None and (best is None or better(c, best)):
                best = c
    # run intervals in force (``current_runs``) count even without hysteresis: a paused job
    # moves only for a gain (they may be cheaper than any split this plan searches)
    cur = _in_force(ctx, t) if ctx.opt.hysteresis_pct > 0 or t.job.id in ctx.opt.current_runs else None
    if cur is not None and cap.fits(t, cur) and (
        best is None
        or not math.isfinite(best.grams)
        or best.grams >= cur.grams * (1.0 - ctx.opt.hysteresis_pct / 100.0)
    ):
        return cur
    return best


def _in_force(ctx: Context, t: Task) -> Choice | None:
    """The job's placement in the plan in force, if still inside its window."""
    if t.job.id in ctx.opt.current_runs:
        return _runs_in_force(ctx, t)
    if t.job.id not in ctx.opt.current:
        return None
    site, start = ctx.opt.current[t.job.id]  # type: ignore[index]
    s = epoch(start)
    for opt in t.options:
        # the transfer to the site it is placed on counts from when it was placed there,
        # not again from every re-plan's ``now``
        lo = opt.earliest if opt.home else min(opt.earliest, t.home.earliest)
        if opt.site == site and lo <= s <= opt.latest and opt.profile is not None:
            c = opt.profile.cost(s, t.duration_s)
            return Choice(opt, ((s, s + t.duration_s),), c, ctx.grams(opt, c, t.job), "kept")
    return None


def _runs_in_force(ctx: Context, t: Task) -> Choice | None:
    """The job's run intervals in force (``current_runs``), if they still start inside its
    window and end by its finish-by time."""
    site, spans = ctx.opt.current_runs[t.job.id]  # type: ignore[index]
    intervals = tuple((epoch(a), epoch(b)) for a, b in spans if b > a)
    if not intervals:
        return None
    for opt in t.options:
        if (opt.site == site and opt.profile is not None and opt.earliest <= intervals[0][0]
                and intervals[0][0] <= opt.latest and intervals[-1][1] <= opt.latest + t.duration_s):
            c = opt.profile.cost_over(intervals)
            return Choice(opt, intervals, c, ctx.grams(opt, c, t.job), "kept")
    return None


def _pin_accepted(ctx: Context, tasks: list[Task], result: Plan,
                  stamps: dict[int, datetime]) -> list[Task]:
    """Reserve every accepted, unsplit job at its placement in force (where it still fits
    its window and the ledger); return the tasks left to plan."""
    opt = ctx.opt
    rest: list[Task] = []
    for t in tasks:
        accepted = t.job.id in opt.committed or t.job.id in opt.current
        c = _in_force(ctx, t) if accepted and not t.job.interruptible else None
        if c is None or not ctx.capacity.fits(t, c):
            rest.append(t)
            continue
        c.reason = "kept: a re-plan would push an accepted job past its deadline"
        ctx.capacity.reserve(t, c)
        result.entries[t.job.id] = _entry(t, c, stamps)  # type: ignore[index]
    return rest


def _overdue(ctx: Context, t: Task) -> Choice | None:
    """The earliest-finishing placement after the window (capacity or lateness)."""
    best: Choice | None = None
    d = t.duration_s
    for opt in [*t.options, *t.late]:
        led = ctx.capacity.ledger(opt.site)
        if led is not None and not led.can_ever(t.job.gpus, t.job.cpus):
            continue
        s = first_fit(ctx, t, opt, opt.earliest, opt.latest + ctx.opt.overdue_search_s)
        if s is None:
            continue
        c = opt.profile.cost(s, d) if opt.profile is not None else 0
        g = ctx.grams(opt, c, t.job) if opt.profile is not None else math.nan
        ch = Choice(opt, ((s, s + d),), c, g, "overdue:capacity")
        if best is None or s + d < best.intervals[-1][1]:
            best = ch
    return best


def _entry(t: Task, c: Choice, stamps: dict[int, datetime]) -> PlanEntry:
    """The plan entry of ``t`` placed at ``c``; ``stamps`` converts each instant once (many
    runs share their ends)."""
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
    intervals = []
    for a, b in c.intervals:
        da = stamps.get(a)
        if da is None:
            da = stamps[a] = to_datetime(a)
        db = stamps.get(b)
        if db is None:
            db = stamps[b] = to_datetime(b)
        intervals.append((da, db))
    return plan_entry(job.id, c.option.site, intervals[0][0], expected, now_g, mean, reason,
                      tuple(intervals))
