"""The dashboard's HTML and JSON, built from the same rows as the CLI.

Pure rendering over data gathered by :func:`gather`: no JavaScript (the page refreshes
itself with a meta tag), charts as inline SVG from :mod:`scheduler.charts`, every
user-supplied string escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from scheduler.charts import forecast_chart, render_svg, report_chart
from scheduler.domain.model import Job, JobState
from scheduler.history import HistoryRow
from scheduler.reporting import Report, fmt_kwh, fmt_money
from scheduler.text.quantities import fmt_energy_j, fmt_saved

if TYPE_CHECKING:
    from scheduler.app import App
    from scheduler.progress import Projection
    from scheduler.sweep_summary import SweepSummary

WAITING = (JobState.PENDING, JobState.PLANNED, JobState.RUNNING, JobState.SUSPENDED)


@dataclass
class ZoneForecast:
    """A zone's forecast over the queue's horizon, with the jobs planned in it."""

    zone: str
    points: list[Any]
    source: str
    jobs: list[Job]
    error: str = ""


@dataclass
class Snapshot:
    """Everything the page shows, read once per request."""

    now: datetime
    tz: tzinfo
    db: str
    queue: list[Job]
    projections: dict[int, Projection]
    history: list[HistoryRow]
    report: Report
    forecasts: list[ZoneForecast] = field(default_factory=list)
    window: str = "last 30 days"
    #: sweeps submitted in the window or with trials in the queue, newest first (their
    #: trials are in neither ``queue`` nor ``history``)
    sweeps: list[SweepSummary] = field(default_factory=list)


def _sweep_ids(app: App, *, since: datetime | None, until: datetime | None, limit: int) -> list[int]:
    """The newest ``limit`` sweeps submitted in ``[since, until)``."""
    found = [s for s in app.store.list_sweeps() if s.id is not None
             and (since is None or s.submitted_at >= since) and (until is None or s.submitted_at < until)]
    return [s.id for s in reversed(found) if s.id is not None][:limit]


def recent_sweeps(app: App, *, since: datetime | None, until: datetime | None = None,
                  limit: int = 50, also: Sequence[int] = ()) -> list[SweepSummary]:
    """Summaries of the newest ``limit`` sweeps submitted in ``[since, until)`` and of the
    sweeps ``also`` names, newest first."""
    from scheduler.sweep_summary import summaries

    ids = list(dict.fromkeys([*_sweep_ids(app, since=since, until=until, limit=limit), *also]))
    found = summaries(app, ids) if ids else {}
    return [found[i][0] for i in sorted(found, reverse=True)]


def gather(app: App, *, tz: tzinfo, since: str = "30d", history_limit: int = 50,
           with_forecasts: bool = True) -> Snapshot:
    """Read the queue, the history and report of jobs submitted ``since`` (a duration
    back from now, an ISO time or ``all``) and the forecasts of the queue's zones."""
    from scheduler.errors import CarbonshiftError
    from scheduler.history import history_rows
    from scheduler.progress import live_projection
    from scheduler.reporting import CarbonPrice, build_report

    now = app.clock.now()
    store = app.store
    waiting = store.list_jobs(list(WAITING))
    queue = [j for j in waiting if j.sweep_id is None]  # trials: one row per sweep
    projections: dict[int, Projection] = {}
    live = [j for j in queue if j.state in (JobState.RUNNING, JobState.SUSPENDED) and j.id is not None]
    last = store.last_runs(j.id for j in live if j.id is not None)
    for j in live:
        run = last.get(j.id or 0)
        if run is not None and run.finished_at is None:
            p = live_projection(app, j, run, now)
            if p is not None:
                projections[j.id or 0] = p
    from scheduler.text.times import parse_since

    t_since = parse_since(since, now, "--since")
    rows = history_rows(store, since=t_since)
    recent = [r for r in rows if r.state not in (s.value for s in WAITING)
              and r.sweep_id is None][-history_limit:]
    sweeps = recent_sweeps(app, since=t_since, limit=history_limit,
                           also=[j.sweep_id for j in waiting if j.sweep_id is not None])
    price = None
    if app.settings.carbon_price:
        try:
            price = CarbonPrice.parse(app.settings.carbon_price)
        except CarbonshiftError:
            price = None
    report = build_report(rows, by="day", tz=tz, price=price, since=t_since, now=now)
    forecasts: list[ZoneForecast] = []
    if with_forecasts:
        sites = app.queue.sites()
        by_zone: dict[str, list[Job]] = {}
        for j in waiting:
            site = sites.get(j.planned_site or j.site)
            by_zone.setdefault(site.zone if site else j.zone, []).append(j)
        if not by_zone:
            by_zone[app.settings.default_zone] = []
        for zone, jobs in sorted(by_zone.items()):
            ends = [j.planned_start + timedelta(seconds=j.duration_s) for j in jobs if j.planned_start]
            ends += [j.deadline_at for j in jobs if j.deadline_at]
            horizon = max([now + timedelta(hours=24), *ends]) - now
            try:
                fc, source, _ = app.queue.forecast(zone, now, int(horizon.total_seconds()))
                forecasts.append(ZoneForecast(zone, list(fc.points), source, jobs))
            except Exception as exc:  # the page must render without carbon data
                forecasts.append(ZoneForecast(zone, [], "", jobs, error=str(exc)))
    return Snapshot(now, tz, _redact_url(app.settings.db), queue, projections, recent, report,
                    forecasts, window="all time" if t_since is None else f"since {_t(t_since, tz)}",
                    sweeps=sweeps)


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, _, host = rest.rpartition("@")
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


