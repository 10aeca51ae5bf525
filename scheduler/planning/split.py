"""Interruptible jobs split into runs: on a grid of ``min_chunk_s`` (so every run is at
least that long) with at most ``max_pauses`` pauses, chosen by dynamic programming
(:func:`_split_dp`), or by taking the cheapest steps when pauses are unlimited or the
cheapest steps need no more runs than allowed. The split is used only when it beats the
best single run (the callers compare)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from intensity.series import Series
from scheduler.planning.capacity import Blocked, Room
from scheduler.planning.types import INF, Choice, Option, Task

if TYPE_CHECKING:
    from scheduler.planning.context import Context


def split_on(ctx: Context, t: Task, opt: Option, room: Room | None) -> Choice | None:
    """Best split of ``t`` on ``opt`` (``None`` when no split helps), in the free steps of
    ``room`` when given."""
    p = opt.profile
    if p is None:
        return None
    job = t.job
    step = max(1, ctx.opt.min_chunk_s)
    free = None
    finish_by = opt.latest + t.duration_s
    if room is not None and room.manages(job.gpus, job.cpus):
        # every step split_plan asks about lies in [earliest, finish_by): the ledger's
        # blocked slots there, once
        lo, hi = room.span(opt.earliest, finish_by)
        blocked = Blocked(room, lo, hi, job.gpus, job.cpus)
        led = room

        def free(a: int, b: int) -> bool:
            x, y = led.span(a, b)
            if x < lo or y > hi:
                return led.free(a, b, job.gpus, job.cpus)
            return blocked.clear(x, y)

    res = split_plan(p, t.duration_s, opt.earliest, finish_by, step_s=step,
                     max_pauses=ctx.opt.max_pauses, free=free)
    if res is None:
        return None
    cost, intervals = res
    c = Choice(opt, tuple(intervals), cost, ctx.grams(opt, cost, job), f"split:{len(intervals)}")
    if free is not None and len(intervals) > 1 and not ctx.capacity.fits(t, c):
        return None  # a stop-mode job keeps its GPUs through its pauses: they are taken
    return c


def split_plan(
    profile: Series,
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
        costs = [c if free(s, s + step_s) else INF for s, c in zip(starts, costs, strict=True)]
    runs_max = None if max_pauses is None else max_pauses + 1
    chosen: list[int] | None
    cheapest = sorted(range(n_steps), key=costs.__getitem__)[:n]  # stable: earliest of ties
    if costs[cheapest[-1]] >= INF:
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
    cost = profile.cost_over(intervals)
    return cost, intervals


def _split_dp(costs: list[int], n: int, runs_max: int) -> list[int] | None:
    """Choose ``n`` steps in at most ``runs_max`` runs minimising the sum of ``costs``.

    ``val[r][o][k]``: least cost with ``k`` steps taken in ``r`` runs, ``o`` whether the
    previous step was taken. Tables per step are kept to walk the choice back.
    """
    width = n + 1
    inf = INF
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
