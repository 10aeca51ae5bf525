"""``carbonshift site add|list|show|rm``: places jobs run (zone, executor, capacity, PUE).

The default site ``local`` (this machine, the configured home zone) exists from the first
run without being stored; ``site add local ...`` stores an override, and ``site rm local``
drops the override again.
"""

from __future__ import annotations

import math

import click

from scheduler.cli.common import echo_json, get_app, json_option, print_table
from scheduler.cli.jobs import transfer_energy_j
from scheduler.domain.model import TERMINAL_STATES, JobState, Site, check_resources
from scheduler.errors import BadInput
from scheduler.text.quantities import J_PER_KWH, fmt_energy_j
from scheduler.text.times import format_duration, parse_duration_or_zero_s

EXECUTORS = ("local", "slurm")


def site_dict(s: Site, *, stored: bool = True) -> dict[str, object]:
    """A site as JSON (transfer energy in kWh, as the flag takes it)."""
    return {
        "name": s.name, "zone": s.zone, "executor": s.executor, "gpus": s.gpus, "cpus": s.cpus,
        "pue": s.pue, "transfer_delay_s": s.transfer_delay_s,
        "transfer_energy_kwh": s.transfer_energy_j / J_PER_KWH, "stored": stored,
    }


def _capacity(n: int) -> str:
    return str(n) if n > 0 else "unmanaged"


def _check_name(name: str) -> str:
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise BadInput(f"site name {name!r} is not valid: use up to 64 letters, digits, '-', '_' or '.'")
    return name


@click.group()
def site() -> None:
    """Manage sites: where jobs may run, with their grid zone, GPU/CPU capacity and PUE.

    \b
    A capacity of 0 means the planner does not manage that resource at the site.
    Jobs choose sites with `submit --site a,b` or `--any-site`; moving away from the
    home site costs the destination's transfer delay and transfer energy.
    """


@site.command("add")
@click.argument("name")
@click.option("--zone", required=True, metavar="ZONE", help="Grid zone whose intensity applies.")
@click.option("--gpus", type=int, required=True, help="GPUs the site has (0: not managed).")
@click.option("--cpus", type=int, default=0, show_default=True, help="CPU cores (0: not managed).")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="How jobs are launched there.")
@click.option("--pue", type=float, default=1.0, show_default=True,
              help="Power usage effectiveness: facility energy / IT energy (>= 1).")
@click.option("--transfer-delay", default="0s", show_default=True, metavar="DURATION",
              help="Time to move a job's data here before it can start (30m, 2h).")
@click.option("--transfer-energy", metavar="ENERGY",
              help="Energy spent moving a job's data here, like 0.5kWh or 1.8MJ (default 0).")
@click.option("--transfer-energy-kwh", type=float, default=0.0, hidden=True,
              help="Old spelling of --transfer-energy, in kWh.")
@json_option
def site_add(
    name: str, zone: str, gpus: int, cpus: int, executor: str, pue: float, transfer_delay: str,
    transfer_energy: str | None, transfer_energy_kwh: float, as_json: bool,
) -> None:
    """Create or replace site NAME.

    \b
    Example: carbonshift site add nordic --zone SE --gpus 8 --pue 1.1 --transfer-delay 30m
    """
    app = get_app()
    _check_name(name)
    check_resources(gpus, cpus)
    if not math.isfinite(pue) or pue < 1.0 or pue > 5.0:
        raise BadInput(f"--pue {pue:g} must be between 1.0 and 5.0")
    energy_j = transfer_energy_j(transfer_energy, transfer_energy_kwh)
    delay_s = parse_duration_or_zero_s(transfer_delay, what="transfer delay")
    from intensity.errors import UnknownZone

    try:
        app.intensity.check_zone(zone)
    except UnknownZone as exc:
        raise BadInput(str(exc)) from None
    s = Site(name=name, zone=zone, executor=executor, gpus=gpus, cpus=cpus, pue=pue,
             transfer_delay_s=delay_s, transfer_energy_j=energy_j)
    app.store.put_site(s)
    if as_json:
        echo_json(site_dict(s))
    else:
        click.echo(f"site {name!r} saved: zone {zone}, {executor}, {_capacity(gpus)} GPUs, "
                   f"{_capacity(cpus)} CPUs, PUE {pue:g}")