# -- formatting ---------------------------------------------------------------------------
def _e(value: object) -> str:
    return html.escape("-" if value is None else str(value), quote=True)


def _t(value: datetime | None, tz: tzinfo) -> str:
    if value is None:
        return "-"
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _g(value: float | None) -> str:
    from scheduler.text.quantities import fmt_mass_g

    return fmt_mass_g(value)


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1f}%"


def _dur(seconds: float | None) -> str:
    from scheduler.text.times import format_duration

    return "-" if seconds is None else format_duration(seconds)


CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2d35;background:#fafafa}
h1{margin:0 0 .2rem 0;font-size:1.5rem}h2{margin-top:2rem;font-size:1.15rem}
.meta{color:#5b6b73;font-size:.9rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.88rem}
th,td{padding:.3rem .5rem;border-bottom:1px solid #e3e7ea;text-align:left;white-space:nowrap}
th{background:#eef2f4}td.num{text-align:right}
.saved{color:#1f7a6f;font-weight:600}.worse{color:#b23a1e}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{background:#fff;border:1px solid #e3e7ea;border-radius:6px;padding:.6rem 1rem;min-width:9rem}
.card b{display:block;font-size:1.3rem}
.chart{background:#fff;border:1px solid #e3e7ea;border-radius:6px;padding:.4rem;margin:.5rem 0;max-width:760px}
.chart svg{width:100%;height:auto}
.note{color:#5b6b73;font-size:.85rem}
code{background:#eef2f4;padding:0 .2rem}
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in r) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: object, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}>{_e(value)}</td>"


def _saving(expected: float | None, run_now: float | None) -> float | None:
    if expected is None or run_now is None or run_now <= 0:
        return None
    return 100.0 * (run_now - expected) / run_now


def render_page(s: Snapshot) -> str:
    """The whole HTML page of a snapshot."""
    tz = s.tz
    t = s.report.total
    cards = [
        (f"jobs, {s.window}", str(t.jobs)),
        ("energy", fmt_kwh(t.energy_kwh) if t.accounted else "-"),
        ("emitted", _g(t.emissions_kg * 1000) if t.accounted else "-"),
        ("saved vs run-now", (_g(t.saved_kg * 1000) + f" ({_pct(t.saved_pct)})") if t.accounted else "-"),
        ("deadlines met", f"{t.deadline_hits}/{t.deadline_jobs}" if t.deadline_jobs else "-"),
        ("waiting or running", str(len(s.queue) + sum(w.running + w.waiting for w in s.sweeps))),
    ]
    if s.report.price is not None and t.carbon_cost is not None:
        cards.append(("carbon cost avoided", fmt_money(t.cost_avoided, s.report.price.currency)))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="refresh" content="60">',
        '<link rel="icon" href="data:,">',
        "<title>carbonshift dashboard</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>carbonshift</h1>",
        f'<div class="meta">read-only view of <code>{_e(s.db)}</code> at {_e(_t(s.now, tz))}; '
        "refreshes every minute</div>",
        '<div class="cards" id="totals">'
        + "".join(f'<div class="card">{_e(k)}<b>{_e(v)}</b></div>' for k, v in cards)
        + "</div>",
        '<h2 id="queue-title">Queue</h2>',
    ]
    if s.queue:
        rows = []
        for j in s.queue:
            sav = _saving(j.expected_g, j.run_now_g)
            p = s.projections.get(j.id or -1)
            live = "-"
            if p is not None:
                live = f"{p.power_w:.0f} W, {fmt_energy_j(p.energy_j)} so far; {p.describe()}"
            rows.append([
                _td(j.id), _td(j.name), _td(j.state), _td(j.owner), _td(_t(j.planned_start, tz)),
                _td(_t(j.deadline_at, tz)), _td(f"{j.planned_site or j.site}/{j.zone}"),
                _td(_dur(j.duration_s)), _td(_g(j.expected_g), "num"), _td(_g(j.run_now_g), "num"),
                _td(_pct(sav), "num saved" if sav and sav > 0 else "num"), _td(live),
            ])
        out.append(_table(["id", "name", "state", "owner", "planned start", "deadline", "site/zone",
                           "duration", "expected", "if run now", "saving", "live"], rows, table_id="queue"))
    else:
        out.append('<p class="note" id="queue">No job is waiting or running.</p>')
    for fc in s.forecasts:
        windows = [
            (j.planned_start, j.planned_start + timedelta(seconds=j.duration_s), f"job {j.id} {j.name}")
            for j in fc.jobs if j.planned_start is not None
            and j.planned_start + timedelta(seconds=j.duration_s) > s.now  # stale plans: not drawn
        ]
        if fc.error or not fc.points:
            out.append(f'<p class="note">No forecast for {_e(fc.zone)}: {_e(fc.error or "no data")}</p>')
            continue
        horizon_end = max([s.now + timedelta(hours=24), *(w[1] for w in windows)])
        pts = [p for p in fc.points if p.end > s.now - timedelta(hours=1) and p.start < horizon_end]
        chart = forecast_chart(fc.zone, pts, windows=windows, tz=tz, now=s.now,
                               title=f"{fc.zone}: forecast and planned windows")
        out.append(f'<div class="chart forecast" data-zone="{_e(fc.zone)}">{render_svg(chart)}</div>')
        out.append(f'<p class="note">forecast from {_e(fc.source)}</p>')
    out.append('<h2 id="sweeps-title">Sweeps</h2>')
    if s.sweeps:
        from scheduler.present import SWEEP_HEADERS, sweep_cells

        out.append(_table(SWEEP_HEADERS, [[_td(c) for c in sweep_cells(w, lambda v: _t(v, tz))] for w in s.sweeps],
                          table_id="sweeps"))
    else:
        out.append(f'<p class="note" id="sweeps">No sweep ({_e(s.window)}).</p>')
    out.append("<h2>Recent history</h2>")
    if s.history:
        rows = []
        for r in reversed(s.history):
            saved_cls = "num saved" if (r.saved_g or 0) > 0 else ("num worse" if (r.saved_g or 0) < 0 else "num")
            rows.append([
                _td(r.id), _td(r.name), _td(r.state), _td(r.owner), _td(_t(r.started_at, tz)),
                _td(fmt_kwh(r.energy_kwh), "num"), _td(_g(r.emissions_g), "num"),
                _td(_g(r.counterfactual_g), "num"),
                _td(fmt_saved(r.saved_g, r.saved_pct), saved_cls),
                _td(r.energy_method), _td(f"{r.intensity_kind}/{r.intensity_provider}" if r.intensity_kind else "-"),
            ])
        out.append(_table(["id", "name", "state", "owner", "started", "energy", "emitted", "if run now",
                           "saved", "energy from", "intensity"], rows, table_id="history"))
    else:
        out.append(f'<p class="note" id="history">No finished job ({_e(s.window)}).</p>')
    out.append(f"<h2>Report by day, {_e(s.window)}</h2>")
    if s.report.rows:
        out.append(f'<div class="chart report">{render_svg(report_chart(s.report))}</div>')
    else:
        out.append('<p class="note">Nothing to report yet.</p>')
    out.append(
        '<h2>JSON</h2><p class="note">'
        '<a href="/api/queue">/api/queue</a> · <a href="/api/history">/api/history?since=7d</a> · '
        '<a href="/api/sweeps">/api/sweeps</a> · '
        '<a href="/api/report">/api/report?by=day&amp;since=30d</a> · '
        '<a href="/api/forecast">/api/forecast?zone=ZONE</a> · '
        '<a href="/charts/report.svg">/charts/report.svg</a> · /charts/job/ID.svg</p>'
    )
    out.append("</body></html>")
    return "\n".join(out)
