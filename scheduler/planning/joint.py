"""The joint optimum of the few jobs that share capacity: a branch-and-bound over their
candidate placements, the greedy plan as the incumbent (so the result is never worse).
Runs when at most ``PlanOptions.exact_max_jobs`` jobs on managed sites were placed and
one of them was displaced by capacity."""

from __future__ import annotations

import math

from scheduler.planning.context import Context
from scheduler.planning.types import Choice, Task


def improve_exactly(ctx: Context, placed: list[Task]) -> None:
    """Replace the greedy placements of ``placed`` by the joint optimum, when found.

    Only non-interruptible, non-threshold, non-run-now jobs on forecast sites take part.
    """
    opt, cap = ctx.opt, ctx.capacity
    pool = [t for t in placed if t.choice is not None and cap.ledger(t.choice.option.site) is not None]
    if not pool or len(pool) > opt.exact_max_jobs:
        return
    if any(t.job.interruptible or t.job.run_now or t.threshold_milli is not None
           or any(o.profile is None for o in t.options) for t in pool):
        return
    # candidate placements per job, by grams
    cand: list[list[Choice]] = []
    for t in pool:
        lst: list[Choice] = []
        for o in t.options:
            full = ctx.full_candidates(o, t.duration_s)
            i = int(full.times.searchsorted(o.earliest, "left"))
            j = int(full.times.searchsorted(o.latest, "right"))
            times, costs = full.times[i:j].tolist(), full.costs[i:j].tolist()
            seen = set(times)
            pts = list(zip(times, costs, strict=True))
            for s in (o.earliest, o.latest):
                if s not in seen:
                    pts.append((s, o.profile.cost(s, t.duration_s)))  # type: ignore[union-attr]
            for s, cost in pts:
                lst.append(Choice(o, ((s, s + t.duration_s),), cost, ctx.grams(o, cost, t.job),
                                  "min-emissions:joint"))
        lst.sort(key=lambda ch: (ch.grams, ch.intervals[0][0], ch.option.rank))
        cand.append(lst)
    for t in pool:
        cap.reserve(t, t.choice, -1)  # type: ignore[arg-type]
    incumbent = math.fsum(t.choice.grams for t in pool if t.choice is not None)
    if any(t.choice is None or t.choice.reason.startswith("overdue") for t in pool):
        incumbent = math.inf  # any in-window plan beats an overdue one
    lb = [c[0].grams if c else math.inf for c in cand]
    rest = [0.0] * (len(pool) + 1)
    for i in range(len(pool) - 1, -1, -1):
        rest[i] = rest[i + 1] + lb[i]
    found: list[Choice] | None = None
    stack: list[Choice] = []
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
            if cap.fits(pool[i], ch):
                cap.reserve(pool[i], ch)
                stack.append(ch)
                dfs(i + 1, acc + ch.grams)
                stack.pop()
                cap.reserve(pool[i], ch, -1)

    dfs(0, 0.0)
    if found is not None:
        for t, ch in zip(pool, found, strict=True):
            t.choice = ch
    for t in pool:
        cap.reserve(t, t.choice)  # type: ignore[arg-type]
