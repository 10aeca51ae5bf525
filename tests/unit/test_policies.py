"""Resolving carbon deadline policies into bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.errors import BadInput, InfeasibleJob
from scheduler.model import Policy
from scheduler.policies import DEFAULT_DEADLINE_S, merge, resolve, validate_policy

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
H = 3600


def test_deadline_gives_latest_start() -> None:
    b = resolve(Policy("p", deadline_s=12 * H), submitted_at=T0, duration_s=3 * H)
    assert b.earliest_start == T0
    assert b.latest_start == T0 + timedelta(hours=9)
    assert b.deadline_at == T0 + timedelta(hours=12)


def test_tightest_bound_wins() -> None:
    p = Policy("p", deadline_s=24 * H, latest_start_s=10 * H, max_delay_s=4 * H)
    b = resolve(p, submitted_at=T0, duration_s=H)
    assert b.latest_start == T0 + timedelta(hours=4)
    p = Policy("p", deadline_at=T0 + timedelta(hours=5), latest_start_at=T0 + timedelta(hours=8))
    assert resolve(p, submitted_at=T0, duration_s=2 * H).latest_start == T0 + timedelta(hours=3)


def test_run_now_and_default() -> None:
    assert resolve(Policy("n", run_now=True), submitted_at=T0, duration_s=H).latest_start == T0
    b = resolve(Policy("empty"), submitted_at=T0, duration_s=H)
    assert b.deadline_at == T0 + timedelta(seconds=DEFAULT_DEADLINE_S)


def test_infeasible_deadline_names_earliest_finish() -> None:
    with pytest.raises(InfeasibleJob) as exc:
        resolve(Policy("p", deadline_s=2 * H), submitted_at=T0, duration_s=3 * H)
    msg = str(exc.value)
    assert "2026-05-01T15:00:00Z" in msg and "--deadline 3h" in msg


def test_past_deadline() -> None:
    with pytest.raises(BadInput, match="past"):
        resolve(Policy("p", deadline_at=T0 - timedelta(hours=1)), submitted_at=T0, duration_s=H)


def test_not_before_shifts_earliest() -> None:
    b = resolve(Policy("p", deadline_s=12 * H), submitted_at=T0, duration_s=H,
                not_before=T0 + timedelta(hours=2))
    assert b.earliest_start == T0 + timedelta(hours=2)


def test_merge_flags_over_named_policy() -> None:
    base = Policy("nightly", deadline_s=12 * H, threshold_g_per_kwh=150)
    m = merge(base, Policy("(flags)", deadline_at=T0 + timedelta(hours=6), budget_g=500))
    assert m.deadline_at == T0 + timedelta(hours=6) and m.deadline_s is None
    assert m.threshold_g_per_kwh == 150 and m.budget_g == 500 and m.name == "nightly"
    assert merge(base, Policy("(flags)", run_now=True)).run_now


@pytest.mark.parametrize(
    "policy",
    [Policy("p", threshold_g_per_kwh=-1), Policy("p", budget_g=float("nan")),
     Policy("p", max_delay_s=-5), Policy("bad name!"), Policy("")],
)
def test_validate_refuses_nonsense(policy: Policy) -> None:
    with pytest.raises(BadInput):
        validate_policy(policy)
