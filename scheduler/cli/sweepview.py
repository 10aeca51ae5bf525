"""How sweeps are shown by ``show s3``, ``queue``, ``history`` and ``report --by sweep``.

A sweep is one row everywhere (:mod:`scheduler.sweep_summary`), with the same columns
(:data:`SWEEP_HEADERS`) and, with ``--json``, the same object (:func:`sweep_dict`, marked
``"kind": "sweep"`` beside the jobs' ``"kind": "job"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from scheduler.cli.common import echo_json, fmt_time, print_table
from scheduler.present import SWEEP_HEADERS, budget_text, sweep_cells, sweep_dict
from scheduler.sweep_summary import summaries
from scheduler.text.quantities import fmt_energy_kwh, fmt_saved
from scheduler.text.quantities import fmt_mass_g as fmt_g

if TYPE_CHECKING:
    from scheduler.app import App
    from scheduler.sweep_summary import SweepSummary

def print_sweeps(found: Sequence[SweepSummary], *, title: str | None = "sweeps") -> None:
    if found:
        print_table(SWEEP_HEADERS, [sweep_cells(s, fmt_time) for s in found], title=title)


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