@site.command("list")
@json_option
def site_list(as_json: bool) -> None:
    """List sites, the default `local` one included."""
    app = get_app()
    stored = {s.name for s in app.store.list_sites()}
    sites = sorted(app.queue.sites().values(), key=lambda s: s.name)
    if as_json:
        echo_json([site_dict(s, stored=s.name in stored) for s in sites])
        return
    print_table(
        ["name", "zone", "executor", "gpus", "cpus", "pue", "transfer"],
        [[s.name + ("" if s.name in stored else " (default)"), s.zone, s.executor,
          _capacity(s.gpus), _capacity(s.cpus), f"{s.pue:g}", _transfer(s)] for s in sites],
    )


def _transfer(s: Site) -> str:
    if not s.transfer_delay_s and not s.transfer_energy_j:
        return "-"
    return f"{format_duration(s.transfer_delay_s)}, {fmt_energy_j(s.transfer_energy_j)}"


@site.command("show")
@click.argument("name")
@json_option
def site_show(name: str, as_json: bool) -> None:
    """Show one site and how many jobs wait for or run on it."""
    app = get_app()
    sites = app.queue.sites()
    if name not in sites:
        raise BadInput(f"unknown site {name!r}: known sites are {', '.join(sorted(sites))}")
    s = sites[name]
    stored = name in {x.name for x in app.store.list_sites()}
    active = [j for j in app.store.list_jobs(
        [JobState.PENDING, JobState.PLANNED, JobState.RUNNING, JobState.SUSPENDED], sites=[name])]
    if as_json:
        d = site_dict(s, stored=stored)
        d["waiting_jobs"] = sum(j.state in (JobState.PENDING, JobState.PLANNED) for j in active)
        d["running_jobs"] = sum(j.state in (JobState.RUNNING, JobState.SUSPENDED) for j in active)
        echo_json(d)
        return
    click.echo(f"{s.name}{'' if stored else ' (default)'}: zone {s.zone}, executor {s.executor}")
    click.echo(f"  capacity: {_capacity(s.gpus)} GPUs, {_capacity(s.cpus)} CPUs; PUE {s.pue:g}")
    click.echo(f"  transfer here: {_transfer(s)}")
    click.echo(f"  jobs: {sum(j.state in (JobState.PENDING, JobState.PLANNED) for j in active)} waiting, "
               f"{sum(j.state in (JobState.RUNNING, JobState.SUSPENDED) for j in active)} running")


@site.command("rm")
@click.argument("name")
@json_option
def site_rm(name: str, as_json: bool) -> None:
    """Remove a stored site (refused while jobs wait for or run on it)."""
    app = get_app()
    stored = {s.name for s in app.store.list_sites()}
    if name not in stored:
        if name == "local":
            raise BadInput("site 'local' is the built-in default and cannot be removed")
        raise BadInput(f"unknown site {name!r}: stored sites are {', '.join(sorted(stored)) or 'none'}")
    busy = [j for j in app.store.list_jobs(
        [s for s in JobState if s not in TERMINAL_STATES], sites=[name]) if j.id is not None]
    busy += [j for j in app.store.list_jobs([s for s in JobState if s not in TERMINAL_STATES])
             if j.site == name and j not in busy]
    if busy:
        ids = ", ".join(str(j.id) for j in busy[:5]) + (" ..." if len(busy) > 5 else "")
        raise BadInput(f"site {name!r} has {len(busy)} unfinished job(s) ({ids}): cancel or "
                       "finish them first")
    app.store.delete_site(name)
    if as_json:
        echo_json({"removed": name})
    else:
        click.echo(f"site {name!r} removed")
