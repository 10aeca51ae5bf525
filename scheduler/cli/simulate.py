"""``carbonshift simulate``: what would carbon-aware scheduling save me?

Replays real intensity history through the production planner with a simulated clock
(:mod:`scheduler.simulate`) and compares run-now, carbon-aware and a perfect-knowledge
oracle on the same workload.
"""

from __future__ import annotations

from datetime import timedelta

import click

from scheduler.cli.common import echo_json, json_option, print_table
from scheduler.cli.jobs import transfer_energy_j
from scheduler.errors import BadInput
from scheduler.text.quantities import fmt_mass_g as fmt_g
from scheduler.text.quantities import fmt_pct
from scheduler.text.times import format_duration, parse_duration_or_zero_s, parse_duration_s

FORECASTS = ("local", "perfect", "seven-day-mean", "vintages")


def parse_range_s(text: str) -> tuple[int, int]:
    """``1h-8h`` (or one duration, ``3h``) -> seconds."""
    lo_txt, sep, hi_txt = text.partition("-")
    lo = parse_duration_s(lo_txt, what="--duration")
    hi = parse_duration_s(hi_txt, what="--duration") if sep else lo
    if hi < lo:
        raise BadInput(f"--duration {text!r}: the upper bound is below the lower one")
    return lo, hi


@click.command()
@click.option("--trace", "traces", required=True, metavar="FILE[,FILE...]",
              help="Intensity history: Electricity Maps portal CSVs or time,intensity CSVs; one site per file.")
@click.option("--jobs", "n_jobs", type=int, metavar="N", help="Generate N jobs (default 500).")
@click.option("--workload", type=click.Path(dir_okay=False), metavar="FILE",
              help="A CSV of jobs: submit, duration, deadline[, gpus, cpus, interruptible, site, power_w, priority]; "
                   "sweeps: sweep (a name shared by its trials' rows), max_concurrent (its %N cap), "
                   "array (the row is that many trials). With sweeps, the trials are also replayed as "
                   "independent jobs (no cap, each planned alone at its submission) to price planning "
                   "them together.")
@click.option("--deadline", default="24h", show_default=True, metavar="DURATION", help="Each generated job is due this long after submission.")
@click.option("--duration", default="1h-8h", show_default=True, metavar="DURATION[-DURATION]", help="Range of generated durations.")
@click.option("--gpus", type=int, default=0, show_default=True, help="GPU capacity of each site (0: unlimited).")
@click.option("--cpus", type=int, default=0, show_default=True, help="CPU capacity of each site (0: unlimited).")
@click.option("--job-gpus", type=int, default=1, show_default=True, help="GPUs each generated job needs.")
@click.option("--power-w", type=float, default=300.0, show_default=True, help="Power of each generated job, W.")
@click.option("--interruptible-share", type=float, default=0.0, show_default=True,
              help="Share of generated jobs that may be paused and resumed (0-1).")
@click.option("--relocate", is_flag=True, help="Jobs may run at any site (with the transfer costs).")
@click.option("--transfer-delay", default="0s", show_default=True, metavar="DURATION", help="Delay before a moved job can start.")
@click.option("--transfer-energy", metavar="ENERGY", help="Energy to move a job, like 0.5kWh or 1.8MJ (default 0).")
@click.option("--transfer-energy-kwh", type=float, default=0.0, hidden=True, help="Old spelling of --transfer-energy, in kWh.")
@click.option("--pue", type=float, default=1.0, show_default=True, help="PUE of every site.")
@click.option("--min-chunk", default="1h", show_default=True, metavar="DURATION", help="Shortest run of a split job.")
@click.option("--max-pauses", type=int, default=3, show_default=True, help="Most pauses of a split job (-1: no limit).")
@click.option("--warmup", default="28d", show_default=True, metavar="DURATION",
              help="History before the first generated job (the local forecaster learns from it).")
@click.option("--replan", default="0s", show_default=True, metavar="DURATION",
              help="Also re-plan waiting jobs this often (like the daemon); 0: at each arrival only.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the generated workload.")
@click.option("--forecast", type=click.Choice(FORECASTS), default="local", show_default=True,
              help="What the carbon-aware planner sees: the local forecaster trained on data before each "
                   "decision, the trace itself, a seven-day same-hour mean, or recorded vintages.")
