"""What one :func:`~scheduler.planning.plan` call reads and keeps while it runs: the
inputs, each zone's :class:`~intensity.series.Series`, the candidate starts of each
(zone, duration) it searched, and the capacity ledgers. Nothing outlives the call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intensity.model import Forecast
from intensity.series import Candidates, Series, candidates, np, sorted_unique
from scheduler.domain.model import Job, Site
from scheduler.planning.capacity import Capacity
from scheduler.planning.options import PlanOptions
from scheduler.planning.types import Option, expected_grams


class Full(Candidates):
    """Capacity-search candidates of one (zone, duration): ascending times, their costs,
    and the ledger slots ``[first, after)`` each start would hold."""

    __slots__ = ("after", "first")

    def __init__(self, times: Any, costs: Any, first: Any, after: Any) -> None:
        super().__init__(times, costs)
        self.first = first
        self.after = after


class Context:
    """State of one plan call: series per zone, memoised candidates, capacity ledgers."""

    def __init__(self, forecasts: Mapping[str, Forecast], sites: Mapping[str, Site], now_s: int,
                 options: PlanOptions) -> None:
        self.forecasts = forecasts
        self.sites = sites
        self.now_s = now_s
        self.opt = options
        self.slot_s = max(1, int(options.slot_s))
        self.k0 = now_s // self.slot_s
        self.capacity = Capacity(sites, self.slot_s, now_s, enforce=options.enforce_capacity,
                                 sweep_reserved=options.sweep_reserved)
        self.series: dict[str, Series | None] = {}
        self.cands: dict[tuple[str, int], Candidates] = {}
        self.full: dict[tuple[str, int], Full] = {}
        #: the last second any job may still be running in its window (set by the plan)
        self.horizon_end = 0

    def profile(self, zone: str) -> Series | None:
        """The zone's series (``None`` without a forecast)."""
        if zone not in self.series:
            fc = self.forecasts.get(zone)
            self.series[zone] = Series(fc) if fc is not None and fc.points else None
        return self.series[zone]

    def grams(self, opt: Option, cost: int, job: Job) -> float:
        return expected_grams(cost, job.power_w, opt.pue) + opt.transfer_g

    def candidates(self, zone: str, p: Series, d: int) -> Candidates:
        """Boundaries and boundaries minus ``d`` of the zone, with their costs."""
        key = (zone, d)
        hit = self.cands.get(key)
        if hit is None:
            hit = self.cands[key] = candidates(p, d)
        return hit

    def full_candidates(self, opt: Option, d: int) -> Full:
        """Forecast breakpoints, slot boundaries and slot boundaries minus ``d`` over the
        planning horizon, with their costs and the slots ``[first, after)`` each would hold
        (as :meth:`~scheduler.planning.capacity.Ledger.span` says)."""
        key = (opt.zone, d)
        hit = self.full.get(key)
        if hit is not None:
            return hit
        n = np()
        p = opt.profile
        assert p is not None
        slot = self.slot_s
        lo = self.now_s - d - slot
        hi = self.horizon_end
        grid = n.arange(-(-lo // slot) * slot, hi + slot, slot, dtype=n.int64)
        b = n.array(p.b, dtype=n.int64)  # boundaries, and boundaries minus d, in [lo, hi]
        ends = b[(b >= lo + d) & (b <= hi + d)] - d
        times = sorted_unique(b[(b >= lo) & (b <= hi)], ends, grid, grid[grid - d >= lo] - d)
        first = n.maximum(times // slot - self.k0, 0)
        after = n.maximum(-(-(times + d) // slot) - self.k0, first + 1)
        hit = self.full[key] = Full(times, p.costs(times, d), first, after)
        return hit
