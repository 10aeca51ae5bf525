"""``carbonshift report``: energy, emissions and savings aggregated by period or group."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

import click

from scheduler.cli.common import check_output_file, echo_json, get_app, print_table, state
from scheduler.errors import BadInput
from scheduler.present import report_dict
from scheduler.text.quantities import fmt_mass_g as fmt_g
from scheduler.text.times import format_duration, iso, parse_since

if TYPE_CHECKING:
    from scheduler.app import App
    from scheduler.sweep_summary import SweepSummary

GROUPING_CHOICES = ("day", "week", "month", "site", "policy", "owner", "zone", "job", "sweep")


def parse_range(since: str | None, until: str | None, now: datetime) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until`` (:func:`parse_since`), refused when ``--until`` is not after
    ``--since``."""
    t_since = parse_since(since, now, "--since")
    t_until = parse_since(until, now, "--until")
    if t_since is not None and t_until is not None and t_until <= t_since:
        raise BadInput(f"--until {until!r} is not after --since {since!r}: give an --until later than --since")
    return t_since, t_until


def display_tz(utc: bool) -> tzinfo:
    """UTC with ``--utc``, else this machine's local zone."""
    if utc:
        return UTC
    local = datetime.now(UTC).astimezone().tzinfo
    return local or UTC


def last_projections(app: App, rows: Sequence[object]) -> dict[int, object]:
    """The last recorded projection of each finished job among ``rows`` (one query per 500
    jobs, not one per job; an SQLite file through the stdlib side door)."""
    from scheduler.history import HistoryRow
    from scheduler.progress import PROJECTION_EVENT, last_projection
    from scheduler.storage import lite

    ids = [r.id for r in rows if isinstance(r, HistoryRow) and r.energy_kwh is not None]
    url = app.lite_url
    found = lite.events_of_kind(url, ids, PROJECTION_EVENT) if url is not None else None
    if found is None:
        found = app.store.events_of_kind(ids, PROJECTION_EVENT)
    out: dict[int, object] = {}
    for job_id, events in found.items():
        p = last_projection(events)
        if p is not None:
            out[job_id] = p
    return out


@click.command()
@click.option("--since", default="30d", show_default=True, metavar="WHEN",
              help="Jobs submitted since: a duration ago (7d, 12h), an ISO time, or 'all'.")
@click.option("--until", metavar="WHEN", help="Jobs submitted before: a duration ago or an ISO time.")
@click.option("--by", "by", type=click.Choice(GROUPING_CHOICES), default="day", show_default=True,
              help="Group by period (local time; --utc for UTC) or by site, policy, owner, zone, job, sweep.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--plot", is_flag=True, help="Also draw emissions vs run-now in the terminal.")
@click.option("--png", "png", metavar="FILE", type=click.Path(dir_okay=False),
              help=f"Write the chart as PNG (needs `{'pip install carbonshift[plot]'}`).")
@click.option("--svg", "svg", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the chart as SVG (built in, no extra needed).")
@click.option("--carbon-price", metavar="PRICE",
              help="Internal carbon price, like 80/t or 80EUR/t (default: config carbon_price).")
def report(
    since: str, until: str | None, by: str, fmt: str, as_json: bool, plot: bool,
    png: str | None, svg: str | None, carbon_price: str | None,
) -> None:
    """Aggregate jobs, GPU-hours, energy, emissions and savings against run-now.

    \b
    Columns: jobs, GPU-hours, energy (facility kWh), emissions (kgCO2e), run-now (the same
    measured power had each job started at submission), saved, deadline hits of succeeded
    jobs with a deadline, mean delay from submission to start, the share of energy that
    was measured (not estimated), the share of emissions on actual (not forecast)
    intensity, and with a carbon price the carbon cost and the cost avoided. By sweep:
    a row per sweep (s3; "-" for jobs of no sweep) with its trials by state and its
    budget used too (in --json, each row's "sweep").

    \b
    Examples:
      carbonshift report --since 7d --by day --plot
      carbonshift report --by owner --carbon-price 80EUR/t --format csv
      carbonshift report --by month --svg emissions.svg
    """
    from scheduler.charts import render_text, report_chart, write_chart
    from scheduler.history import read_history_rows
    from scheduler.reporting import REPORT_FIELDS, CarbonPrice, accuracy, build_report, table_rows

    if as_json:
        fmt = "json"
    for path, what in ((png, "--png"), (svg, "--svg")):
        if path:
            check_output_file(path, what)
    app = get_app()
    now = app.clock.now()
    t_since, t_until = parse_range(since, until, now)
    price_text = carbon_price or app.settings.carbon_price
    price = CarbonPrice.parse(price_text) if price_text else None
    from scheduler.cli.progressbar import progress

    with progress("report", as_json=fmt != "table") as step:
        step(0, 3, "reading jobs")
        rows = read_history_rows(app.lite_url, lambda: app.store, since=t_since, until=t_until)
        step(1, 3, f"grouping {len(rows):,} jobs")
        rep = build_report(rows, by=by, tz=display_tz(state().utc), price=price,
                           since=t_since, until=t_until, now=now)
        step(2, 3, "reading projections")
        acc = accuracy(rows, last_projections(app, rows))
        step(3, 3)
    chart = report_chart(rep)
    for path in (png, svg):
        if path:
            write_chart(chart, path)
    sweeps: dict[str, SweepSummary] = {}
    if by == "sweep" and fmt in ("json", "table"):
        from scheduler.sweep_summary import report_sweeps

        sweeps = report_sweeps(app, rep.rows)
    if fmt == "json":
        echo_json({**report_dict(rep, sweeps), "accuracy": acc.as_dict()})
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(REPORT_FIELDS)
        for r in [*rep.rows, rep.total]:
            d = r.as_dict()
            w.writerow(["" if d[k] is None else (iso(d[k]) if isinstance(d[k], datetime) else d[k])  # type: ignore[arg-type]
                        for k in REPORT_FIELDS])
        click.echo(buf.getvalue(), nl=False)
    else:
        window = f"since {iso(t_since)}" if t_since else "all time"
        if t_until:
            window += f" until {iso(t_until)}"
        if not rows:
            click.echo(f"no jobs {window} (try --since all)")
        else:
            headers, cells = table_rows(rep, fmt_g, format_duration)
            if sweeps:
                from scheduler.present import budget_text

                headers = [*headers, "trials", "budget used"]
                for cell_row, r in zip(cells, [*rep.rows, rep.total], strict=True):
                    s = sweeps.get(r.key)
                    cell_row += [s.trials_text(), budget_text(s)] if s is not None else ["-", "-"]
            title = f"carbonshift report by {by}, {window}"
            if price:
                title += f", carbon price {price}"
            print_table(headers, cells, title=title)
            for note in rep.notes:
                click.echo(f"note: {note}")
            line = acc.describe(fmt_g)
            if line:
                click.echo(line)
    if plot and rows:
        click.echo(render_text(chart), err=fmt != "table")
    for path in (png, svg):
        if path:
            click.echo(f"chart written to {path}", err=True)
