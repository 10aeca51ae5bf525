"""``carbonshift demo``: the offline demo."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--keep", is_flag=True, help="Keep the demo's database and logs, and print where.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Put the demo's files here (implies --keep).")
@click.option("--factor", default=3600.0, show_default=True, help="Simulated seconds per real second.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON at the end.")
def demo(keep: bool, data_dir: str | None, factor: float, as_json: bool) -> None:
    """Run real jobs on a replayed real carbon trace with an accelerated clock.

    Uses a temporary database and the shipped Great Britain trace (Electricity Maps, March
    2023); nothing is left behind unless --keep. Takes about half a minute.
    """
    from scheduler.app import App
    from scheduler.cli.common import echo_json
    from scheduler.config import load_settings
    from scheduler.demo import cleanup, run_demo
    from scheduler.history import history_rows

    if factor <= 0 or factor != factor:
        from scheduler.errors import BadInput

        raise BadInput(f"--factor {factor!r} must be a positive number")
    result = run_demo(data_dir=Path(data_dir) if data_dir else None, factor=factor,
                      emit=lambda s: click.echo(s, err=as_json))
    app = App(load_settings(env={}, overrides={"db": result.db_url, "data_dir": str(result.data_dir)}))
    try:
        rows = history_rows(app.store)
        if as_json:
            echo_json([r.as_dict() for r in rows])
        else:
            from scheduler.cli.common import print_table
            from scheduler.text.quantities import fmt_energy_kwh, fmt_less, fmt_saved
            from scheduler.text.quantities import fmt_mass_g as fmt_g
            from scheduler.text.times import format_duration

            click.echo("")
            print_table(
                ["id", "job", "state", "waited", "energy", "emissions", "if run at once", "saved"],
                [
                    [
                        r.id, r.name, r.state,
                        # to the minute: the simulated clock's seconds are noise here
                        format_duration(60 * round((r.started_at - r.submitted_at).total_seconds() / 60))
                        if r.started_at else "-",
                        f"{fmt_energy_kwh(r.energy_kwh)} ({r.energy_method})" if r.energy_kwh is not None else "-",
                        f"{fmt_g(r.emissions_g)} ({r.intensity_kind})",
                        fmt_g(r.counterfactual_g),
                        fmt_saved(r.saved_g, r.saved_pct),
                    ]
                    for r in rows
                ],
                title="carbonshift demo: history",
            )
            done = [r for r in rows if r.counterfactual_g]
            if done:
                e = sum(r.emissions_g or 0 for r in done)
                c = sum(r.counterfactual_g or 0 for r in done)
                with_deadline = [r for r in rows if r.deadline_at is not None and r.finished_at]
                met = [r for r in with_deadline if r.finished_at <= r.deadline_at]  # type: ignore[operator]
                deadlines = (
                    "every deadline met" if len(met) == len(with_deadline)
                    else f"{len(met)} of {len(with_deadline)} deadlines met (a job overran its estimate)"
                )
                click.echo(
                    f"\nall jobs: {fmt_g(e)} emitted vs {fmt_g(c)} had each started at submission: "
                    f"{fmt_less(100 * (c - e) / c)} CO2, {deadlines}."
                )
            click.echo(
                "energy is real (CPU time of each job's process tree x per-core power); time is "
                f"compressed {factor:g}x, so the grams are small: the percentages are the point."
            )
    finally:
        app.close()
    if keep or data_dir:
        click.echo(f"kept: {result.data_dir} (carbonshift --db {result.data_dir / 'demo.db'} history)",
                   err=as_json)  # with --json, stdout holds the JSON alone
    else:
        cleanup(result)