@click.option("--vintages", "vintage_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Recorded forecasts for --forecast vintages (GB derived long CSV or WattTime forecast CSV).")
@click.option("--value-column", metavar="NAME", help="Intensity column of a plain CSV trace (e.g. DE).")
@click.option("--naive-utc", is_flag=True, help="Read zone-less trace times as UTC.")
@json_option
def simulate(
    traces: str, n_jobs: int | None, workload: str | None, deadline: str, duration: str, gpus: int,
    cpus: int, job_gpus: int, power_w: float, interruptible_share: float, relocate: bool, transfer_delay: str,
    transfer_energy: str | None, transfer_energy_kwh: float, pue: float, min_chunk: str, max_pauses: int, warmup: str, replan: str, seed: int,
    forecast: str, vintage_file: str | None, value_column: str | None, naive_utc: bool, as_json: bool,
) -> None:
    """Replay real intensity history: run-now vs carbon-aware vs a perfect oracle.

    \b
    Examples:
      carbonshift simulate --trace GB_2023_hourly.csv --jobs 500 --deadline 24h --duration 1h-8h
      carbonshift simulate --trace DE.csv,FR.csv --relocate --transfer-delay 30m --json
      carbonshift simulate --trace GB.csv --gpus 8 --workload sweeps.csv --forecast perfect

    \b
    A sweep in a workload file (20 trials of 2 h, at most 4 at once):
      submit,duration,deadline,sweep,array,max_concurrent
      2023-03-01T09:00Z,2h,36h,lr-search,20,4
    """
    from intensity.providers.replay import read_trace
    from scheduler.domain.model import MAX_GPUS, Site, check_count, check_power_w, check_resources
    from scheduler.planning import PlanOptions
    from scheduler.simulate import MAX_SIM_JOBS, compare, generate_workload, read_workload

    if n_jobs is not None and workload is not None:
        raise BadInput("give either --jobs or --workload, not both")
    if n_jobs is not None and not 0 < n_jobs <= MAX_SIM_JOBS:
        raise BadInput(f"--jobs {n_jobs} must be a positive number, at most {MAX_SIM_JOBS:,}")
    if not 0.0 <= interruptible_share <= 1.0:
        raise BadInput(f"--interruptible-share {interruptible_share:g} must be between 0 and 1")
    check_resources(gpus, cpus)
    check_count(job_gpus, "--job-gpus", MAX_GPUS)
    check_power_w(power_w, "--power-w")
    if gpus and job_gpus > gpus:
        raise BadInput(f"--job-gpus {job_gpus} exceeds the site capacity --gpus {gpus}")
    if not 1.0 <= pue <= 5.0:
        raise BadInput(f"--pue {pue:g} must be between 1.0 and 5.0")
    if max_pauses < -1:
        raise BadInput(f"--max-pauses {max_pauses} must be -1 (no limit) or a number of pauses >= 0")
    files = [f.strip() for f in traces.split(",") if f.strip()]
    if not files:
        raise BadInput(f"--trace {traces!r} names no file")
    loaded = [read_trace(f, naive_is_utc=naive_utc, value_column=value_column) for f in files]
    zones = [t.zone for t in loaded]
    if len(set(zones)) != len(zones):
        raise BadInput(f"two traces have the same zone ({', '.join(zones)}): give one file per zone")
    delay_s = parse_duration_or_zero_s(transfer_delay, what="--transfer-delay")
    sites = {
        t.zone: Site(name=t.zone, zone=t.zone, gpus=gpus, cpus=cpus, pue=pue, transfer_delay_s=delay_s,
                     transfer_energy_j=transfer_energy_j(transfer_energy, transfer_energy_kwh))
        for t in loaded
    }
    start = max(t.start for t in loaded)
    end = min(t.end for t in loaded)
    if end <= start:
        raise BadInput("the traces do not overlap in time")
    if workload is not None:
        jobs = read_workload(workload, zones[0])
        unknown = sorted({j.site for j in jobs} - set(sites))
        if unknown:
            raise BadInput(f"workload sites {', '.join(unknown)} are not among the traces' zones {', '.join(zones)}")
        if relocate:
            from dataclasses import replace

            jobs = [replace(j, allowed_sites=tuple(sites)) for j in jobs]
    else:
        lo, hi = parse_range_s(duration)
        deadline_s = parse_duration_s(deadline, what="--deadline")
        if deadline_s < lo:
            raise BadInput(f"--deadline {deadline} is shorter than the shortest job {format_duration(lo)}")
        warm = timedelta(seconds=parse_duration_or_zero_s(warmup, what="--warmup"))
        if start + warm + timedelta(seconds=deadline_s + hi) >= end:
            warm = timedelta(0)  # a short trace: no room to learn first
        jobs = generate_workload(
            n_jobs or 500, list(sites), start + warm, end, seed=seed, duration_s=(lo, hi),
            deadline_s=deadline_s, gpus=job_gpus, power_w=power_w,
            interruptible_share=interruptible_share, relocatable=relocate,
        )
    from scheduler.cli.common import get_app

    options = PlanOptions(
        # a placement in force moves only past the daemon's hysteresis, as in the daemon
        hysteresis_pct=get_app().settings.replan_hysteresis_pct,
        slot_s=min(900, min(t.resolution_s for t in loaded)),
        min_chunk_s=parse_duration_s(min_chunk, what="--min-chunk"),
        max_pauses=None if max_pauses < 0 else max_pauses,
    )
    from scheduler.simulate import local_forecaster

    # the local forecaster's fits are kept where every later run and the daemon reuse them
    local = local_forecaster(get_app().settings.forecast_fits_dir) if forecast in ("local", "vintages") else None
    forecaster = local
    if forecast == "vintages":
        if not vintage_file:
            raise BadInput("--forecast vintages needs --vintages FILE (recorded forecasts)")
        from scheduler.simulate import vintage_forecaster

        forecaster = vintage_forecaster(vintage_file, zones[0], fallback=local)
    replan_s = parse_duration_or_zero_s(replan, what="--replan")
    # forecasts reach every job's deadline (at least the usual 48 h)
    horizon_s = max([48 * 3600, *(int((j.deadline - j.submit).total_seconds()) for j in jobs)])
    from scheduler.cli.progressbar import progress

    with progress(f"simulate {len(jobs):,} jobs", as_json=as_json) as report:
        result = compare(jobs, sites, {t.zone: t.points for t in loaded}, forecast=forecast,
                         forecaster=forecaster, options=options, replan_s=replan_s, horizon_s=horizon_s,
                         progress=report)
    if as_json:
        echo_json(result.to_json())
        return
    rows = []
    for label, zone in [("all", None), *[(z, z) for z in result.zones]]:
        s = result.summary(zone)
        share = s["share_of_oracle"]
        gap = s.get("gap_closed")
        rows.append([
            label, s["jobs"], fmt_g(s["run_now_g"]), fmt_g(s["carbon_aware_g"]), fmt_g(s["oracle_g"]),
            fmt_pct(s["savings_pct"]), fmt_pct(s["oracle_savings_pct"]),
            "-" if share is None else f"{100 * float(share):.0f}%",
            "-" if gap is None else f"{100 * float(gap):+.0f}%", s["deadline_misses"],
            format_duration(float(s["mean_delay_s"] or 0.0)),
        ])
    print_table(
        ["zone", "jobs", "run-now", "carbon-aware", "oracle", "saved", "oracle saved",
         "of oracle", "gap closed", "misses", "mean delay"],
        rows, title=f"{len(jobs)} jobs, forecast: {forecast}",
    )
    click.echo("of oracle: grams saved / grams the oracle saves (over zones, kg-weighted); gap "
               "closed: share of the gap between the seven-day-profile planner and the oracle")
    total = result.summary()
    if total["refused"] or total["oracle_refused"] or total["run_now_refused"]:
        click.echo(
            f"refused at submission for lack of capacity before the deadline, then submitted "
            f"again with the earliest finish that fits: carbon-aware {total['refused']}, "
            f"oracle {total['oracle_refused']}, run-now {total['run_now_refused']} "
            f"(misses count against the deadline each job was accepted with)"
        )
    if total.get("independent_g") is not None:
        rows = []
        for label, zone in [("all", None), *[(z, z) for z in result.zones]]:
            s = result.summary(zone)
            rows.append([
                label, fmt_g(s["run_now_g"]), fmt_g(s["carbon_aware_g"]), fmt_pct(s["savings_pct"]),
                fmt_g(s["independent_g"]), fmt_pct(s["independent_savings_pct"]),
                fmt_g(s["together_vs_independent_g"]), s["deadline_misses"], s["independent_deadline_misses"],
            ])
        print_table(
            ["zone", "run-now", "sweeps together", "saved", "independent", "saved", "together saves",
             "misses", "independent misses"],
            rows, title="sweeps planned together (with their caps) vs their trials as independent jobs "
                        "(no cap, each planned alone at its submission)",
        )
    if len(result.sites) > 1:
        print_table(["site", "jobs run there", "carbon-aware"],
                    [[n, r["jobs"], fmt_g(float(r["carbon_aware_g"]))] for n, r in result.per_site().items()])
