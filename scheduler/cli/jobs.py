"""Job commands: submit, queue, show, cancel, logs, history, wait."""

from __future__ import annotations

import io
import math
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scheduler.cli.common import (
    echo_json,
    fmt_time,
    get_app,
    json_option,
    print_table,
    state,
)
from scheduler.domain.model import TERMINAL_STATES, Event, Job, JobState, Run, RunInterval
from scheduler.domain.policies import policy_from_flags
from scheduler.errors import BadInput
from scheduler.present import job_dict, planned_spans
from scheduler.text.quantities import (
    J_PER_KWH,
    fmt_energy_j,
    fmt_energy_kwh,
    fmt_less,
    fmt_saved,
    fmt_vs,
    parse_energy_j,
    parse_grams,
)
from scheduler.text.quantities import (
    fmt_mass_g as fmt_g,
)
from scheduler.text.times import (
    format_duration,
    iso,
    parse_duration_or_zero_s,
    parse_duration_s,
    parse_when,
)

if TYPE_CHECKING:
    from scheduler.app import App
    from scheduler.progress import Projection
    from scheduler.queue import SubmitRequest
    from scheduler.sweep_summary import SweepSummary


def transfer_energy_j(text: str | None, kwh: float = 0.0) -> float:
    """``--transfer-energy ENERGY`` (as in ``submit``), else the old ``--transfer-energy-kwh``
    figure of ``site add`` and ``simulate``, in joules."""
    if text is not None:
        if kwh:
            raise BadInput("give --transfer-energy or --transfer-energy-kwh, not both")
        return parse_energy_j(text, what="--transfer-energy")
    if not math.isfinite(kwh) or kwh < 0:
        raise BadInput(f"--transfer-energy-kwh {kwh:g} must be a number >= 0")
    return kwh * J_PER_KWH


