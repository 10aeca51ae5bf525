"""``carbonshift measure -- CMD ...`` and ``carbonshift probes``.

``measure`` runs a command now, in its own process group, under the probes' sampler; it
prints the energy by device and method and the emissions at the zone's intensity over the
run, and records it in history as an unscheduled run (policy ``now``, submitted and
started at once, so its run-now counterfactual is itself: it saves nothing). The command's
exit code becomes ours. Ctrl-C is passed on to the command's process group.

``probes`` says what this machine can measure, and for what it cannot, why and the fix.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from probes.detect import default_probes, describe
from probes.model import ProbeTarget, Sample
from probes.sampler import Sampler
from scheduler.cli.common import echo_json, get_app, json_option, print_table
from scheduler.errors import BadInput
from scheduler.measuring import UNSCHEDULED, by_device, parse_gpu_indices, probe_config
from scheduler.text.quantities import fmt_energy_j
from scheduler.text.quantities import fmt_mass_g as fmt_g


@contextmanager
def _forward_signals(pgid: int) -> Iterator[None]:
    """Pass Ctrl-C, SIGTERM and SIGHUP on to the command's process group while it runs."""

    def forward(signum: int, _frame: Any) -> None:
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass

    previous = {
        s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _wait4(pid: int) -> tuple[int, float]:
    """Reap ``pid``: its exit code (128+N for signal N) and its rusage CPU seconds."""
    while True:
        try:
            _pid, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
    code = os.waitstatus_to_exitcode(status)
    return (128 - code if code < 0 else code), ru.ru_utime + ru.ru_stime




@click.command(context_settings={"allow_interspersed_args": False})
@click.option(
    "--zone", metavar="ZONE", help="Grid zone for the emissions (default: the local site's zone)."
)
@click.option(
    "--interval",
    "interval_s",
    type=float,
    metavar="SECONDS",
    help="Sampling interval [config sampling_interval_s].",
)
@click.option(
    "--gpus",
    "gpus_opt",
    metavar="I[,J...]",
    help="GPU indices the command uses (default: CUDA_VISIBLE_DEVICES).",
)
@click.option("--no-record", is_flag=True, help="Measure only; do not record the run in history.")
@json_option
@click.argument("command", nargs=-1, required=True)
def measure(
    zone: str | None,
    interval_s: float | None,
    gpus_opt: str | None,
    no_record: bool,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND now, measure its energy, and record it as an unscheduled run.

    Put the command after `--`: carbonshift measure -- python train.py --epochs 1
    """
    from scheduler import measuring
    from scheduler.config import current_environ

    app = get_app()
    environ = current_environ()
    settings = app.settings
    interval = settings.sampling_interval_s if interval_s is None else interval_s
    if not (math.isfinite(interval) and interval > 0):
        raise BadInput(f"--interval {interval_s!r} must be a positive number of seconds")
    gpu_indices = parse_gpu_indices(gpus_opt, environ)
    # validate everything (command, zone) before running anything
    job = measuring.begin(app, argv=command, zone=zone, cwd=os.getcwd(), environ=environ,
                          gpus=len(gpu_indices), at=app.clock.now())

    config = probe_config(settings)
    samples: list[Sample] = []
    try:
        proc = subprocess.Popen(list(command), process_group=0)
    except OSError as exc:
        raise BadInput(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
    started_at = app.clock.now()
    sampler = Sampler(
        ProbeTarget(pid=proc.pid, pgid=proc.pid, gpu_indices=gpu_indices),
        now=app.clock.now,
        sink=samples.extend,
        interval_s=interval,
        probes=default_probes(config),
    )
    sampler.start()
    with _forward_signals(proc.pid):
        exit_code, cpu_s = _wait4(proc.pid)
    proc.returncode = exit_code
    sampler.stop(final_cpu_s=cpu_s)
    finished_at = app.clock.now()
    duration_s = (finished_at - started_at).total_seconds()
    recorded = measuring.finish(
        app, job, samples=samples, sampler=sampler, started_at=started_at,
        finished_at=finished_at, exit_code=exit_code, handle=str(proc.pid), record=not no_record,
    )
    acct, job_id = recorded.accounting, recorded.job_id

    _print(
        as_json,
        job_id,
        command,
        exit_code,
        duration_s,
        cpu_s,
        samples,
        sampler,
        acct,
        job.zone,
        started_at,
    )
    if exit_code != 0:
        # SystemExit, not click's Exit: with standalone_mode=False click returns Exit's code
        raise SystemExit(exit_code)


def _print(
    as_json: bool,
    job_id: int | None,
    command: Sequence[str],
    exit_code: int,
    duration_s: float,
    cpu_s: float,
    samples: Sequence[Sample],
    sampler: Sampler,
    acct: Any,
    zone: str,
    started_at: datetime,
) -> None:
    devices = by_device(samples)
    intensity = (acct.emissions_g / acct.energy_kwh) if acct.energy_kwh > 0 else None
    if as_json:
        echo_json(
            {
                "job_id": job_id,
                "command": list(command),
                "exit_code": exit_code,
                "started_at": started_at,
                "duration_s": duration_s,
                "cpu_s": cpu_s,
                "zone": zone,
                "energy_j": acct.energy_j,
                "facility_energy_j": acct.facility_energy_j,
                "pue": acct.pue,
                "emissions_g": acct.emissions_g,
                "intensity_g_per_kwh": intensity,
                "intensity_kind": acct.intensity_kind,
                "intensity_provider": acct.intensity_provider,
                "measured_share": acct.measured_share,
                "methods": sampler.methods,
                "notes": sampler.notes,
                "devices": devices,
            }
        )
        return
    print_table(
        ["device", "method", "energy", "estimated"],
        [
            [d["device"], d["method"], fmt_energy_j(d["energy_j"]), "yes" if d["estimated"] else "no"]
            for d in devices
        ],
        title=f"energy of `{' '.join(command)}` ({duration_s:.1f} s, {cpu_s:.2f} CPU s, exit {exit_code})",
    )
    where = f"{acct.intensity_kind} intensity from {acct.intensity_provider}"
    mean = f", mean {intensity:.0f} gCO2/kWh" if intensity is not None else ""
    click.echo(
        f"total {fmt_energy_j(acct.energy_j)} ({acct.energy_j:.2f} J, PUE {acct.pue:g}); "
        f"emissions {fmt_g(acct.emissions_g)} in {zone} ({where}{mean})"
    )
    for note in sampler.notes:
        click.echo(f"note: {note}")
    if job_id is not None:
        click.echo(f"recorded as job {job_id} ({UNSCHEDULED}); see `carbonshift show {job_id}`")


@click.command()
@json_option
def probes(as_json: bool) -> None:
    """What this machine can measure, method by method, and for the rest why not and the fix."""
    app = get_app()
    settings = app.settings
    statuses = describe(probe_config(settings))
    if as_json:
        echo_json([s.to_dict() for s in statuses])
        return
    print_table(
        ["method", "device", "available", "details", "fix"],
        [
            [s.method, s.device, "yes" if s.available else "no", s.reason, s.fix or "-"]
            for s in statuses
        ],
    )
