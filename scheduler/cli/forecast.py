"""``carbonshift forecast`` and ``carbonshift zones``: look at the carbon signal.

``forecast ZONE`` shows a zone's intensity forecast through the fallback chain (each point
says which link produced it), the best window for a job of ``--duration`` that must
finish by ``--deadline``, its mean intensity, the run-now mean and the saving;
``--accuracy`` instead scores the forecast vintages stored in the database against the
stored actuals, by lead time. ``zones`` lists the zones each provider serves.

Every input is checked before anything touches the database, so bad input (an unknown
zone or provider, a provider that does not serve the zone, a job longer than the time to
its deadline, an unparseable ``--at``) exits 2 with one line and writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from scheduler.cli.common import (
    check_output_file,
    echo_json,
    fmt_time,
    get_app,
    json_option,
    print_table,
    state,
)
from scheduler.text.times import format_duration, parse_duration_s, parse_time, parse_when

if TYPE_CHECKING:
    from intensity.base import IntensityProvider
    from intensity.chain import IntensityService
    from intensity.model import IntensityPoint
    from scheduler.app import App
    from scheduler.config import Settings

#: How far back ``--accuracy`` looks for stored vintages.
ACCURACY_WINDOW_S = 90 * 86400


def _provider_options(settings: Settings, name: str) -> dict[str, Any]:
    """The provider's config table, as the intensity setup passes it."""
    options: dict[str, Any] = dict(settings.providers.get(name, {}))
    if name == "replay" and not options.get("trace") and settings.intensity.get("trace"):
        options["trace"] = settings.intensity["trace"]
    options.pop("timeout_s", None)
    return options


def _make_provider(app: App, name: str) -> IntensityProvider:
    from intensity.registry import check_name, make_provider

    check_name(name)  # UnknownProvider (exit 2) before anything is built
    return make_provider(name, _provider_options(app.settings, name), app.env)


def _configured_providers(app: App) -> list[IntensityProvider]:
    """The configured chain's providers, built without opening the database."""
    from scheduler.intensity_setup import build_intensity_service

    return build_intensity_service(app.settings, app.env, None).providers


def _check_zone(app: App, zone: str, provider_name: str | None) -> IntensityProvider | None:
    """Raise (exit 2) unless ``zone`` is known (to the named provider, if one is named)."""
    from intensity.chain import IntensityService
    from intensity.errors import UnknownZone

    if provider_name is None:
        IntensityService(_configured_providers(app)).check_zone(zone)
        return None
    provider = _make_provider(app, provider_name)
    if not provider.serves(zone):
        import difflib

        zones = list(provider.zones())
        close = difflib.get_close_matches(zone, zones, n=3)
        hint = (f"did you mean {', '.join(close)}?" if close
                else f"see `carbonshift zones --provider {provider_name}`")
        raise UnknownZone(f"provider {provider_name!r} does not serve zone {zone!r}: {hint}")
    return provider


def _service(app: App, provider: IntensityProvider | None) -> IntensityService:
    if provider is None:
        return app.intensity
    from intensity.chain import IntensityService
    from scheduler.intensity_setup import local_forecaster_for

    conf = app.settings.intensity
    return IntensityService(
        [provider], cache=app.intensity_cache,
        # the same local forecaster (and planning curve) submit and the daemon plan on
        local=local_forecaster_for(app.settings),
        cache_s=float(conf.get("cache_minutes", 30.0)) * 60.0,
        horizon_s=int(float(conf.get("horizon_h", 48.0)) * 3600),
    )


@click.command()
@click.argument("zone")
@click.option("--provider", "provider_name", metavar="NAME",
              help="Use only this provider (then the fallbacks); see `carbonshift zones`.")
@click.option("--duration", default="3h", show_default=True, metavar="DURATION",
              help="Length of the job to place (3h, 90m, 1h30m).")
@click.option("--deadline", default="24h", show_default=True, metavar="WHEN",
              help="The job must finish by then: a duration from now (24h) or an ISO time.")
