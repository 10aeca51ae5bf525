"""Carbon deadline policies: resolving a policy and per-job overrides into bounds.

A job's policy is resolved once, at submission, into absolute instants: the earliest
start, the latest start and the finish-by deadline. From then on the job does not depend
on the named policy (which may change).

* finish-by deadline: ``deadline_at`` or ``submitted + deadline_s``;
* latest start: ``latest_start_at`` or ``submitted + latest_start_s``;
* maximum delay: the job starts at most ``max_delay_s`` after submission;
* intensity threshold: start at the first window whose forecast mean is below it;
* carbon budget: refuse the job if even its best window is expected to emit more;
* ``run_now``: no shifting at all.

With no bound at all a job must finish within :data:`DEFAULT_DEADLINE_S`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from scheduler.domain.acceptance import give_deadline
from scheduler.domain.model import Policy
from scheduler.errors import BadInput, InfeasibleJob
from scheduler.text.checks import check_text
from scheduler.text.quantities import check_grams, check_threshold, parse_grams, parse_threshold
from scheduler.text.times import (
    check_duration_s,
    check_when,
    format_duration,
    iso,
    looks_absolute,
    parse_duration_s,
    parse_when,
)

DEFAULT_DEADLINE_S = 24 * 3600

BUILTIN_POLICIES: dict[str, Policy] = {
    "default": Policy(
        name="default", deadline_s=DEFAULT_DEADLINE_S,
        description="finish within 24 h, at the lowest-carbon time",
    ),
    "now": Policy(name="now", run_now=True, description="run at once, no shifting"),
}


@dataclass(frozen=True, slots=True)
class Bounds:
    """A job's resolved constraints."""

    earliest_start: datetime
    latest_start: datetime
    deadline_at: datetime | None
    threshold_g_per_kwh: float | None
    budget_g: float | None
    run_now: bool
    interruptible: bool


def merge(base: Policy, override: Policy) -> Policy:
    """``override``'s set fields on top of ``base`` (per-job flags over a named policy)."""
    changes = {}
    for name in (
        "deadline_s", "deadline_at", "latest_start_s", "latest_start_at", "max_delay_s",
        "threshold_g_per_kwh", "budget_g",
    ):
        value = getattr(override, name)
        if value is not None:
            changes[name] = value
    if override.deadline_s is not None or override.deadline_at is not None:
        # a per-job deadline replaces the policy's, whichever form each used
        changes.setdefault("deadline_s", override.deadline_s)
        changes.setdefault("deadline_at", override.deadline_at)
        if override.deadline_s is None:
            changes["deadline_s"] = None
        if override.deadline_at is None:
            changes["deadline_at"] = None
    if override.run_now:
        changes["run_now"] = True
        # a per-job --now runs at once: a policy's threshold no longer applies
        changes.setdefault("threshold_g_per_kwh", None)
    elif override.threshold_g_per_kwh is not None:
        changes["run_now"] = False  # a per-job threshold shifts a job of a run-now policy
    if override.interruptible:
        changes["interruptible"] = True
    return replace(base, **changes)


def policy_from_flags(
    now: datetime,
    *,
    deadline: str | None,
    latest_start: str | None,
    max_delay: str | None,
    threshold: str | None,
    budget: str | None,
    run_now: bool,
    interruptible: bool,
    relative: bool,
    name: str = "(flags)",
) -> Policy:
    """A policy from command-line flags (text, read by the shared parsers, then
    :func:`policy_from_values`). ``relative`` keeps ``12h`` as a duration (named policies);
    otherwise durations are turned into instants from ``now``."""
    bounds: dict[str, datetime | int | None] = {}
    for key, text in (("deadline", deadline), ("latest_start", latest_start)):
        what = key.replace("_", " ")
        if text is None:
            bounds[key] = None
        elif looks_absolute(text) or not relative:
            bounds[key] = parse_when(text, now, what=what)
        else:
            bounds[key] = parse_duration_s(text, what=what)
    return policy_from_values(
        now, deadline=bounds["deadline"], latest_start=bounds["latest_start"],
        max_delay_s=None if max_delay is None else parse_duration_s(max_delay, what="max delay"),
        threshold_g_per_kwh=None if threshold is None else parse_threshold(threshold),
        budget_g=None if budget is None else parse_grams(budget),
        run_now=run_now, interruptible=interruptible, relative=relative, name=name,
    )


def policy_from_values(
    now: datetime,
    *,
    deadline: datetime | int | None = None,
    latest_start: datetime | int | None = None,
    max_delay_s: int | None = None,
    threshold_g_per_kwh: float | None = None,
    budget_g: float | None = None,
    run_now: bool = False,
    interruptible: bool = False,
    relative: bool = False,
    name: str = "(flags)",
) -> Policy:
    """A per-job (or named) policy from typed values, under the rules the CLI's flags keep:
    ``deadline`` and ``latest_start`` are instants (aware, after ``now``, within a year) or
    seconds from ``now``; ``relative`` keeps seconds as a duration (named policies),
    otherwise they become instants."""
    kw: dict[str, object] = {"name": name, "run_now": run_now, "interruptible": interruptible}
    for key, value in (("deadline", deadline), ("latest_start", latest_start)):
        what = key.replace("_", " ")
        if value is None:
            continue
        if isinstance(value, datetime):
            at = check_when(value, now, what=what)
            if at <= now:
                raise BadInput(f"{what} {iso(at)!r} is in the past: give a later time or a duration like 12h")
            kw[f"{key}_at"] = at
        elif relative:
            kw[f"{key}_s"] = check_duration_s(value, what=what)
        else:
            kw[f"{key}_at"] = now + timedelta(seconds=check_duration_s(value, what=what))
    if max_delay_s is not None:
        kw["max_delay_s"] = check_duration_s(max_delay_s, what="max delay")
    if threshold_g_per_kwh is not None:
        kw["threshold_g_per_kwh"] = check_threshold(threshold_g_per_kwh)
    if budget_g is not None:
        kw["budget_g"] = check_grams(budget_g)
    return Policy(**kw)  # type: ignore[arg-type]