def _parse_env(values: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--env {item!r} is not NAME=VALUE")
        env[key] = value
    return env


def policy_options(f):  # type: ignore[no-untyped-def]
    for opt in reversed([
        click.option("--deadline", metavar="WHEN", help="Finish by: a duration from now (12h) or an ISO time with zone."),
        click.option("--latest-start", metavar="WHEN", help="Start by: a duration from now or an ISO time."),
        click.option("--max-delay", metavar="DURATION", help="Start at most this long after submission."),
        click.option("--threshold", metavar="G_PER_KWH", help="Start as soon as the window's forecast mean is below this."),
        click.option("--budget", metavar="MASS", help="Refuse if even the best window emits more (500g, 2kg)."),
        click.option("--now", "run_now", is_flag=True, help="Run at once: no shifting."),
        click.option("--interruptible", is_flag=True, help="The job may be paused and resumed."),
    ]):
        f = opt(f)
    return f


@click.command(context_settings={"ignore_unknown_options": False})
@click.option("--name", help="A name for the job (default: the command's name).")
@click.option("--duration", required=True, metavar="DURATION", help="Estimated run time: 3h, 90m, 1h30m.")
@click.option("--policy", "policy_name", metavar="NAME", help="A named policy (see `carbonshift policy list`).")
@policy_options
@click.option("--zone", metavar="ZONE", help="Grid zone of the job's home (default: its site's zone).")
@click.option("--site", "site_opt", metavar="SITE[,SITE...]", help="Site(s) the job may run on; the first is its home.")
@click.option("--any-site", is_flag=True, help="The job may run on any site.")
@click.option("--gpus", type=int, default=0, show_default=True, help="GPUs the job needs.")
@click.option("--cpus", type=int, default=1, show_default=True, help="CPU cores the job needs.")
@click.option("--power-w", type=float, help="Estimated mean power in watts (default: from GPUs and CPUs).")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first when capacity is short.")
@click.option("--after", metavar="WHEN", help="Do not start before this time.")
@click.option("--transfer-delay", metavar="DURATION", help="Time to move the job's data away from its home site, like 30m (default: the destination site's figure).")
@click.option("--transfer-energy", metavar="ENERGY", help="Energy to move its data, like 0.5kWh or 1.8MJ (default: the destination site's figure).")
@click.option("--pause-mode", type=click.Choice(["stop", "checkpoint"]), help="How to pause it (implies --interruptible): stop = SIGSTOP/SIGCONT; checkpoint = signal, exit, launch again (default: config pause_mode, stop).")
@click.option("--pause-signal", metavar="SIGNAL", help="Checkpoint mode: the signal asking it to save its state and exit (default: config pause_signal, SIGUSR1).")
@click.option("--pause-grace", metavar="DURATION", help="Checkpoint mode: how long it has to exit after the signal (default: config pause_grace_s, 60s).")
@click.option("--cwd", type=click.Path(file_okay=False), help="Working directory (default: here).")
@click.option("--env", "env_items", multiple=True, metavar="NAME=VALUE", help="Add to the job's environment (repeatable).")
@click.option("--shell", is_flag=True, help="Run the command through /bin/sh (off by default).")
@click.option("--array", "array_spec", metavar="INDICES[%N]", help="A sweep: one trial per index (0-99, 1,3,5-9, 0-20:5), {index} in the command replaced; %N runs at most N at once.")
@click.option("--sweep", "sweep_file", metavar="FILE", type=click.Path(dir_okay=False), help="A sweep: one trial per line of FILE, its arguments appended (or put in place of {args}); --array %N caps it.")
@click.option("--sweep-budget", metavar="MASS", help="Carbon budget of the whole sweep (5kg): refused if the plan expects more; trials stop launching when it is spent.")
@click.option("--wait", "wait_flag", is_flag=True, help="Wait for the job and exit with its exit code.")
@click.option("--timeout", "timeout", metavar="DURATION", help="With --wait: give up after this long (real time), exit 1.")
@json_option
@click.argument("command", nargs=-1, required=True)
def submit(
    name: str | None, duration: str, policy_name: str | None, deadline: str | None,
    latest_start: str | None, max_delay: str | None, threshold: str | None, budget: str | None,
    run_now: bool, interruptible: bool, zone: str | None, site_opt: str | None, any_site: bool,
    gpus: int, cpus: int, power_w: float | None, priority: int, after: str | None,
    transfer_delay: str | None, transfer_energy: str | None, pause_mode: str | None,
    pause_signal: str | None, pause_grace: str | None,
    cwd: str | None, env_items: tuple[str, ...], shell: bool, array_spec: str | None,
    sweep_file: str | None, sweep_budget: str | None, wait_flag: bool, timeout: str | None,
    as_json: bool, command: tuple[str, ...],
) -> None:
    """Submit COMMAND (after `--`) with a carbon deadline policy.

    \b
    Examples:
      carbonshift submit --name bert-ft --duration 3h --deadline 12h --zone GB -- python train.py
      carbonshift submit --policy nightly --duration 2h -- python train.py
      carbonshift submit --duration 1h --threshold 150 --deadline 24h -- ./run.sh
      carbonshift submit --duration 6h --deadline 24h --pause-mode checkpoint -- python train.py
      carbonshift submit --duration 2h --site gb,de --transfer-delay 30m --transfer-energy 0.5kWh -- ./run.sh
      carbonshift submit --array 0-19%4 --gpus 1 --duration 1h --deadline 24h -- python train.py --seed {index}
      carbonshift submit --sweep grid.txt --sweep-budget 5kg --duration 1h --deadline 2d -- python train.py
    """
    from scheduler.queue import SubmitRequest

    sweep_args = _sweep_args(array_spec, sweep_file, sweep_budget, wait_flag)
    duration_s = parse_duration_s(duration)
    if timeout is not None and not wait_flag:
        raise BadInput(f"--timeout {timeout!r} is for --wait: add --wait, or drop --timeout")
    timeout_s = parse_duration_s(timeout, what="--timeout") if timeout is not None else None
    app = get_app()
    now = app.clock.now()
    overrides = policy_from_flags(
        now, deadline=deadline, latest_start=latest_start, max_delay=max_delay,
        threshold=threshold, budget=budget, run_now=run_now, interruptible=interruptible,
        relative=False,
    )
    sites: list[str] = []
    if site_opt:
        sites = [s.strip() for s in site_opt.split(",") if s.strip()]
        if not sites:
            raise BadInput(f"--site {site_opt!r} names no site")
    if any_site:
        sites = sites[:1] + [s for s in app.queue.sites() if s not in sites[:1]]
    if cwd is not None and not os.path.isdir(cwd):
        raise BadInput(f"--cwd {cwd!r} is not a directory")
    req = SubmitRequest(
        argv=list(command), duration_s=duration_s, name=name, zone=zone,
        site=sites[0] if sites else None, allowed_sites=sites, policy=policy_name,
        overrides=overrides, cwd=cwd, env=_parse_env(env_items), submitter_env=app.env,
        shell=shell, gpus=gpus, cpus=cpus, power_w=power_w, priority=priority,
        not_before=parse_when(after, now, what="--after") if after else None,
        transfer_delay_s=(parse_duration_or_zero_s(transfer_delay, what="transfer delay")
                          if transfer_delay is not None else None),
        transfer_energy_j=(parse_energy_j(transfer_energy, what="transfer energy")
                           if transfer_energy is not None else None),
        pause_mode=pause_mode, pause_signal=pause_signal,
        pause_grace_s=(float(parse_duration_or_zero_s(pause_grace, what="pause grace"))
                       if pause_grace is not None else None),
    )
    if sweep_args is not None:
        _submit_sweep(app, req, *sweep_args, now=now, as_json=as_json)
        return
    res = app.queue.submit(req, now=now)
    job, entry = res.job, res.entry
    saving = (
        100.0 * (entry.run_now_g - entry.expected_g) / entry.run_now_g
        if math.isfinite(entry.run_now_g) and entry.run_now_g > 0 and math.isfinite(entry.expected_g)
        else None
    )
    from scheduler.queue import zone_of

    # the zone the job is planned in: its planned site's (a relocated job's is not its home's)
    zone = zone_of(entry.site, app.queue.sites(), job.zone)
    if as_json:
        echo_json({
            "id": job.id, "name": job.name, "state": str(job.state),
            "planned_start": entry.start, "site": entry.site, "zone": zone, "home_zone": job.zone,
            "expected_g": entry.expected_g, "run_now_g": entry.run_now_g,
            "saving_pct": saving, "deadline": job.deadline_at, "reason": entry.reason,
            "mean_intensity_g_per_kwh": entry.mean_intensity_g_per_kwh,
            "plan_source": res.plan_source, "fallback": res.fallback,
            "intervals": [{"start": a, "end": b} for a, b in entry.intervals],
        })
    else:
        wait_s = (entry.start - now).total_seconds()
        when = "now" if wait_s <= 1 else f"in {format_duration(wait_s)}"
        click.echo(f"job {job.id} {job.name!r} planned for {fmt_time(entry.start)} ({when}) on {entry.site} ({zone})")
        if len(entry.intervals) > 1:
            click.echo(f"  in {len(entry.intervals)} intervals: "
                       + ", ".join(f"{fmt_time(a)} -> {fmt_time(b)}" for a, b in entry.intervals)
                       + f"; paused between them ({job.pause_mode})")
        if math.isfinite(entry.expected_g):
            line = f"  expected {fmt_g(entry.expected_g)} vs {fmt_g(entry.run_now_g)} if run now"
            if saving is not None:
                line += f" ({fmt_less(saving)})"
            click.echo(line + f"; forecast from {res.plan_source}")
        if res.fallback:
            click.echo("  note: planned on fallback carbon data (see the forecast source above)")
    if wait_flag:
        assert job.id is not None
        code = _wait(job.id, quiet=as_json, timeout_s=timeout_s)
        sys.exit(code)


def _sweep_args(
    array_spec: str | None, sweep_file: str | None, sweep_budget: str | None, wait_flag: bool,
) -> tuple[tuple[int, ...], list[list[str]] | None, int | None, float | None] | None:
    """``--array``/``--sweep``/``--sweep-budget`` read and checked before anything else:
    the trials' indices, their extra arguments (``--sweep``), the cap and the budget in
    grams; ``None`` for a plain job."""
    if array_spec is None and sweep_file is None:
        if sweep_budget is not None:
            raise BadInput(f"--sweep-budget {sweep_budget!r} is for a sweep: add --array or --sweep, "
                           "or use --budget for one job")
        return None
    from scheduler.sweeps import parse_array, read_sweep_file  # a sweep's only

    if wait_flag:
        raise BadInput("--wait follows one job: leave it out for a sweep and `carbonshift wait` its trials")
    spec = parse_array(array_spec) if array_spec is not None else None
    budget_g = parse_grams(sweep_budget, what="--sweep-budget") if sweep_budget is not None else None
    if sweep_file is None:
        assert spec is not None
        if not spec.indices:
            raise BadInput(f"--array {array_spec!r} gives a cap but no index: give indices like 0-9%2, "
                           "or --sweep FILE")
        return spec.indices, None, spec.limit, budget_g
    if spec is not None and spec.indices:
        raise BadInput(f"--array {array_spec!r} with --sweep: the trials are FILE's lines; give only "
                       "the cap, like --array %4")
    lines = read_sweep_file(sweep_file)
    return tuple(range(len(lines))), lines, spec.limit if spec is not None else None, budget_g


def _submit_sweep(
    app: App, req: SubmitRequest, indices: tuple[int, ...], lines: list[list[str]] | None,
    limit: int | None, budget_g: float | None, *, now: datetime, as_json: bool,
) -> None:
    """``submit --array``/``--sweep``: plan and store the trials, one line for the sweep and
    how its trials were planned (``--json``: the sweep and its trials)."""
    from scheduler.domain.model import sweep_ref
    from scheduler.sweeps import expand

    name, reqs = expand(req, indices, lines)
    res = app.queue.submit_sweep(reqs, indices, name=name, limit=limit, budget_g=budget_g, now=now)
    sweep = res.sweep
    assert sweep.id is not None
    expected = sum(e.expected_g for e in res.entries if math.isfinite(e.expected_g))
    run_now = sum(e.run_now_g for e in res.entries if math.isfinite(e.run_now_g))
    saving = 100.0 * (run_now - expected) / run_now if run_now > 0 else None
    if as_json:
        echo_json({
            "sweep": {"id": sweep.id, "ref": sweep_ref(sweep.id), "name": sweep.name, "size": sweep.size,
                      "deadline": sweep.deadline_at, "max_concurrent": sweep.max_concurrent,
                      "budget_g": sweep.budget_g, "expected_g": expected, "run_now_g": run_now,
                      "saving_pct": saving, "plan_source": res.plan_source, "fallback": res.fallback},
            "trials": [job_dict(j) for j in res.trials],
        })
        return
    starts = sorted(e.start for e in res.entries)
    cap = f", at most {sweep.max_concurrent} at once" if sweep.max_concurrent else ""
    when = (f"for {fmt_time(starts[0])}" if starts[0] == starts[-1]
            else f"from {fmt_time(starts[0])} to {fmt_time(starts[-1])}")
    by = f", all done by {fmt_time(sweep.deadline_at)}" if sweep.deadline_at else ""
    click.echo(f"sweep {sweep_ref(sweep.id)} {sweep.name!r}: {sweep.size} trials (jobs "
               f"{res.trials[0].id}-{res.trials[-1].id}) planned {when}{cap}{by}")
    groups: dict[tuple[datetime, str], list[int]] = {}
    for j, e in zip(res.trials, res.entries, strict=True):
        groups.setdefault((e.start, e.site), []).append(j.array_index or 0)
    shown = sorted(groups.items())
    parts = [f"{_indices_text(ix)} at {fmt_time(at)} on {site}" for (at, site), ix in shown[:6]]
    more = f", and {len(shown) - 6} more starts" if len(shown) > 6 else ""
    click.echo(f"  trials {'; '.join(parts)}{more}")
    line = f"  expected {fmt_g(expected)} vs {fmt_g(run_now)} if run now"
    if saving is not None:
        line += f" ({fmt_less(saving)})"
    if sweep.budget_g is not None:
        line += f"; budget {fmt_g(sweep.budget_g)}"
    click.echo(line + f"; forecast from {res.plan_source}")
    if res.fallback:
        click.echo("  note: planned on fallback carbon data (see the forecast source above)")


def _indices_text(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2,5`` (the form --array takes)."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def _start_cell(job: Job, spans: list[tuple[datetime, datetime]] | None, now: datetime) -> str:
    """The planned start; a split job says how many intervals follow, a paused one when it
    resumes (its next planned interval)."""
    if not spans or (len(spans) < 2 and job.state is not JobState.SUSPENDED):
        return fmt_time(job.planned_start)
    if job.state is JobState.SUSPENDED:
        ahead = [a for a, b in spans if b > now]
        return f"paused, resumes {fmt_time(ahead[0])}" if ahead else "paused"
    ahead = [a for a, b in spans if a > now]
    later = len(ahead) - (1 if job.state is JobState.PLANNED else 0)
    first = fmt_time(job.planned_start if job.state is not JobState.PLANNED else spans[0][0])
    return f"{first} (+{later} interval{'s' if later != 1 else ''})" if later > 0 else first


def _job_row(job: Job, spans: list[tuple[datetime, datetime]] | None = None,
             now: datetime | None = None) -> list[object]:
    return [
        job.id, job.name, str(job.state), job.owner,
        _start_cell(job, spans, now) if now is not None else fmt_time(job.planned_start),
        fmt_time(job.deadline_at), f"{job.planned_site or job.site}/{job.zone}",
        format_duration(job.duration_s), fmt_g(job.expected_g), fmt_g(job.run_now_g),
    ]


#: rows `carbonshift queue` lists unless told otherwise (--limit N, --all)
QUEUE_ROWS = 50
#: the order of `queue`: running first, then what starts next, then what is not planned yet
QUEUE_STATES = (JobState.RUNNING, JobState.SUSPENDED, JobState.PLANNED, JobState.PENDING)


def _queue_summary(
    shown: int, states: list[JobState], counts: dict[str, int], show_all: bool
) -> str | None:
    """``showing 50 of 10,000 jobs (3 running, 9,997 planned): ...``, or ``None`` when
    every job is shown."""
    total = sum(counts.values())
    if shown >= total:
        return None
    parts = ", ".join(f"{counts[str(s)]:,} {s}" for s in states if counts.get(str(s)))
    more = "" if show_all else ", `--all` finished ones too"
    return f"showing {shown:,} of {total:,} jobs ({parts}): `--limit N` shows N, `--limit 0` all{more}"


@click.command()
@click.option("--all", "show_all", is_flag=True,
              help="Every job, finished ones too, with no row limit (unless --limit is given).")
@click.option("--limit", type=click.IntRange(min=0), metavar="N",
              help=f"Show at most N rows (default {QUEUE_ROWS}; 0: all of them).")
@click.option("--trials", is_flag=True, help="List each sweep's trials as jobs too (else one row per sweep).")
@json_option
def queue(show_all: bool, limit: int | None, trials: bool, as_json: bool) -> None:
    """List waiting and running jobs with their planned start and expected emissions.

    \b
    Running jobs come first, then the jobs that start next (by planned start), then
    those not planned yet. The first 50 are shown, as a table or with --json alike;
    a last line (on stderr with --json) says how many more there are by state.
    --limit N shows N (0: all), --all every job including finished ones.
    A sweep's trials are one row per sweep (trials by state, energy, emissions, saved,
    budget used; `carbonshift show s3` for its trials), --trials lists them as jobs too.
    With --json every row has "kind": "job" or "sweep".
    """
    from scheduler.cli.sweepview import print_sweeps
    from scheduler.present import sweep_dict
    from scheduler.sweep_summary import summaries

    app = get_app()
    states = list(QUEUE_STATES) + ([s for s in JobState if s not in QUEUE_STATES] if show_all else [])
    if limit is None:
        limit = 0 if show_all else QUEUE_ROWS
    # an SQLite file is read without SQLAlchemy (most of this command's cost); anything
    # the light reader cannot vouch for goes through the full store as before
    from scheduler.storage import lite

    fetch = limit
    while True:  # collapsed trials leave rows free: read more until the limit is filled
        view = lite.queue_view(app.settings.db, states, limit=fetch or None)
        if view is None and not app.database_exists():
            view = ([], {})  # reading creates nothing
        jobs, counts = view if view is not None else app.store.queue_view(states, limit=fetch or None)
        sweep_ids = list(dict.fromkeys(j.sweep_id for j in jobs if j.sweep_id is not None))
        plain = jobs if trials else [j for j in jobs if j.sweep_id is None]
        if not fetch or trials or len(plain) + len(sweep_ids) >= limit or len(jobs) >= sum(counts.values()):
            break
        fetch *= 4
    if limit and not trials:
        plain = plain[:max(0, limit - len(sweep_ids))]
    sweeps = [s for s, _ in summaries(app, sweep_ids).values()] if sweep_ids else []
    summary = _queue_summary(len(plain) + len([j for j in jobs if j.sweep_id is not None and not trials]),
                             states, counts, show_all)
    ids = [j.id for j in plain if j.interruptible and j.id is not None]
    spans = (lite.planned_intervals(app.settings.db, ids) if view is not None else None) if ids else {}
    if spans is None:
        spans = app.store.planned_intervals(ids)
    if as_json:
        echo_json([{"kind": "job", **job_dict(j, spans.get(j.id))} for j in plain]  # type: ignore[arg-type]
                  + [sweep_dict(s) for s in sweeps])
        if summary:
            click.echo(f"carbonshift: {summary}", err=True)
        return
    if not plain and not sweeps:
        click.echo("the queue is empty" + ("" if show_all else " (finished jobs: `carbonshift history`)"))
        return
    if plain:
        print_table(
            ["id", "name", "state", "owner", "planned start", "deadline", "site/zone", "duration", "expected", "if run now"],
            [_job_row(j, spans.get(j.id) if j.id is not None else None, app.clock.now()) for j in plain],
        )
    print_sweeps(sweeps)
    if summary:
        click.echo(summary)


@click.command()
@click.argument("ref", metavar="ID")
@click.option("--png", "png", metavar="FILE", type=click.Path(dir_okay=False),
              help="Chart: power over grid intensity, chosen and run-now windows (needs carbonshift[plot]).")
@click.option("--svg", "svg", metavar="FILE", type=click.Path(dir_okay=False),
              help="The same chart as SVG (built in).")
@json_option
def show(ref: str, png: str | None, svg: str | None, as_json: bool) -> None:
    """Show one job (ID like 41) or sweep (like s3): its plan, runs, energy, emissions and story.

    A running job gets a live line: elapsed time, power, energy so far, the grid intensity
    now and the projected total. A finished job compares the projection made while it
    ran with the final figure. A sweep shows its trials by state, their energy, emissions
    and savings against run-now, its budget used, then one line per trial.
    """
    from scheduler.cli.sweepview import show_sweep
    from scheduler.history import row_for
    from scheduler.progress import live_projection, projection_error_pct, stored_projections

    kind, job_id = parse_ids((ref,))[0]
    if kind == "sweep":
        if png or svg:
            raise BadInput(f"--png/--svg draw one job, not sweep {ref}: give a trial's job id")
        show_sweep(get_app(), job_id, as_json=as_json)
        return
    app = get_app()
    job = app.job(job_id)
    runs = app.store.runs_for_job(job_id)
    events = app.store.events_for_job(job_id)
    row = row_for(job, runs[-1] if runs else None)
    spans = planned_spans(job, app.store.planned_intervals([job_id]).get(job_id) if job.interruptible else None)
    ran = {r.id: _run_intervals(app, r) for r in runs if job.interruptible and r.id is not None}
    now = app.clock.now()
    live = runs[-1] if runs and job.state in (JobState.RUNNING, JobState.SUSPENDED) and runs[-1].finished_at is None else None
    projs = stored_projections(events)
    if png or svg:
        from scheduler.charts import job_chart_from_store, write_chart
        from scheduler.cli.report import display_tz

        chart = job_chart_from_store(app.store, job, sites=dict(app.queue.sites()), now=now,
                                     tz=display_tz(state().utc))
        for path in (png, svg):
            if path:
                write_chart(chart, path)
                click.echo(f"chart written to {path}", err=True)
    if as_json:
        data = job_dict(job, spans)
        data["runs"] = [
            {
                "id": r.id, "site": r.site, "executor": r.executor, "handle": r.handle,
                "host": r.host, "started_at": r.started_at, "finished_at": r.finished_at,
                "exit_code": r.exit_code, "state": str(r.state), "reason": r.reason,
                "accounting": (
                    {
                        "energy_kwh": r.accounting.energy_kwh, "energy_j": r.accounting.energy_j,
                        "emissions_g": r.accounting.emissions_g,
                        "counterfactual_g": r.accounting.counterfactual_g,
                        "saved_g": r.accounting.saved_g, "energy_method": r.accounting.energy_method,
                        "intensity_kind": r.accounting.intensity_kind,
                        "intensity_provider": r.accounting.intensity_provider,
                        "pue": r.accounting.pue, "measured_share": r.accounting.measured_share,
                        "actual_share": r.accounting.actual_share,
                    }
                    if r.accounting else None
                ),
                "intervals": [
                    {"start": iv.start, "end": iv.end, "how": iv.how, "handle": iv.handle,
                     "energy_j": energy_j, "samples": n}
                    for iv, energy_j, n in ran.get(r.id or 0, [])
                ],
            }
            for r in runs
        ]
        data["events"] = [{"at": e.at, "kind": e.kind, "message": e.message} for e in events]
        proj = live_projection(app, job, live, now) if live is not None else None
        data["projection"] = (
            {"as_of": proj.as_of, "elapsed_s": proj.elapsed_s, "energy_j": proj.energy_j,
             "emissions_g": proj.emissions_g, "power_w": proj.power_w,
             "remaining_s": proj.remaining_s, "total_energy_j": proj.total_energy_j,
             "total_emissions_g": proj.total_emissions_g, "basis": proj.basis,
             "fraction_done": proj.fraction_done,
             "intensity_now_g_per_kwh": proj.intensity_now_g_per_kwh,
             "progress": proj.progress.describe() if proj.progress else None}
            if proj is not None else None
        )
        data["projections"] = [
            {"at": p.at, "energy_kwh": p.energy_kwh, "emissions_g": p.emissions_g,
             "fraction_done": p.fraction_done,
             "energy_error_pct": projection_error_pct(p.energy_kwh, row.energy_kwh),
             "emissions_error_pct": projection_error_pct(p.emissions_g, row.emissions_g)}
            for p in projs
        ]
        echo_json(data)
        return
    click.echo(f"job {job.id}  {job.name}  [{job.state}]  owner {job.owner}")
    click.echo(f"  command   {' '.join(job.argv)}{'  (shell)' if job.shell else ''}")
    click.echo(f"  cwd       {job.cwd}")
    click.echo(f"  policy    {job.policy_name or '-'}; earliest {fmt_time(job.earliest_start)}, latest start {fmt_time(job.latest_start)}, deadline {fmt_time(job.deadline_at)}")
    extra = []
    if job.threshold_g_per_kwh:
        extra.append(f"threshold {job.threshold_g_per_kwh:g} g/kWh")
    if job.budget_g:
        extra.append(f"budget {fmt_g(job.budget_g)}")
    if job.run_now:
        extra.append("run now")
    if job.interruptible:
        extra.append("interruptible")
    if extra:
        click.echo("            " + ", ".join(extra))
    click.echo(f"  estimate  {format_duration(job.duration_s)} at {job.power_w:.0f} W, {job.gpus} GPU, {job.cpus} CPU")
    from scheduler.queue import zone_of

    planned_on = job.planned_site or job.site
    click.echo(f"  plan      {fmt_time(job.planned_start)} on {planned_on} ({zone_of(planned_on, app.queue.sites(), job.zone)}): expected {fmt_g(job.expected_g)}, run now {fmt_g(job.run_now_g)}")
    click.echo(f"            forecast from {job.plan_source or '-'}; {job.note or ''}")
    if job.sweep_id is not None:
        click.echo(f"  sweep     {_trial_text(job)}"
                   + (f"; not launched: {job.note.removeprefix('skipped: ')}" if job.state is JobState.SKIPPED else ""))
    if job.interruptible:
        click.echo(f"  intervals {', '.join(f'{fmt_time(a)} -> {fmt_time(b)}' for a, b in spans) or '-'}"
                   f"  (paused between them: {job.pause_mode or 'stop'}"
                   + (f", {job.pause_signal}, grace {format_duration(job.pause_grace_s or 0)}"
                      if job.pause_mode == "checkpoint" else "") + ")")
    for r in runs:
        click.echo(f"  run {r.id}     {r.state} on {r.site} ({r.executor} {r.handle or ''}) {fmt_time(r.started_at)} -> {fmt_time(r.finished_at)} exit {r.exit_code if r.exit_code is not None else '-'} {r.reason}")
        for k, (iv, energy_j, n) in enumerate(ran.get(r.id or 0, []), 1):
            click.echo(f"            ran {k}: {fmt_time(iv.start)} -> {fmt_time(iv.end)} "
                       f"{iv.how or 'running'}; {fmt_energy_j(energy_j)} in {n} samples")
        if r.accounting:
            a = r.accounting
            click.echo(f"            energy {fmt_energy_kwh(a.energy_kwh)} ({a.energy_method}, {a.measured_share * 100:.0f}% measured, PUE {a.pue:g})")
            click.echo(f"            emissions {fmt_g(a.emissions_g)} ({a.intensity_kind} intensity from {a.intensity_provider}); run now {fmt_g(a.counterfactual_g)}; {fmt_saved(a.saved_g, row.saved_pct, verb='saved ')}")
    if live is not None:
        line, _ = _live_line(app, job, live, now)
        click.echo(f"  live      {line.split(': ', 1)[-1]}")
    if projs and row.energy_kwh is not None:
        p = projs[-1]
        vs = fmt_vs(p.energy_kwh, row.energy_kwh)
        done = f" at {p.fraction_done * 100:.0f}% done" if p.fraction_done is not None else ""
        g = f", {fmt_g(p.emissions_g)}" if p.emissions_g is not None else ""
        click.echo(f"  projected {fmt_energy_kwh(p.energy_kwh)}{g}{done} ({fmt_time(p.at)}); final "
                   f"{fmt_energy_kwh(row.energy_kwh)}, {fmt_g(row.emissions_g)}"
                   + (f": the projection was {vs}" if vs != "-" else ""))
    if events:
        click.echo("  events")
        for e in events:
            click.echo(f"    {fmt_time(e.at)}  {e.kind:<10} {e.message}")


def _run_intervals(app: App, run: Run) -> list[tuple[RunInterval, float, int]]:
    """A run's intervals with the energy and the number of samples measured in each."""
    assert run.id is not None
    intervals = app.store.run_intervals(run.id)
    if not intervals:
        return []
    samples = app.store.samples_for_run(run.id)
    out = []
    for iv in intervals:
        inside = [s for s in samples if s.start >= iv.start and (iv.end is None or s.end <= iv.end)]
        out.append((iv, sum(s.energy_j for s in inside), len(inside)))
    return out


def parse_ids(texts: tuple[str, ...]) -> list[tuple[str, int]]:
    """Command-line references: ``3`` is job 3, ``s3`` sweep 3; ``("job"|"sweep", id)`` each,
    repeats dropped."""
    from scheduler.sweeps import parse_ref

    return list(dict.fromkeys(parse_ref(t) for t in texts))


@click.command()
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True)
@click.option("--grace", default="10s", show_default=True, metavar="DURATION", help="Time between SIGTERM and SIGKILL.")
@json_option
def cancel(job_ids: tuple[str, ...], grace: str, as_json: bool) -> None:
    """Cancel jobs, or whole sweeps (s3); a running job's process group gets SIGTERM,
    then SIGKILL.

    A sweep's waiting trials are skipped and its running ones cancelled. Every ID is
    checked first: if one is unknown or already finished, nothing is cancelled. --json:
    one object per job or sweep (a list when several IDs are given).
    """
    from scheduler.domain.model import sweep_ref

    grace_s = parse_duration_s(grace, what="grace")
    app = get_app()
    refs = parse_ids(job_ids)
    several = " (no job was cancelled)" if len(refs) > 1 else ""
    for kind, ref_id in refs:  # the queue's one cancel rule, for every id before any write
        app.queue.check_cancel(kind, ref_id, suffix=several)
    done: list[dict[str, object]] = []
    for kind, ref_id in refs:
        if kind == "sweep":
            sweep, skipped, running = app.queue.cancel_sweep(ref_id)
            stopped = [i for i in running if app.queue.stop_here(i, grace_s)]
            done.append({"sweep": sweep_ref(ref_id), "id": ref_id, "stop_reason": sweep.stop_reason,
                         "skipped": skipped, "cancelled": running, "stopped": stopped})
            if not as_json:
                click.echo(f"sweep {sweep_ref(ref_id)} cancelled: {len(skipped)} waiting trial"
                           f"{'s' if len(skipped) != 1 else ''} skipped, {len(running)} running "
                           f"cancelled" + (f" ({len(stopped)} stopped here, the rest by their agents)"
                                           if len(stopped) < len(running) else ""))
            continue
        job, was_running = app.queue.cancel(ref_id)
        stopped_one = was_running and app.queue.stop_here(ref_id, grace_s)
        done.append({"id": ref_id, "state": str(job.state), "was_running": was_running, "stopped": stopped_one})
        if not as_json:
            msg = f"job {ref_id} cancelled"
            if was_running:
                msg += " and its processes stopped" if stopped_one else " (its agent will stop it)"
            click.echo(msg)
    if as_json:
        echo_json(done[0] if len(job_ids) == 1 else done)


@click.command()
@click.argument("job_id", type=int)
@click.option("--run", "run_id", type=int, help="Which run (default: the last).")
@click.option("--stream", type=click.Choice(["both", "out", "err"]), default="both", show_default=True)
@click.option("--tail", type=click.IntRange(min=0), metavar="N", help="Only the last N lines of each stream.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the job writes.")
def logs(job_id: int, run_id: int | None, stream: str, tail: int | None, follow: bool) -> None:
    """Print a job's stdout and stderr (files under the data directory)."""
    app = get_app()
    app.job(job_id)
    runs = app.store.runs_for_job(job_id)
    if not runs:
        raise BadInput(f"job {job_id} has not run yet: no logs (see `carbonshift show {job_id}`)")
    run = next((r for r in runs if r.id == run_id), None) if run_id else runs[-1]
    if run is None:
        raise BadInput(f"job {job_id} has no run {run_id}: runs are {', '.join(str(r.id) for r in runs)}")
    paths = []
    if stream in ("both", "out") and run.out_path:
        paths.append(("stdout", run.out_path))
    if stream in ("both", "err") and run.err_path:
        paths.append(("stderr", run.err_path))
    for label, path in paths:
        p = Path(path)
        if not p.exists():
            click.echo(f"({label}: {path} does not exist)", err=True)
            continue
        text = p.read_text(errors="replace")
        lines = text.splitlines()
        if tail is not None:
            lines = lines[-tail:] if tail else []
        if len(paths) > 1:
            click.echo(f"==> {label} ({path}) <==")
        for line in lines:
            click.echo(line)
    if follow and run.out_path:
        p = Path(run.out_path)
        pos = p.stat().st_size if p.exists() else 0
        while True:
            job = app.store.get_job(job_id)
            if p.exists() and p.stat().st_size > pos:
                with p.open("rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                    pos += len(chunk)
                click.echo(chunk.decode(errors="replace"), nl=False)
            if job.state in TERMINAL_STATES:
                break
            time.sleep(0.5)


@click.command()
@click.option("--since", metavar="WHEN", help="Submitted at or after: an ISO time, a duration ago (7d), or 'all' (the default).")
@click.option("--until", metavar="WHEN", help="Submitted before: an ISO time or a duration ago.")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in JobState]), help="Only jobs in this state (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="The newest N jobs (still listed oldest first).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "codecarbon"]), default="table",
              show_default=True, help="codecarbon: CodeCarbon's emissions.csv columns (kg, kWh).")
