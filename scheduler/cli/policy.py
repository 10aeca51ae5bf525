"""``carbonshift policy set|list|show|rm``: named carbon deadline policies."""

from __future__ import annotations

import click

from scheduler.cli.common import echo_json, get_app, json_option, print_table
from scheduler.cli.jobs import policy_options
from scheduler.domain.model import Policy
from scheduler.domain.policies import BUILTIN_POLICIES, policy_from_flags, validate_policy
from scheduler.errors import BadInput
from scheduler.text.quantities import fmt_mass_g as fmt_g
from scheduler.text.times import format_duration, iso


def policy_dict(p: Policy, builtin: bool = False) -> dict[str, object]:
    return {
        "name": p.name, "builtin": builtin, "deadline_s": p.deadline_s, "deadline_at": p.deadline_at,
        "latest_start_s": p.latest_start_s, "latest_start_at": p.latest_start_at,
        "max_delay_s": p.max_delay_s, "threshold_g_per_kwh": p.threshold_g_per_kwh,
        "budget_g": p.budget_g, "run_now": p.run_now, "interruptible": p.interruptible,
        "description": p.description,
    }


def describe(p: Policy) -> str:
    parts = []
    if p.run_now:
        parts.append("run now")
    if p.deadline_s is not None:
        parts.append(f"finish within {format_duration(p.deadline_s)}")
    if p.deadline_at is not None:
        parts.append(f"finish by {iso(p.deadline_at)}")
    if p.latest_start_s is not None:
        parts.append(f"start within {format_duration(p.latest_start_s)}")
    if p.latest_start_at is not None:
        parts.append(f"start by {iso(p.latest_start_at)}")
    if p.max_delay_s is not None:
        parts.append(f"delay at most {format_duration(p.max_delay_s)}")
    if p.threshold_g_per_kwh is not None:
        parts.append(f"start below {p.threshold_g_per_kwh:g} g/kWh")
    if p.budget_g is not None:
        parts.append(f"budget {fmt_g(p.budget_g)}")
    if p.interruptible:
        parts.append("interruptible")
    return ", ".join(parts) or "finish within 24h (default)"


@click.group()
def policy() -> None:
    """Manage named carbon deadline policies (stored in the database).

    \b
    Built-in: `default` (finish within 24 h at the lowest-carbon time) and `now`
    (no shifting). A stored policy of the same name overrides a built-in.
    """


@policy.command("set")
@click.argument("name")
@policy_options
@click.option("--description", default="", help="A note shown in `policy list`.")
@json_option
def policy_set(
    name: str, deadline: str | None, latest_start: str | None, max_delay: str | None,
    threshold: str | None, budget: str | None, run_now: bool, interruptible: bool,
    description: str, as_json: bool,
) -> None:
    """Create or replace policy NAME.

    \b
    Example: carbonshift policy set nightly --deadline 12h --threshold 150
    """
    app = get_app()
    p = policy_from_flags(
        app.clock.now(), deadline=deadline, latest_start=latest_start, max_delay=max_delay,
        threshold=threshold, budget=budget, run_now=run_now, interruptible=interruptible,
        relative=True, name=name,
    )
    p = _with_description(p, description)
    validate_policy(p)
    app.store.put_policy(p)
    if as_json:
        echo_json(policy_dict(p))
    else:
        click.echo(f"policy {name!r} saved: {describe(p)}")


def _with_description(p: Policy, description: str) -> Policy:
    from dataclasses import replace

    return replace(p, description=description)


@policy.command("list")
@json_option
def policy_list(as_json: bool) -> None:
    """List policies, built-in ones included."""
    app = get_app()
    items = app.queue.list_policies()
    if as_json:
        echo_json([policy_dict(p, b) for p, b in items])
        return
    print_table(
        ["name", "rules", "description"],
        [[p.name + (" (built-in)" if b else ""), describe(p), p.description] for p, b in items],
    )


@policy.command("show")
@click.argument("name")
@json_option
def policy_show(name: str, as_json: bool) -> None:
    """Show one policy."""
    app = get_app()
    p = app.queue.get_policy(name)
    builtin = name in BUILTIN_POLICIES and name not in {q.name for q in app.store.list_policies()}
    if as_json:
        echo_json(policy_dict(p, builtin))
    else:
        click.echo(f"{p.name}{' (built-in)' if builtin else ''}: {describe(p)}")
        if p.description:
            click.echo(f"  {p.description}")


@policy.command("rm")
@click.argument("name")
@json_option
def policy_rm(name: str, as_json: bool) -> None:
    """Remove a stored policy (jobs already submitted keep their resolved bounds)."""
    app = get_app()
    if name in BUILTIN_POLICIES and name not in {q.name for q in app.store.list_policies()}:
        raise BadInput(f"policy {name!r} is built in and cannot be removed")
    app.store.delete_policy(name)
    if as_json:
        echo_json({"name": name, "removed": True})
    else:
        click.echo(f"policy {name!r} removed")