def validate_policy(policy: Policy, *, check_name: bool = True) -> Policy:
    """Refuse values that make no sense (negative, NaN), rules that contradict each other
    (``--now`` with a threshold, a latest start after the deadline) and a description with
    control characters, with a one-line message. ``check_name=False`` for per-job flags."""
    for name in ("deadline_s", "latest_start_s", "max_delay_s"):
        value = getattr(policy, name)
        if value is not None and value < 0:
            raise BadInput(f"policy {policy.name!r}: {name} must not be negative")
    for name in ("threshold_g_per_kwh", "budget_g"):
        value = getattr(policy, name)
        if value is not None and (value != value or value <= 0 or value == float("inf")):
            raise BadInput(
                f"policy {policy.name!r}: {name.replace('_g_per_kwh', '')} {value!r} must be a positive number"
            )
    if policy.run_now and policy.threshold_g_per_kwh is not None:
        raise BadInput(
            f"policy {policy.name!r}: --now and --threshold {policy.threshold_g_per_kwh:g} contradict "
            "each other (run at once, or wait for a clean window): give one of them"
        )
    if (policy.latest_start_s is not None and policy.deadline_s is not None
            and policy.latest_start_s > policy.deadline_s):
        raise BadInput(
            f"policy {policy.name!r}: latest start {format_duration(policy.latest_start_s)} is after the "
            f"deadline {format_duration(policy.deadline_s)}: give a latest start before the deadline, or drop one"
        )
    if (policy.latest_start_at is not None and policy.deadline_at is not None
            and policy.latest_start_at > policy.deadline_at):
        raise BadInput(
            f"policy {policy.name!r}: latest start {iso(policy.latest_start_at)} is after the deadline "
            f"{iso(policy.deadline_at)}: give a latest start before the deadline, or drop one"
        )
    if policy.description:
        check_text(policy.description, "policy description")
    if not check_name:
        return policy
    if not policy.name or not policy.name.replace("-", "").replace("_", "").isalnum():
        raise BadInput(
            f"policy name {policy.name!r} is not valid: use letters, digits, '-' and '_'"
        )
    return policy


def resolve(policy: Policy, *, submitted_at: datetime, duration_s: int, not_before: datetime | None = None) -> Bounds:
    """Absolute bounds for a job of ``duration_s`` submitted at ``submitted_at``.

    Raises :class:`InfeasibleJob` naming the earliest feasible finish when the deadline
    cannot be met, and :class:`BadInput` for a deadline already in the past or times beyond
    the calendar.
    """
    try:
        return _resolve(policy, submitted_at=submitted_at, duration_s=duration_s, not_before=not_before)
    except OverflowError:
        raise BadInput(
            f"policy {policy.name!r} or duration {duration_s} s reaches beyond the year 9999: "
            "give shorter durations"
        ) from None


def _resolve(policy: Policy, *, submitted_at: datetime, duration_s: int, not_before: datetime | None) -> Bounds:
    earliest = max(submitted_at, not_before) if not_before else submitted_at
    duration = timedelta(seconds=duration_s)
    earliest_finish = earliest + duration
    deadline: datetime | None = None
    if policy.deadline_at is not None:
        deadline = policy.deadline_at
    elif policy.deadline_s is not None:
        deadline = submitted_at + timedelta(seconds=policy.deadline_s)
    if deadline is not None and deadline <= submitted_at:
        raise BadInput(
            f"deadline {iso(deadline)} is in the past: give a later time or a duration like 12h"
        )
    bounds: list[datetime] = []
    if deadline is not None:
        bounds.append(deadline - duration)
    if policy.latest_start_at is not None:
        bounds.append(policy.latest_start_at)
    if policy.latest_start_s is not None:
        bounds.append(submitted_at + timedelta(seconds=policy.latest_start_s))
    if policy.max_delay_s is not None:
        bounds.append(earliest + timedelta(seconds=policy.max_delay_s))
    if policy.run_now:
        bounds.append(earliest)
    if not bounds:
        deadline = submitted_at + timedelta(seconds=max(DEFAULT_DEADLINE_S, duration_s))
        bounds.append(deadline - duration)
    latest = min(bounds)
    if deadline is not None and deadline < earliest_finish:
        raise InfeasibleJob(
            f"deadline {iso(deadline)} is earlier than the earliest possible finish "
            f"{iso(earliest_finish)} (now + {format_duration(duration_s)}): "
            f"{give_deadline(earliest_finish, submitted_at)}"
        )
    if latest < earliest:
        raise InfeasibleJob(
            f"latest start {iso(latest)} is before the earliest start {iso(earliest)}: "
            "relax --latest-start or --max-delay"
        )
    return Bounds(
        earliest_start=earliest,
        latest_start=latest,
        deadline_at=deadline,
        threshold_g_per_kwh=policy.threshold_g_per_kwh,
        budget_g=policy.budget_g,
        run_now=policy.run_now,
        interruptible=policy.interruptible,
    )