@click.option("--trials", is_flag=True, help="List each sweep's trials as jobs too (else one row per sweep).")
@json_option
def history(since: str | None, until: str | None, states: tuple[str, ...], limit: int | None, fmt: str,
            trials: bool, as_json: bool) -> None:
    """Jobs with their energy, emissions, run-now counterfactual and savings.

    --json is --format json. A sweep is one row (its trials by state, their energy,
    emissions and savings, its budget used) when any of its trials is selected;
    --trials lists the trials as jobs too. With --json every row has "kind": "job" or
    "sweep"; csv and codecarbon list every job, trials included (with their sweep_id).
    """
    from scheduler.cli.report import parse_range
    from scheduler.history import HISTORY_FIELDS, read_history_rows

    if as_json and fmt not in ("table", "json"):
        raise BadInput(f"--json and --format {fmt} disagree: give one of them")
    fmt = "json" if as_json else fmt
    app = get_app()
    t_since, t_until = parse_range(since, until, app.clock.now())
    rows = read_history_rows(
        app.lite_url,
        lambda: app.store,
        states=[JobState(s) for s in states] or None,
        since=t_since,
        until=t_until,
        limit=limit,
    )
    sweep_ids = list(dict.fromkeys(r.sweep_id for r in rows if r.sweep_id is not None))
    shown = rows if trials else [r for r in rows if r.sweep_id is None]
    sweeps: list[SweepSummary] = []
    if sweep_ids and fmt in ("json", "table"):
        from scheduler.sweep_summary import summaries

        sweeps = [s for s, _ in summaries(app, sweep_ids).values()]
    if fmt == "json":
        from scheduler.present import sweep_dict

        echo_json([{"kind": "job", **r.as_dict()} for r in shown] + [sweep_dict(s) for s in sweeps])
        return
    if fmt == "codecarbon":
        from scheduler.codecarbon import to_csv

        click.echo(to_csv(rows, app.store), nl=False)
        return
    if fmt == "csv":
        import csv

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(HISTORY_FIELDS)
        for r in rows:
            d = r.as_dict()
            cells: list[object] = []
            for k in HISTORY_FIELDS:
                v = d[k]
                cells.append("" if v is None else (iso(v) if isinstance(v, datetime) else v))
            w.writerow(cells)
        click.echo(buf.getvalue(), nl=False)
        return
    if not rows:
        click.echo("no jobs yet")
        return
    if shown:
        print_table(
            ["id", "name", "state", "started", "energy", "method", "emissions", "intensity", "run now", "saved"],
            [
                [
                    r.id, r.name, r.state, fmt_time(r.started_at),
                    fmt_energy_kwh(r.energy_kwh),
                    r.energy_method or "-", fmt_g(r.emissions_g),
                    f"{r.intensity_kind}/{r.intensity_provider}" if r.intensity_kind else "-",
                    fmt_g(r.counterfactual_g),
                    fmt_saved(r.saved_g, r.saved_pct),
                ]
                for r in shown
            ],
        )
    if sweeps:
        from scheduler.cli.sweepview import print_sweeps

        print_sweeps(sweeps)
    done = [r for r in rows if r.counterfactual_g]
    if done:
        tot_e = sum(r.emissions_g or 0.0 for r in done)
        tot_c = sum(r.counterfactual_g or 0.0 for r in done)
        click.echo(
            f"total: {fmt_g(tot_e)} emitted vs {fmt_g(tot_c)} had every job run at submission: "
            f"{fmt_saved(tot_c - tot_e, 100 * (tot_c - tot_e) / tot_c, verb='saved ')}"
        )


