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
import socket
import subprocess
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import click

from probes.detect import ProbeConfig, default_probes, describe
from probes.model import ProbeTarget, Sample
from probes.sampler import Sampler
from scheduler.cli.common import echo_json, fmt_g, get_app, json_option, print_table
from scheduler.errors import BadInput
from scheduler.units import fmt_energy_j

UNSCHEDULED = "unscheduled (carbonshift measure)"


def _gpu_indices(value: str | None, environ: dict[str, str]) -> tuple[int, ...]:
    """``--gpus 0,1``, else numeric ``CUDA_VISIBLE_DEVICES``, else none."""
    text = value if value is not None else environ.get("CUDA_VISIBLE_DEVICES", "")
    text = text.strip()
    if not text:
        return ()
    try:
        indices = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        if value is None:
            return ()  # UUIDs or MIG names in the environment: not indices we can map
        raise BadInput(f"--gpus {value!r} is not a list of GPU indices like 0,1") from None
    if any(i < 0 for i in indices):
        raise BadInput(f"--gpus {text!r}: GPU indices are not negative")
    return indices


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


def _by_device(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    totals: dict[tuple[str, str, bool], float] = defaultdict(float)
    for s in samples:
        totals[(s.device, str(s.method), s.estimated)] += s.energy_j
    return [
        {"device": d, "method": m, "estimated": e, "energy_j": j}
        for (d, m, e), j in sorted(totals.items())
    ]


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
    from scheduler.accounting import account
    from scheduler.config import current_environ
    from scheduler.model import Event, JobState, Run
    from scheduler.queue import SubmitRequest

    app = get_app()
    environ = current_environ()
    settings = app.settings
    interval = settings.sampling_interval_s if interval_s is None else interval_s
    if not (math.isfinite(interval) and interval > 0):
        raise BadInput(f"--interval {interval_s!r} must be a positive number of seconds")
    gpu_indices = _gpu_indices(gpus_opt, environ)
    # validate everything (command, zone) before running anything
    submitted_at = app.clock.now()
    req = SubmitRequest(
        argv=list(command),
        duration_s=1,
        zone=zone,
        policy="now",
        cwd=os.getcwd(),
        submitter_env=environ,
        gpus=len(gpu_indices),
    )
    job = app.queue.build_job(req, submitted_at)
    site = app.queue.sites().get(job.site)
    pue = site.pue if site is not None else 1.0

    config = ProbeConfig(
        cpu_w_per_core=settings.cpu_w_per_core, memory_w_per_gb=settings.memory_w_per_gb
    )
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

    first = min((s.start for s in samples), default=started_at)
    last = max((s.end for s in samples), default=finished_at)
    points = app.intensity.points_for_accounting(job.zone, first, last + timedelta(seconds=1))
    acct = account(samples, points, started_at=started_at, submitted_at=started_at, pue=pue)
    duration_s = (finished_at - started_at).total_seconds()

    job_id: int | None = None
    if not no_record:
        state = JobState.SUCCEEDED if exit_code == 0 else JobState.FAILED
        job.duration_s = max(1, math.ceil(duration_s))
        job.submitted_at = job.earliest_start = job.latest_start = started_at
        job.planned_start, job.planned_site = started_at, job.site
        job.state, job.attempts, job.plan_source = state, 1, UNSCHEDULED
        if duration_s > 0 and acct.energy_j > 0:
            job.power_w = acct.energy_j / duration_s  # measured mean power, not a planning guess
        job.note = "; ".join(["unscheduled run measured by `carbonshift measure`", *sampler.notes])
        stored = app.store.add_job(job)
        job_id = stored.id
        assert job_id is not None
        run = app.store.add_run(
            Run(
                job_id=job_id,
                site=job.site,
                executor="local",
                started_at=started_at,
                handle=str(proc.pid),
                host=socket.gethostname(),
                finished_at=finished_at,
                exit_code=exit_code,
                state=state,
                reason="" if exit_code == 0 else f"exit {exit_code}",
                accounting=acct,
            )
        )
        assert run.id is not None
        app.store.add_samples(run.id, samples)
        app.store.add_event(
            Event(
                job_id,
                finished_at,
                "measured",
                f"{UNSCHEDULED}: exit {exit_code}, {acct.energy_j:.1f} J, {acct.emissions_g:.4g} g",
            )
        )

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
    devices = _by_device(samples)
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
    statuses = describe(
        ProbeConfig(
            cpu_w_per_core=settings.cpu_w_per_core, memory_w_per_gb=settings.memory_w_per_gb
        )
    )
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
