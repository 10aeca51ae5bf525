"""The old import path of the planner: everything lives in :mod:`scheduler.planning` (the
one door, :func:`~scheduler.planning.plan`) and :mod:`intensity.series` (the integral)."""

from __future__ import annotations

from intensity.model import Forecast
from intensity.series import Candidates as _Candidates
from intensity.series import Series as Profile
from intensity.series import best_start, best_starts
from intensity.series import candidates as _candidates
from scheduler.planning import (
    MAX_FORECAST_HORIZON_S,
    PlanOptions,
    expected_grams,
    horizon_needed_s,
    plan,
    window_mean_g_per_kwh,
)
from scheduler.planning.capacity import Ledger as _Ledger
from scheduler.planning.single import VECTOR_MIN
from scheduler.planning.split import split_plan

__all__ = [
    "MAX_FORECAST_HORIZON_S",
    "VECTOR_MIN",
    "Forecast",
    "PlanOptions",
    "Profile",
    "_Candidates",
    "_Ledger",
    "_candidates",
    "best_start",
    "best_starts",
    "expected_grams",
    "horizon_needed_s",
    "plan",
    "split_plan",
    "window_mean_g_per_kwh",
]