def _final_line(job: Job, run: Run | None, events: list[Event]) -> str:
    """The last line of ``wait``: state, exit code, energy, emissions, and how good the
    projection made while it ran turned out to be."""
    from scheduler.progress import stored_projections

    line = f"job {job.id} {job.state}"
    if job.state is JobState.SKIPPED:
        why = job.note.removeprefix("skipped: ") or "its sweep stopped"
        return f"{line} ({_trial_text(job)}): not launched, {why}"
    if run is not None and run.exit_code is not None:
        line += f" (exit {run.exit_code})"
    a = run.accounting if run is not None else None
    if a is not None:
        line += (f": {fmt_energy_kwh(a.energy_kwh)}, {fmt_g(a.emissions_g)} "
                 f"({a.intensity_kind} intensity), {fmt_saved(a.saved_g, None, verb='saved ')} vs run-now")
        projs = stored_projections(events)
        if projs:
            p = projs[-1]
            vs = fmt_vs(p.energy_kwh, a.energy_kwh)
            done = f" at {p.fraction_done * 100:.0f}% done" if p.fraction_done is not None else ""
            line += f"; projected {fmt_energy_kwh(p.energy_kwh)}{done}"
            if vs != "-":
                line += f" ({vs})"
    return line


def _trial_text(job: Job) -> str:
    """``trial 4 of sweep s1`` for a sweep's trial."""
    from scheduler.domain.model import sweep_ref

    return f"trial {job.array_index} of sweep {sweep_ref(job.sweep_id or 0)}"