@click.option("--at", "at_text", metavar="TIME",
              help="Pretend it is this ISO time (replay, what-if), e.g. 2023-03-10T12:00Z.")
@json_option
@click.option("--plot", is_flag=True, help="Draw the curve with the best window in the terminal.")
@click.option("--png", "png_path", metavar="FILE", help="Write the chart as PNG (pip install carbonshift[plot]).")
@click.option("--svg", "svg_path", metavar="FILE", help="Write the chart as SVG.")
@click.option("--accuracy", is_flag=True,
              help="Score the stored forecast vintages against stored actuals, by lead time.")
def forecast(
    zone: str, provider_name: str | None, duration: str, deadline: str, at_text: str | None,
    as_json: bool, plot: bool, accuracy: bool, png_path: str | None = None,
    svg_path: str | None = None,
) -> None:
    """Show ZONE's carbon-intensity forecast and the best window for a job.

    \b
    The window is the lowest-mean interval of --duration inside [now, deadline); the
    saving compares it with starting now. Each point names the link of the fallback chain
    that produced it: provider, cache, local (forecast from the zone's own history),
    static (annual average) or flat.
    """
    for path, what in ((png_path, "--png"), (svg_path, "--svg")):
        if path:
            check_output_file(path, what)
    app = get_app()
    now = parse_time(at_text, what="--at") if at_text is not None else app.clock.now()
    now = now.astimezone(UTC)
    duration_s = parse_duration_s(duration, what="--duration")
    deadline_at = parse_when(deadline, now, what="--deadline")
    provider = _check_zone(app, zone, provider_name)
    if accuracy:
        _accuracy(app, zone, now, provider_name, as_json)
        return
    from scheduler.windows import check_fits, choose_window

    check_fits(now, duration_s, deadline_at, deadline_text=deadline, duration_text=duration,
               deadline_what="--deadline", duration_what="--duration")  # before any I/O
    choice = choose_window(_service(app, provider), zone, now, duration_s, deadline_at,
                           deadline_text=deadline, duration_text=duration,
                           deadline_what="--deadline", duration_what="--duration")
    points, answer, best = list(choice.points), choice.answer, choice
    now_mean, saving = choice.now_mean_g_per_kwh, choice.saving_pct
    for path in (png_path, svg_path):
        if path:
            from scheduler.charts import forecast_chart, write_chart
            from scheduler.cli.report import display_tz

            chart = forecast_chart(
                zone, points,
                windows=[(best.start, best.end, "best window"),
                         (now, now + timedelta(seconds=duration_s), "run now")],
                tz=display_tz(state().utc),
            )
            written = write_chart(chart, path)
            click.echo(f"chart written to {written}", err=as_json)
    if as_json:
        echo_json({
            **choice.to_dict(),
            "points": [_point_json(p) for p in points],
        })
        return
    click.echo(f"{zone}: forecast from {answer.describe()}")
    print_table(
        ["", "start", "mean g/kWh"],
        [
            ["run now", fmt_time(now), f"{now_mean:.1f}"],
            ["best window", fmt_time(best.start), f"{best.mean_g_per_kwh:.1f}"],
        ],
    )
    click.echo(
        f"A {format_duration(duration_s)} job finishing by {fmt_time(deadline_at)} saves "
        f"{saving:.1f}% by starting at {fmt_time(best.start)}."
    )
    if plot:
        from scheduler.charts import forecast_chart, render_text
        from scheduler.cli.report import display_tz

        chart = forecast_chart(
            zone, points,
            windows=[(best.start, best.end, "best window"),
                     (now, now + timedelta(seconds=duration_s), "run now")],
            tz=display_tz(state().utc),
        )
        click.echo(render_text(chart))
    else:
        _points_table(points)


def _point_json(p: IntensityPoint) -> dict[str, Any]:
    return {
        "start": p.start, "end": p.end, "intensity_g_per_kwh": round(p.intensity_g_per_kwh, 3),
        "kind": str(p.kind), "source": str(p.source), "provider": p.provider,
        "signal": str(p.signal), "issued_at": p.issued_at, "estimated": p.estimated,
    }


