"""Charts: one description, three renderers.

A chart is described once, as plain data (:class:`BarChart` for per-period totals,
:class:`TimeChart` for series over time with marked windows), then drawn:

- :func:`render_text`: lines of plain text and Unicode blocks, for the terminal (``--plot``);
- :func:`render_svg`: a standalone SVG document written here, with no dependency (``--svg``
  and the dashboard);
- :func:`render_png`: a PNG through matplotlib, the optional extra
  ``pip install carbonshift[plot]`` (``--png``); without it, :class:`PlotUnavailable` says
  exactly that in one line.

The chart builders (:func:`report_chart`, :func:`job_chart`, :func:`forecast_chart`) are
pure: they take history rows, samples and intensity points, never a store or a clock.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from scheduler.errors import CarbonshiftError

PLOT_EXTRA_HINT = "pip install carbonshift[plot]"

# colours that read on white and in the terminal's legend alike
ACTUAL_COLOUR = "#2a9d8f"
RUN_NOW_COLOUR = "#e76f51"
POWER_COLOUR = "#264653"
INTENSITY_COLOUR = "#e9c46a"
CHOSEN_COLOUR = "#2a9d8f"
_QUOTE = {'"': "&quot;"}  # escape() leaves quotes alone; attribute values need them escaped
PALETTE = ("#2a9d8f", "#e76f51", "#457b9d", "#f4a261", "#8d6e97", "#6a994e", "#bc4749")


class PlotUnavailable(CarbonshiftError):
    """PNG charts need matplotlib, which is not installed."""

    exit_code = 2


@dataclass(frozen=True)
class BarSeries:
    """One series of a bar chart: a value per label."""

    name: str
    values: Sequence[float]
    colour: str = ACTUAL_COLOUR


@dataclass(frozen=True)
class BarChart:
    """Grouped bars: for each label, one bar per series."""

    title: str
    labels: Sequence[str]
    series: Sequence[BarSeries]
    unit: str = ""


@dataclass(frozen=True)
class Step:
    """A constant value over ``[start, end)``."""

    start: datetime
    end: datetime
    value: float


@dataclass(frozen=True)
class TimeSeries:
    """A step series over time, with its unit."""

    name: str
    steps: Sequence[Step]
    unit: str
    colour: str = POWER_COLOUR


@dataclass(frozen=True)
class Span:
    """A marked window on a time chart (the chosen window, the run-now window...)."""

    start: datetime
    end: datetime
    label: str
    colour: str = CHOSEN_COLOUR


@dataclass(frozen=True)
class TimeChart:
    """Up to two series over time (left and right axes) and marked windows."""

    title: str
    left: TimeSeries | None
    right: TimeSeries | None = None
    spans: Sequence[Span] = field(default_factory=tuple)
    tz: tzinfo = UTC
    now: datetime | None = None

    def bounds(self) -> tuple[datetime, datetime] | None:
        times: list[datetime] = []
        for s in (self.left, self.right):
            if s is not None:
                for st in s.steps:
                    times += [st.start, st.end]
        for sp in self.spans:
            times += [sp.start, sp.end]
        if self.now is not None and times:
            times.append(self.now)
        if not times:
            return None
        lo, hi = min(times), max(times)
        if hi <= lo:
            hi = lo + timedelta(minutes=1)
        return lo, hi


Chart = BarChart | TimeChart


# -- builders ---------------------------------------------------------------------------
def report_chart(report: object, *, scale_g: float | None = None) -> BarChart:
    """Emissions per group against run-now, from a :class:`~scheduler.reporting.Report`."""
    from scheduler.reporting import Report

    assert isinstance(report, Report)
    emitted = [r.emissions_kg * 1000 for r in report.rows]
    run_now = [r.run_now_kg * 1000 for r in report.rows]
    biggest = max([*emitted, *run_now, 0.0])
    unit, factor = _mass_unit(biggest if scale_g is None else scale_g)
    return BarChart(
        title=f"Emissions by {report.by}: actual vs had each job run at submission",
        labels=[r.key for r in report.rows],
        series=[
            BarSeries("run-now", [v / factor for v in run_now], RUN_NOW_COLOUR),
            BarSeries("actual", [v / factor for v in emitted], ACTUAL_COLOUR),
        ],
        unit=unit,
    )


def _mass_unit(grams: float) -> tuple[str, float]:
    if grams >= 10_000:
        return "kgCO2e", 1000.0
    if grams >= 1:
        return "gCO2e", 1.0
    if grams >= 0.001:
        return "mgCO2e", 0.001
    return "µgCO2e", 1e-6


def power_steps(samples: Sequence[object], *, bucket_s: float | None = None) -> list[Step]:
    """Total power over time from energy samples (all devices summed), in buckets.

    The bucket defaults to the sampling interval (the median sample length), so one
    bucket holds one sample per device.
    """
    from probes.model import Sample

    ss = [s for s in samples if isinstance(s, Sample) and s.end > s.start]
    if not ss:
        return []
    if bucket_s is None:
        lengths = sorted(s.duration_s for s in ss)
        bucket_s = max(1e-3, lengths[len(lengths) // 2])
    t0 = min(s.start for s in ss)
    t1 = max(s.end for s in ss)
    n = max(1, min(2000, math.ceil((t1 - t0).total_seconds() / bucket_s)))
    width = (t1 - t0).total_seconds() / n
    energy = [0.0] * n
    for s in ss:
        a = (s.start - t0).total_seconds()
        b = (s.end - t0).total_seconds()
        p = s.energy_j / (b - a)
        i = max(0, int(a // width))
        while i < n and i * width < b:
            lo, hi = max(a, i * width), min(b, (i + 1) * width)
            if hi > lo:
                energy[i] += p * (hi - lo)
            i += 1
    return [
        Step(t0 + timedelta(seconds=i * width), t0 + timedelta(seconds=(i + 1) * width), e / width)
        for i, e in enumerate(energy)
    ]


def intensity_steps(points: Sequence[object]) -> list[Step]:
    """Best intensity per interval (actual over forecast, latest issued), as steps."""
    from intensity.model import IntensityPoint, forecast_of

    pts = [p for p in points if isinstance(p, IntensityPoint)]
    if not pts:
        return []
    by_zone: dict[str, list[IntensityPoint]] = {}
    for p in pts:
        by_zone.setdefault(p.zone, []).append(p)
    zone = max(by_zone, key=lambda z: len(by_zone[z]))
    chosen: list[IntensityPoint] = []
    for p in sorted(forecast_of(zone, by_zone[zone]).points, key=lambda q: q.start):
        if chosen and p.start < chosen[-1].end:
            continue  # overlapping resolutions: keep the first
        chosen.append(p)
    return [Step(p.start, p.end, p.intensity_g_per_kwh) for p in chosen]


def job_chart(
    *,
    title: str,
    samples: Sequence[object],
    points: Sequence[object],
    chosen: tuple[datetime, datetime] | None,
    run_now: tuple[datetime, datetime] | None,
    tz: tzinfo = UTC,
) -> TimeChart:
    """A job's power over time on top of the grid intensity, its window and run-now's."""
    spans = []
    if run_now is not None:
        spans.append(Span(run_now[0], run_now[1], "run-now window", RUN_NOW_COLOUR))
    if chosen is not None:
        spans.append(Span(chosen[0], chosen[1], "chosen window", CHOSEN_COLOUR))
    steps = power_steps(samples)
    return TimeChart(
        title=title,
        left=TimeSeries("power", steps, "W", POWER_COLOUR) if steps else None,
        right=TimeSeries("grid intensity", intensity_steps(points), "gCO2/kWh", INTENSITY_COLOUR),
        spans=spans,
        tz=tz,
    )


def job_chart_from_store(
    store: object, job: object, *, sites: dict[str, object] | None = None,
    now: datetime | None = None, tz: tzinfo = UTC,
) -> TimeChart:
    """The chart of ``carbonshift show ID --png/--svg``: the last run's power over the
    stored intensity of its zone, the chosen window (the run, or the plan if it has not
    run) and the run-now window (from its earliest start, as long as the run or the
    estimate)."""
    from scheduler.domain.model import Job, Site
    from scheduler.storage.base import JobStore

    assert isinstance(store, JobStore) and isinstance(job, Job) and job.id is not None
    runs = store.runs_for_job(job.id)
    run = runs[-1] if runs else None
    samples = store.samples_for_run(run.id) if run is not None and run.id is not None else []
    if run is not None:
        end = run.finished_at or now or max([s.end for s in samples], default=run.started_at)
        chosen: tuple[datetime, datetime] | None = (run.started_at, max(end, run.started_at))
        length = max(end, run.started_at) - run.started_at
        site = (sites or {}).get(run.site)
    else:
        start = job.planned_start
        length = timedelta(seconds=job.duration_s)
        chosen = (start, start + length) if start is not None else None
        site = (sites or {}).get(job.planned_site or job.site)
    if length.total_seconds() <= 0:
        length = timedelta(seconds=job.duration_s)
    rn_start = job.earliest_start or job.submitted_at
    run_now = (rn_start, rn_start + length)
    zone = site.zone if isinstance(site, Site) else job.zone
    lo = min(t for t in (rn_start, chosen[0] if chosen else rn_start) if t is not None)
    hi = max(run_now[1], chosen[1] if chosen else run_now[1])
    pad = max(timedelta(hours=1), (hi - lo) / 10)
    points = store.get_points(zone, lo - pad, hi + pad)
    if not points and zone != job.zone:  # a site whose zone has no stored data: the home zone
        zone = job.zone
        points = store.get_points(zone, lo - pad, hi + pad)
    return job_chart(
        title=f"Job {job.id} {job.name}: power and grid intensity ({zone})",
        samples=samples, points=points, chosen=chosen, run_now=run_now, tz=tz,
    )


def forecast_chart(
    zone: str,
    points: Sequence[object],
    *,
    windows: Sequence[tuple[datetime, datetime, str]] = (),
    tz: tzinfo = UTC,
    title: str | None = None,
    now: datetime | None = None,
) -> TimeChart:
    """A zone's intensity forecast, with windows (best window, planned jobs) marked."""
    spans = [
        Span(a, b, label, PALETTE[i % len(PALETTE)]) for i, (a, b, label) in enumerate(windows)
    ]
    return TimeChart(
        title=title or f"Carbon intensity forecast, {zone}",
        left=TimeSeries("intensity", intensity_steps(points), "gCO2/kWh", POWER_COLOUR),
        spans=spans,
        tz=tz,
        now=now,
    )