def _live_line(app: App, job: Job, run: Run, now: datetime) -> tuple[str, Projection | None]:
    from scheduler.progress import live_projection

    elapsed = (now - run.started_at).total_seconds()
    head = f"job {job.id} {job.state} {format_duration(elapsed)}"
    proj = live_projection(app, job, run, now)
    if proj is None:
        return head, None
    parts = [f"{proj.power_w:.0f} W", f"{fmt_energy_j(proj.energy_j)} so far"]
    if proj.intensity_now_g_per_kwh is not None:
        parts.append(f"{proj.intensity_now_g_per_kwh:.0f} g/kWh now")
    return f"{head}: {', '.join(parts)}; {proj.describe()}", proj


def wait_exit_code(job: Job, run: Run | None) -> int:
    """What `wait` exits with for a finished job: 0 if it succeeded, 1 if it was
    cancelled or lost (whatever signal ended its process), else its own exit code (a
    death by signal N as 128 + N, as a shell says it), 1 when it has none."""
    if job.state is JobState.SUCCEEDED:
        return 0
    if job.state in (JobState.CANCELLED, JobState.LOST) or run is None or not run.exit_code:
        return 1
    code = int(run.exit_code)
    return 128 - code if code < 0 else (code if code < 256 else 1)


def _wait(job_id: int, *, quiet: bool = False, poll_s: float = 1.0, timeout_s: float | None = None) -> int:
    """Follow a job with a live line on stderr until it ends; return its exit code.

    Waiting: the planned start and a countdown. Running: elapsed time, power, energy so
    far, the grid intensity now and the projected total (from the job's reported progress,
    else its estimated duration). The projection is recorded as a ``projection`` event
    when the progress moves (at most every 10 s) and every 5 minutes, so history can
    compare it with the final figure. A line says so when no daemon serves the job's site
    (still waiting); after ``timeout_s`` real seconds it gives up and returns 1.
    """
    from scheduler.presence import DaemonWatch
    from scheduler.progress import ProjectionRecorder

    app = get_app()
    last = ""
    tty = sys.stderr.isatty()
    recorder = ProjectionRecorder()
    watch = DaemonWatch(app.store)
    give_up = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        job = app.store.get_job(job_id)
        now = app.clock.now()
        runs = app.store.runs_for_job(job_id)
        run = runs[-1] if runs else None
        if job.state in TERMINAL_STATES:
            # the daemon writes the accounting just after the final state: give it a moment
            deadline = time.monotonic() + 3.0
            while run is not None and run.accounting is None and run.finished_at is not None \
                    and job.state is not JobState.CANCELLED and time.monotonic() < deadline:
                time.sleep(0.2)
                run = app.store.runs_for_job(job_id)[-1]
            if not quiet:
                text = _final_line(job, run, app.store.events_for_job(job_id))
                click.echo(("\r" + text.ljust(len(last))) if tty else text, err=True)
            return wait_exit_code(job, run)
        if job.state is JobState.PLANNED and job.planned_start:
            left = max(0.0, (job.planned_start - now).total_seconds())
            from scheduler.queue import zone_of

            planned_on = job.planned_site or job.site
            line = (f"job {job_id} planned for {fmt_time(job.planned_start)} on {planned_on} "
                    f"({zone_of(planned_on, app.queue.sites(), job.zone)}): starts in {format_duration(left)}")
        elif run is not None and job.state in (JobState.RUNNING, JobState.SUSPENDED):
            line, proj = _live_line(app, job, run, now)
            if proj is not None:
                recorder.offer(app, job_id, proj, now)
        else:
            line = f"job {job_id} {job.state}"
        notice = watch.check(job, run)
        if notice is not None:  # a warning, shown even with --quiet
            click.echo(("\r" + notice.ljust(len(last))) if tty else notice, err=True)
            last = "" if tty else last  # the live line again below the notice
        if give_up is not None and time.monotonic() >= give_up:
            assert timeout_s is not None
            if tty and last:
                click.echo("", err=True)  # end the live line
            click.echo(f"carbonshift: gave up waiting for job {job_id} after {format_duration(timeout_s)} "
                       f"(--timeout); it is still {job.state}", err=True)
            return 1
        if not quiet and line != last:
            click.echo(("\r" + line.ljust(len(last))) if tty else line, err=True, nl=not tty)
            last = line
        time.sleep(poll_s)


