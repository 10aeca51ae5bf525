"""How sweeps are shown by ``show s3``, ``queue``, ``history`` and ``report --by sweep``.

A sweep is one row everywhere (:mod:`scheduler.sweep_summary`), with the same columns
(:data:`SWEEP_HEADERS`) and, with ``--json``, the same object (:func:`sweep_dict`, marked
``"kind": "sweep"`` beside the jobs' ``"kind": "job"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import click

from scheduler.cli.common import echo_json, fmt_time, print_table
from scheduler.units import fmt_energy_kwh, fmt_pct, fmt_saved
from scheduler.units import fmt_mass_g as fmt_g

if TYPE_CHECKING:
    from scheduler.app import App
    from scheduler.history import HistoryRow
    from scheduler.sweep_summary import SweepSummary

#: the columns of a sweep's row in every table
SWEEP_HEADERS = ["sweep", "name", "state", "owner", "trials", "deadline", "expected", "energy",
                 "emissions", "if run now", "saved", "budget used"]


def summaries(app: App, sweep_ids: Sequence[int]) -> dict[int, tuple[SweepSummary, list[HistoryRow]]]:
    """:func:`scheduler.sweep_summary.load_summaries` with each sweep's budget account as
    the daemon keeps it (:func:`scheduler.sweeps.budget_use`)."""
    from scheduler.model import Job
    from scheduler.sweep_summary import load_summaries
    from scheduler.sweeps import BudgetUse, budget_use

    now = app.clock.now()

    def budget_of(trials: Sequence[Job]) -> BudgetUse:
        return budget_use(app, trials, now)

    return load_summaries(app.store, sweep_ids, budget_of=budget_of, now=now)


def budget_text(s: SweepSummary) -> str:
    """``450 g of 1.00 kg (45%)``: the grams the daemon counts against the budget."""
    if s.budget_g is None or s.budget_used_g is None:
        return "-"
    return f"{fmt_g(s.budget_used_g)} of {fmt_g(s.budget_g)} ({fmt_pct(s.budget_used_pct, 0)})"


def sweep_cells(s: SweepSummary, when: Callable[[datetime | None], str] | None = None) -> list[str]:
    """A sweep's cells under :data:`SWEEP_HEADERS`; ``when`` formats a time (default: as the
    CLI prints one)."""
    emitted = fmt_g(s.emissions_g)
    if s.intensity_kind:
        emitted += f" ({s.intensity_kind})"
    return [
        s.ref, s.name, s.state, s.owner, f"{s.trials_text()} of {s.size}", (when or fmt_time)(s.deadline_at),
        fmt_g(s.expected_g), fmt_energy_kwh(s.energy_kwh), emitted, fmt_g(s.counterfactual_g),
        fmt_saved(s.saved_g, s.saved_pct) if s.saved_g is not None else "-", budget_text(s),
    ]


def sweep_dict(s: SweepSummary, trials: Sequence[dict[str, object]] | None = None) -> dict[str, object]:
    """A sweep's JSON object: its summary, ``"kind": "sweep"``, its trials when given."""
    data: dict[str, object] = {"kind": "sweep", **s.as_dict()}
    if trials is not None:
        data["trials"] = list(trials)
    return data


def print_sweeps(found: Sequence[SweepSummary], *, title: str | None = "sweeps") -> None:
    if found:
        print_table(SWEEP_HEADERS, [sweep_cells(s) for s in found], title=title)


def show_sweep(app: App, sweep_id: int, *, as_json: bool) -> None:
    """``carbonshift show s3``: the summary, then one line per trial."""
    app.store.get_sweep(sweep_id)  # NotFound names the sweep
    s, rows = summaries(app, [sweep_id])[sweep_id]
    if as_json:
        echo_json(sweep_dict(s, [{"kind": "job", **r.as_dict()} for r in rows]))
        return
    click.echo(f"sweep {s.ref}  {s.name}  [{s.state}]  owner {s.owner}")
    cap = f"; at most {s.max_concurrent} at once" if s.max_concurrent else ""
    click.echo(f"  trials    {s.size}: {s.trials_text()}{cap}")
    click.echo(f"  deadline  {fmt_time(s.deadline_at)} (submitted {fmt_time(s.submitted_at)}); "
               f"ran {fmt_time(s.started_at)} -> {fmt_time(s.finished_at)}")
    click.echo(f"  plan      expected {fmt_g(s.expected_g)}, run now {fmt_g(s.run_now_g)}")
    if s.accounted:
        share = f", {s.measured_share * 100:.0f}% measured" if s.measured_share is not None else ""
        click.echo(f"  energy    {fmt_energy_kwh(s.energy_kwh)} ({s.energy_method}{share}) "
                   f"over {s.accounted} trial(s)")
        click.echo(f"  emissions {fmt_g(s.emissions_g)} ({s.intensity_kind} intensity from "
                   f"{s.intensity_provider}); run now {fmt_g(s.counterfactual_g)}; "
                   f"{fmt_saved(s.saved_g, s.saved_pct, verb='saved ')}")
    else:
        click.echo("  energy    - (no trial has finished with figures yet)")
    if s.budget_g is not None:
        live = f", {fmt_g(s.running_g)} of it by running trials" if s.running_g else ""
        rest = f"; the trials not started expect {fmt_g(s.budget_waiting_g)} more" if s.budget_waiting_g else ""
        click.echo(f"  budget    {budget_text(s)} used{live}{rest}")
    if s.stopped_at is not None:
        click.echo(f"  stopped   {fmt_time(s.stopped_at)}: {s.stop_reason or '-'}")
    if rows:
        click.echo("  trials")
        print_table(
            ["index", "job", "state", "started", "finished", "energy", "emissions", "saved", "note"],
            [[r.array_index, r.id, r.state, fmt_time(r.started_at), fmt_time(r.finished_at),
              fmt_energy_kwh(r.energy_kwh), fmt_g(r.emissions_g), fmt_saved(r.saved_g, r.saved_pct),
              r.note or ""] for r in rows],
        )


__all__ = ["SWEEP_HEADERS", "print_sweeps", "show_sweep", "summaries",
           "sweep_cells", "sweep_dict"]
