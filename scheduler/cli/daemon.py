"""``carbonshift run``: the daemon."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import click

from scheduler.cli.common import get_app, state
from scheduler.timeutil import parse_duration_s


@click.command()
@click.option("--site", "sites", multiple=True, metavar="NAME", help="Only launch jobs planned on this site (repeatable); default: all.")
@click.option("--sample-interval", metavar="DURATION", help="Energy sampling interval (default from config, 5s).")
@click.option("--exit-when-idle", is_flag=True, help="Stop once no job is waiting or running.")
@click.option("--no-planner", is_flag=True, help="Only launch and measure; another agent plans.")
@click.option("--agent-name", metavar="NAME", help="Name recorded on this agent's runs (default: "
              "config agent_name, else the host name); agents sharing a host and a site need distinct names.")
def run(sites: tuple[str, ...], sample_interval: str | None, exit_when_idle: bool, no_planner: bool,
        agent_name: str | None) -> None:
    """Run the daemon: plan waiting jobs, wait for their windows, launch, measure, account.

    One line is logged per event (planned, started, finished with energy and emissions).
    Ctrl-C stops the daemon cleanly; running jobs keep running, stay recorded, and the
    next daemon adopts them.
    """
    from scheduler.dispatch import Daemon

    verbose = state().verbose
    # the daemon shows warnings (providers failing, database retries) even without -v
    logging.getLogger().setLevel(
        logging.DEBUG if verbose > 1 else (logging.INFO if verbose else logging.WARNING)
    )
    app = get_app()
    interval = parse_duration_s(sample_interval, what="sample interval") if sample_interval else None
    if sites:
        known = app.queue.sites()
        for s in sites:
            if s not in known:
                from scheduler.errors import NotFound

                raise NotFound(f"unknown site {s!r}: known sites are {', '.join(sorted(known))}")

    def emit(line: str) -> None:
        stamp = app.clock.now().strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{stamp}Z {line}")
        sys.stdout.flush()

    daemon = Daemon(
        app, sites=sites or None, sample_interval_s=interval, exit_when_idle=exit_when_idle,
        on_event=emit, planner=not no_planner, agent=agent_name,
    )

    def handler(signum: int, _frame: FrameType | None) -> None:
        emit(f"stopping   on {signal.Signals(signum).name}; running jobs keep running")
        daemon.stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    emit(f"daemon     started on {daemon.host} with {app.settings.db.split('://')[0]} database"
         + (f", sites {', '.join(sites)}" if sites else ""))
    daemon.run_forever()
    emit("daemon     stopped")