@click.command()
@click.argument("job_id", type=int)
@click.option("--interval", default=1.0, show_default=True, metavar="SECONDS", help="Seconds between updates.")
@click.option("--quiet", "-q", is_flag=True, help="No live line; only the exit code.")
@click.option("--timeout", "timeout", metavar="DURATION", help="Give up after this long (real time), exit 1.")
@json_option
def wait(job_id: int, interval: float, quiet: bool, timeout: str | None, as_json: bool) -> None:
    """Wait for a job with a live line; exit with the job's exit code.

    \b
    The line shows the planned start and a countdown, then elapsed time, power, energy so
    far, the grid intensity now and the projected total energy and emissions. A job can
    report progress (e.g. epochs) through the file named by $CARBONSHIFT_PROGRESS_FILE,
    as JSON {"done": 3, "total": 10, "unit": "epoch"}; the projection then uses it.
    With --json, no live line: the job's history row (and its last projection) at the end.
    Exit code: the job's own (0 when it succeeded; killed by signal N: 128 + N), 1 if it
    was cancelled or lost, or when --timeout ran out first. A line on stderr says so when
    no daemon (`carbonshift run`) serves the job's site.
    """
    if not (interval > 0 and math.isfinite(interval)):
        raise BadInput(f"--interval {interval!r} must be a positive number of seconds")
    timeout_s = parse_duration_s(timeout, what="--timeout") if timeout is not None else None
    app = get_app()
    app.job(job_id)
    code = _wait(job_id, quiet=quiet or as_json, poll_s=interval, timeout_s=timeout_s)
    if as_json:
        from scheduler.history import row_for
        from scheduler.progress import projection_error_pct, stored_projections

        runs = app.store.runs_for_job(job_id)
        row = row_for(app.store.get_job(job_id), runs[-1] if runs else None)
        projs = stored_projections(app.store.events_for_job(job_id))
        echo_json({
            **row.as_dict(), "wait_exit_code": code,
            "projection": None if not projs else {
                "at": projs[-1].at, "energy_kwh": projs[-1].energy_kwh,
                "emissions_g": projs[-1].emissions_g, "fraction_done": projs[-1].fraction_done,
                "energy_error_pct": projection_error_pct(projs[-1].energy_kwh, row.energy_kwh),
            },
        })
    sys.exit(code)


__all__ = ["cancel", "history", "logs", "queue", "show", "submit", "wait"]
_ = state