# -- text ---------------------------------------------------------------------------------
_EIGHTHS = " ▏▎▍▌▋▊▉█"
_LEVELS = " ▁▂▃▄▅▆▇█"


def _num(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _hbar(value: float, vmax: float, width: int) -> str:
    if vmax <= 0 or value <= 0 or not math.isfinite(value):
        return ""
    eighths = round(value / vmax * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


def _sample(steps: Sequence[Step], lo: datetime, hi: datetime, n: int) -> list[float | None]:
    """Time-weighted mean of ``steps`` in each of ``n`` columns over ``[lo, hi)``."""
    width = (hi - lo).total_seconds() / n
    out: list[float | None] = []
    j = 0
    ordered = sorted(steps, key=lambda s: s.start)
    for i in range(n):
        a = lo + timedelta(seconds=i * width)
        b = lo + timedelta(seconds=(i + 1) * width)
        acc = cov = 0.0
        while j < len(ordered) and ordered[j].end <= a:
            j += 1
        k = j
        while k < len(ordered) and ordered[k].start < b:
            s = ordered[k]
            x = (min(b, s.end) - max(a, s.start)).total_seconds()
            if x > 0:
                acc += x * s.value
                cov += x
            k += 1
        out.append(acc / cov if cov > 0 else None)
    return out


def _fmt_tick(t: datetime, tz: tzinfo, span_s: float) -> str:
    local = t.astimezone(tz)
    if span_s <= 12 * 3600:
        return local.strftime("%H:%M")
    if span_s <= 4 * 86400:
        return local.strftime("%a %H:%M")
    return local.strftime("%d %b")


def render_text(chart: Chart, *, width: int = 72, height: int = 8) -> str:
    """The chart as plain text with Unicode blocks (no colour codes)."""
    if isinstance(chart, BarChart):
        return _text_bars(chart, width)
    return _text_time(chart, width, height)


def _text_bars(chart: BarChart, width: int) -> str:
    lines = [chart.title]
    if not chart.labels:
        return "\n".join([*lines, "(no data)"])
    vals = [v for s in chart.series for v in s.values if math.isfinite(v)]
    vmax = max([*vals, 0.0])
    lw = max(len(lab) for lab in chart.labels)
    nw = max(len(s.name) for s in chart.series)
    bar_w = max(10, width - lw - nw - 14)
    for i, lab in enumerate(chart.labels):
        for j, s in enumerate(chart.series):
            v = s.values[i]
            head = lab.ljust(lw) if j == 0 else " " * lw
            lines.append(f"{head}  {s.name.ljust(nw)} {_hbar(v, vmax, bar_w)} {_num(v)}".rstrip())
    lines.append(f"({chart.unit}; bar length proportional, longest = {_num(vmax)})")
    return "\n".join(lines)


def _text_time(chart: TimeChart, width: int, height: int) -> str:
    lines = [chart.title]
    b = chart.bounds()
    if b is None:
        return "\n".join([*lines, "(no data)"])
    lo, hi = b
    cols = max(10, width - 10)
    for series, rows in ((chart.left, height), (chart.right, max(2, height // 2))):
        if series is None or not series.steps:
            continue
        vals = _sample(series.steps, lo, hi, cols)
        known = [v for v in vals if v is not None]
        vmax = max([*known, 0.0])
        vmin = min([*known, 0.0])
        rng = (vmax - vmin) or 1.0
        lines.append(f"{series.name} ({series.unit}), {_num(vmin)} to {_num(vmax)}")
        levels = [None if v is None else (v - vmin) / rng * rows * 8 for v in vals]
        for r in range(rows - 1, -1, -1):
            row = []
            for lv in levels:
                if lv is None:
                    row.append(" ")
                    continue
                fill = lv - r * 8
                row.append("█" if fill >= 8 else (_LEVELS[max(0, int(fill))] if fill > 0 else " "))
            label = _num(vmax) if r == rows - 1 else (_num(vmin) if r == 0 else "")
            lines.append(f"{label:>8} |" + "".join(row))
    total = (hi - lo).total_seconds()
    for sp in chart.spans:
        a = int((sp.start - lo).total_seconds() / total * cols)
        z = max(a + 1, math.ceil((sp.end - lo).total_seconds() / total * cols))
        lines.append(" " * 10 + " " * a + "=" * (z - a) + f" {sp.label}")
    ticks = [lo + timedelta(seconds=total * f) for f in (0.0, 0.5, 1.0)]
    t0, t1, t2 = (_fmt_tick(t, chart.tz, total) for t in ticks)
    axis = t0 + t1.center(cols - len(t0) - len(t2)) + t2
    lines.append(" " * 10 + axis)
    return "\n".join(lines)


# -- SVG ----------------------------------------------------------------------------------
def _nice_max(v: float) -> float:
    if v <= 0 or not math.isfinite(v):
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def render_svg(chart: Chart, *, width: int = 720, height: int = 300) -> str:
    """A standalone SVG document of the chart (inline-able in HTML as is)."""
    if isinstance(chart, BarChart):
        body = _svg_bars(chart, width, height)
    else:
        body = _svg_time(chart, width, height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(chart.title, _QUOTE)}" '
        'font-family="sans-serif" font-size="11">'
        f"<title>{escape(chart.title)}</title>"
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{escape(chart.title)}</text>'
        f"{body}</svg>"
    )


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> str:
    out = []
    for name, colour in items:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{x + 14:.1f}" y="{y:.1f}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return "".join(out)


def _svg_bars(chart: BarChart, width: int, height: int) -> str:
    left, right, top, bottom = 60, 10, 40, 50
    pw, ph = width - left - right, height - top - bottom
    out = [_legend([(s.name, s.colour) for s in chart.series], left, 32)]
    if not chart.labels:
        return "".join(out) + f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">no data</text>'
    vmax = _nice_max(max([v for s in chart.series for v in s.values if math.isfinite(v)] + [0.0]))
    for k in range(5):
        v = vmax * k / 4
        y = top + ph - ph * k / 4
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(_num(v))}</text>')
    out.append(f'<text x="12" y="{top + ph / 2:.0f}" transform="rotate(-90 12 {top + ph / 2:.0f})" '
               f'text-anchor="middle">{escape(chart.unit)}</text>')
    n = len(chart.labels)
    group_w = pw / n
    bar_w = max(1.0, group_w * 0.8 / max(1, len(chart.series)))
    every = max(1, math.ceil(n / max(1, pw // 60)))
    for i, lab in enumerate(chart.labels):
        gx = left + i * group_w + group_w * 0.1
        for j, s in enumerate(chart.series):
            v = s.values[i] if math.isfinite(s.values[i]) else 0.0
            h = ph * max(0.0, v) / vmax
            x = gx + j * bar_w
            out.append(f'<rect class="bar" x="{x:.1f}" y="{top + ph - h:.1f}" width="{bar_w:.1f}" '
                       f'height="{h:.1f}" fill="{s.colour}"><title>{escape(lab)} {escape(s.name)}: '
                       f'{escape(_num(v))} {escape(chart.unit)}</title></rect>')
        if i % every == 0:
            cx = left + (i + 0.5) * group_w
            out.append(f'<text x="{cx:.1f}" y="{top + ph + 14}" text-anchor="middle">{escape(lab)}</text>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
    return "".join(out)


def _svg_path(steps: Sequence[Step], x_of: object, y_of: object) -> str:
    assert callable(x_of) and callable(y_of)
    parts: list[str] = []
    prev_end: datetime | None = None
    for s in sorted(steps, key=lambda q: q.start):
        x1, x2, y = x_of(s.start), x_of(s.end), y_of(s.value)
        cmd = "L" if prev_end is not None and s.start <= prev_end else "M"
        parts.append(f"{cmd}{x1:.1f},{y:.1f}L{x2:.1f},{y:.1f}")
        prev_end = s.end
    return "".join(parts)


def _svg_time(chart: TimeChart, width: int, height: int) -> str:
    left, right, top, bottom = 60, 60, 40, 40
    pw, ph = width - left - right, height - top - bottom
    b = chart.bounds()
    if b is None:
        return f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">no data</text>'
    lo, hi = b
    total = (hi - lo).total_seconds()

    def x_of(t: datetime) -> float:
        return left + pw * (t - lo).total_seconds() / total

    out: list[str] = []
    legend: list[tuple[str, str]] = []
    for sp in chart.spans:
        xa, xb = x_of(sp.start), x_of(sp.end)
        out.append(f'<rect class="span" x="{xa:.1f}" y="{top}" width="{max(1.0, xb - xa):.1f}" '
                   f'height="{ph}" fill="{sp.colour}" fill-opacity="0.18" stroke="{sp.colour}">'
                   f"<title>{escape(sp.label)}</title></rect>")
        legend.append((sp.label, sp.colour))
    for side, series in (("left", chart.left), ("right", chart.right)):
        if series is None or not series.steps:
            continue
        vmax = _nice_max(max(s.value for s in series.steps))

        def y_of(v: float, vmax: float = vmax) -> float:
            return top + ph - ph * max(0.0, v) / vmax

        ax_x = left if side == "left" else left + pw
        anchor = "end" if side == "left" else "start"
        dx = -4 if side == "left" else 4
        for k in range(5):
            v = vmax * k / 4
            y = y_of(v)
            if side == "left":
                out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{ax_x + dx}" y="{y + 4:.1f}" text-anchor="{anchor}" '
                       f'fill="{series.colour}">{escape(_num(v))}</text>')
        lx = 12 if side == "left" else width - 8
        out.append(f'<text x="{lx}" y="{top + ph / 2:.0f}" transform="rotate(-90 {lx} {top + ph / 2:.0f})" '
                   f'text-anchor="middle" fill="{series.colour}">{escape(series.name)} ({escape(series.unit)})</text>')
        out.append(f'<path class="series" d="{_svg_path(series.steps, x_of, y_of)}" fill="none" '
                   f'stroke="{series.colour}" stroke-width="2"/>')
        legend.insert(0, (f"{series.name} ({series.unit})", series.colour))
    if chart.now is not None and lo <= chart.now <= hi:
        xn = x_of(chart.now)
        out.append(f'<line class="now" x1="{xn:.1f}" x2="{xn:.1f}" y1="{top}" y2="{top + ph}" '
                   f'stroke="#555" stroke-dasharray="4 3"/><text x="{xn + 3:.1f}" y="{top + 10}" '
                   'fill="#555">now</text>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
    for k in range(5):
        t = lo + timedelta(seconds=total * k / 4)
        out.append(f'<text x="{x_of(t):.1f}" y="{top + ph + 14}" text-anchor="middle">'
                   f"{escape(_fmt_tick(t, chart.tz, total))}</text>")
    out.insert(0, _legend(legend, left, 32))
    return "".join(out)


# -- PNG (matplotlib) -----------------------------------------------------------------------
def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            f"PNG charts need matplotlib, which is not installed: {PLOT_EXTRA_HINT} "
            "(or use --svg, which needs nothing)"
        ) from None
    return plt


def render_png(chart: Chart, path: str | Path, *, dpi: int = 120) -> Path:
    """Draw the chart with matplotlib into a PNG file; :class:`PlotUnavailable` without it."""
    plt = _pyplot()
    fig = draw_png(chart, dpi=dpi)
    try:
        out = Path(path)
        try:
            fig.savefig(out, format="png")
        except OSError as exc:
            raise CarbonshiftError(f"cannot write {str(out)!r}: {exc.strerror}") from None
        return out
    finally:
        plt.close(fig)


def draw_png(chart: Chart, *, dpi: int = 120) -> Any:
    """The matplotlib figure of ``chart``, laid out: time labels chosen by an automatic
    locator and a concise formatter, rotated when they would still touch, and the legend
    below the axes, never over the data. The caller closes it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.6), dpi=dpi)
    if isinstance(chart, BarChart):
        n = len(chart.labels)
        k = max(1, len(chart.series))
        w = 0.8 / k
        for j, s in enumerate(chart.series):
            ax.bar([i + j * w for i in range(n)], list(s.values), width=w, label=s.name,
                   color=s.colour)
        # at most ~12 labels on the axis: every step-th bar is labelled
        step = max(1, math.ceil(n / 12))
        ticks = list(range(0, n, step))
        ax.set_xticks([i + w * (k - 1) / 2 for i in ticks])
        ax.set_xticklabels([chart.labels[i] for i in ticks])
        ax.set_ylabel(chart.unit)
        handles, labels = ax.get_legend_handles_labels()
    else:
        handles, labels = _png_time(chart, ax)
    ax.set_title(chart.title)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(handles)), fontsize=8,
                   frameon=False)
    _unclash_ticks(fig, ax)
    fig.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    _unclash_ticks(fig, ax)
    return fig


def _unclash_ticks(fig: Any, ax: Any) -> None:
    """Rotate the x labels when two of them would overlap as laid out."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    if any(a.x1 > b.x0 - 2 for a, b in itertools.pairwise(boxes)):
        for t in ax.get_xticklabels():
            t.set_rotation(35)
            t.set_horizontalalignment("right")


def _png_time(chart: TimeChart, ax: Any) -> tuple[list[Any], list[str]]:
    import matplotlib.dates as mdates

    axes = ax
    lines = []
    for sp in chart.spans:
        axes.axvspan(sp.start, sp.end, color=sp.colour, alpha=0.2, label=sp.label)
    for series, target in ((chart.left, axes), (chart.right, None)):
        if series is None or not series.steps:
            continue
        if target is None:
            target = axes.twinx()
        xs: list[datetime] = []
        ys: list[float] = []
        for s in sorted(series.steps, key=lambda q: q.start):
            xs += [s.start, s.end]
            ys += [s.value, s.value]
        (line,) = target.plot(xs, ys, color=series.colour, label=f"{series.name} ({series.unit})")
        target.set_ylabel(f"{series.name} ({series.unit})", color=series.colour)
        target.set_ylim(bottom=0)
        lines.append(line)
    if chart.now is not None:
        axes.axvline(chart.now, color="#555", linestyle="--", linewidth=1, label="now")
    locator = mdates.AutoDateLocator(tz=chart.tz, minticks=3, maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=chart.tz))
    handles, labels = axes.get_legend_handles_labels()
    extra = [ln for ln in lines if ln not in handles]
    return handles + extra, labels + [ln.get_label() for ln in extra]


def write_chart(chart: Chart, path: str | Path) -> Path:
    """Write ``chart`` to ``path``: SVG (built in) for ``.svg``, else PNG (matplotlib)."""
    p = Path(path)
    if p.suffix.lower() == ".svg":
        try:
            p.write_text(render_svg(chart), encoding="utf-8")
        except OSError as exc:
            raise CarbonshiftError(f"cannot write {str(p)!r}: {exc.strerror}") from None
        return p
    return render_png(chart, p)


__all__ = [
    "PLOT_EXTRA_HINT",
    "BarChart",
    "BarSeries",
    "PlotUnavailable",
    "Span",
    "Step",
    "TimeChart",
    "TimeSeries",
    "forecast_chart",
    "intensity_steps",
    "job_chart",
    "job_chart_from_store",
    "power_steps",
    "render_png",
    "render_svg",
    "render_text",
    "report_chart",
    "write_chart",
]