def _points_table(points: Sequence[IntensityPoint]) -> None:
    print_table(
        ["start", "g/kWh", "source", "provider"],
        [[fmt_time(p.start), f"{p.intensity_g_per_kwh:.1f}", str(p.source), p.provider]
         for p in points],
    )


def _num(x: float, digits: int = 3) -> float | None:
    return round(x, digits) if math.isfinite(x) else None


def _accuracy(app: App, zone: str, now: datetime, provider_name: str | None, as_json: bool) -> None:
    """Forecast error by lead from the stored vintages and actuals of ``zone``: MAE, MAPE,
    the within-day shape error, and the planning regret of a 1 kW x 3 h job due in 24 h."""
    from intensity.accuracy import (
        REGRET_DURATION_S,
        REGRET_POWER_W,
        REGRET_WINDOW_S,
        errors_by_lead,
        regret_of_vintages,
    )
    from intensity.model import Kind, Source

    since = now - timedelta(seconds=ACCURACY_WINDOW_S)
    stored = app.store.get_points(zone, since, now)
    actuals = [p for p in stored if p.kind is Kind.ACTUAL]
    by_provider: dict[str, list[IntensityPoint]] = {}
    for p in stored:
        if (p.kind is Kind.FORECAST and p.issued_at is not None
                and p.source in (Source.PROVIDER, Source.CACHE, Source.LOCAL)
                and (provider_name is None or p.provider == provider_name)):
            by_provider.setdefault(p.provider, []).append(p)
    result = {name: errors_by_lead(pts, actuals) for name, pts in sorted(by_provider.items())}
    result = {name: errs for name, errs in result.items() if errs}
    regrets = {name: regret_of_vintages(by_provider[name], actuals) for name in result}
    job = (f"{REGRET_POWER_W / 1000:g} kW x {format_duration(REGRET_DURATION_S)} due "
           f"{format_duration(REGRET_WINDOW_S)} after each vintage")
    if as_json:
        echo_json({
            "zone": zone, "since": since, "until": now,
            "providers": {
                name: [{"lead_h": e.lead_h, "n": e.n, "mae_g_per_kwh": round(e.mae_g_per_kwh, 3),
                        "mape_pct": _num(e.mape_pct),
                        "bias_g_per_kwh": round(e.bias_g_per_kwh, 3),
                        "shape_mae_g_per_kwh": _num(e.shape_mae_g_per_kwh),
                        "shape_pct": _num(e.shape_pct)} for e in errs]
                for name, errs in result.items()
            },
            "planning_regret": {
                "job": {"power_w": REGRET_POWER_W, "duration_s": REGRET_DURATION_S,
                        "window_s": REGRET_WINDOW_S},
                "providers": {
                    name: {"n": r.n, "regret_g": round(r.regret_g, 3), "saved_g": round(r.saved_g, 3),
                           "oracle_saved_g": round(r.oracle_saved_g, 3),
                           "share_of_oracle": _num(r.share_of_oracle, 4)}
                    for name, r in regrets.items()
                },
            },
        })
        return
    if not result:
        click.echo(
            f"{zone}: no stored forecast has a stored actual to compare with between "
            f"{fmt_time(since)} and {fmt_time(now)} (forecasts are stored as they are "
            "fetched; actuals when jobs are accounted)"
        )
        return

    def cell(x: float, fmt: str = ".1f") -> str:
        return format(x, fmt) if math.isfinite(x) else "-"

    rows = [
        [name, f"{e.lead_h:g}", e.n, f"{e.mae_g_per_kwh:.1f}", cell(e.mape_pct),
         f"{e.bias_g_per_kwh:+.1f}", cell(e.shape_mae_g_per_kwh), cell(e.shape_pct)]
        for name, errs in result.items() for e in errs
    ]
    print_table(["provider", "lead h", "n", "MAE g/kWh", "MAPE %", "bias g/kWh", "shape g/kWh",
                 "shape %"], rows,
                title=f"{zone}: forecast error by lead, {fmt_time(since)} to {fmt_time(now)}")
    print_table(
        ["provider", "vintages placed", "regret g/job", "saved g", "hindsight saved g", "of hindsight"],
        [[name, r.n, f"{r.regret_g:.1f}", f"{r.saved_g:.0f}", f"{r.oracle_saved_g:.0f}",
          "-" if not math.isfinite(r.share_of_oracle) else f"{100 * r.share_of_oracle:.0f}%"]
         for name, r in regrets.items()],
        title=f"planning regret: {job}, started where the vintage says vs the best start in hindsight",
    )
    click.echo("shape: the error left after removing each forecast day's mean from forecast and "
               "actuals (which hour wins depends on it, not on the level)")


