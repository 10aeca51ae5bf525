"""Planning: a pure function from jobs, forecasts, sites and ``now`` to a plan.

One public door, :func:`plan` (``plan(jobs, forecasts, sites, now, options) -> Plan``). No
clock reads, no I/O. For each job it picks the site and start minimising expected emissions

    expected_g = power_w x PUE x integral of intensity over [start, start + duration]
                 (+ the transfer energy x the home zone's mean intensity when it moves)

over every start its bounds allow, on the exact integer integral of
:mod:`intensity.series` (time outside the forecast, and gaps inside it, at the forecast's
mean; ties to the earliest start, then the home site).

Where each rule lives:

* :mod:`.types`: the nouns (an option, a placement, a task) and how placements compare;
* :mod:`.options`: :class:`PlanOptions`, the forecast horizon a queue needs;
* :mod:`.single`: one job: its options (relocation, transfer delay and energy) and its
  best start, without capacity and with it; and the jobs that share nothing with the rest
  (one site without managed capacity, one run, nothing to keep), planned as columns
  (:class:`.single.Alone`: the same optimum, no objects per job);
* :mod:`.capacity`: the ledger of GPUs/CPUs per site per slot and of trials per capped
  sweep, with a plain reference beside it;
* :mod:`.split`: interruptible jobs split into runs (the DP);
* :mod:`.greedy`: the queue order, pinning accepted jobs, hysteresis against the plan in
  force, overdue jobs, the plan entries;
* :mod:`.joint`: the joint optimum when few jobs contend for capacity.

Speed lives in two named places, each with a plain reference the property tests compare
against: the series (:func:`intensity.series.best_starts` against
:func:`intensity.series.best_start`) and the ledger (:class:`.capacity.Ledger` against
:class:`.capacity.NaiveLedger`). numpy is imported on first use: a plan of a few jobs on
sites without managed capacity never loads it. Nothing is kept between plans.
"""

from __future__ import annotations

from scheduler.planning.greedy import plan
from scheduler.planning.options import MAX_FORECAST_HORIZON_S, PlanOptions, horizon_needed_s
from scheduler.planning.single import window_mean_g_per_kwh
from scheduler.planning.types import expected_grams

__all__ = [
    "MAX_FORECAST_HORIZON_S",
    "PlanOptions",
    "expected_grams",
    "horizon_needed_s",
    "plan",
    "window_mean_g_per_kwh",
]