@click.command()
@click.option("--provider", "provider_name", metavar="NAME",
              help="List the zones of this provider (any known one, configured or not).")
@json_option
def zones(provider_name: str | None, as_json: bool) -> None:
    """List known zones and which providers serve them.

    Without --provider: the zones of the configured providers; every country code also
    has a static annual average (`--provider static` lists them).
    """
    app = get_app()
    providers = ([_make_provider(app, provider_name)] if provider_name is not None
                 else _configured_providers(app))
    served: dict[str, list[str]] = {}
    for p in providers:
        for z in p.zones():
            served.setdefault(z, []).append(p.name)
    if provider_name is None:
        from intensity.providers.static import lookup

        for z, names in served.items():
            if lookup(z) is not None:
                names.append("static")
    rows = _zone_rows(served)
    if as_json:
        echo_json([{"zone": z, "providers": names} for z, names in rows])
        return
    if not rows:
        click.echo("no provider serves any zone: configure [intensity] providers, or see "
                   "`carbonshift zones --provider static`")
        return
    print_table(["zone", "providers"], [[z, ", ".join(names)] for z, names in rows])
    if provider_name is None:
        click.echo("Every country code also has a static annual average "
                   "(`carbonshift zones --provider static`).")


def _zone_rows(served: Mapping[str, list[str]]) -> list[tuple[str, list[str]]]:
    return [(z, served[z]) for z in sorted(served)]


@click.command("wait-window")
@click.option("--duration", required=True, metavar="DURATION",
              help="Length of the work that follows (2h, 90m, 1h30m).")
@click.option("--deadline", default="24h", show_default=True, metavar="WHEN",
              help="The work must finish by then: a duration from now (12h) or an ISO time.")
@click.option("--zone", metavar="ZONE", help="Grid zone (default: the config's default_zone).")
@json_option
def wait_window(duration: str, deadline: str, zone: str | None, as_json: bool) -> None:
    """Wait until the cleanest window for DURATION of work that ends by --deadline.

    For shell scripts and schedulers that cannot hand their command to carbonshift:
    `carbonshift wait-window --duration 2h --deadline 12h && python train.py`. It says on
    stderr when it will return, sleeps until then (never past the window's start) and exits
    0; with --json it prints the window on stdout when it returns. The window is the one
    `carbonshift forecast ZONE` names for the same duration and deadline.
    """
    from carbonshift._window import best_window
    from scheduler.api import Client
    from scheduler.clock import sleep_until

    app = get_app()
    client = Client.from_app(app)
    choice = best_window(duration=duration, deadline=deadline, zone=zone, client=client)
    wait_s = (choice.start - choice.now).total_seconds()
    click.echo(
        f"carbonshift: {choice.zone}: the cleanest {format_duration(choice.duration_s)} by "
        f"{fmt_time(choice.deadline_at)} starts at {fmt_time(choice.start)} "
        f"(in {format_duration(wait_s)}): {choice.mean_g_per_kwh:.0f} gCO2/kWh vs "
        f"{choice.now_mean_g_per_kwh:.0f} now, {choice.saving_pct:.1f}% less; forecast from "
        f"{choice.answer.describe()}",
        err=True,
    )
    sleep_until(app.clock, choice.start)
    if as_json:
        echo_json(choice.to_dict())
