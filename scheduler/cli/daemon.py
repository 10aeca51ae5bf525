"""``carbonshift run``: the daemon."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

import click

from scheduler.cli.common import get_app, state
from scheduler.timeutil import parse_duration_s

if TYPE_CHECKING:
    from scheduler.app import App


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
    from scheduler.config import credential_vars, hide_from_environ

    # read into app.env already: a job must not find them in /proc/<daemon pid>/environ
    hide_from_environ(credential_vars(app.settings))
    interval = parse_duration_s(sample_interval, what="sample interval") if sample_interval else None
    if not _wait_for_database(app):
        return
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


def _wait_for_database(app: App) -> bool:
    """Open the store, retrying with backoff (1 s doubling to 60 s) while the database is
    unreachable: a daemon started before its database (boot order, a PostgreSQL restart)
    waits for it, logging one line per try, instead of exiting into a crash loop.

    A database carbonshift cannot use (not SQLite, a newer schema) is not retried.
    Returns ``False`` when stopped (SIGINT/SIGTERM) before the database answered.
    """
    import threading

    from scheduler.errors import BadDatabase, StorageError

    stopped = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    delay = 1.0
    try:
        while True:
            try:
                _ = app.store
                return True
            except BadDatabase:
                raise
            except StorageError as exc:
                stamp = app.clock.now().strftime("%Y-%m-%d %H:%M:%S")
                click.echo(f"{stamp}Z error      database unreachable, retrying in {delay:g} s: {exc}")
                sys.stdout.flush()
            if stopped.wait(delay):
                click.echo("daemon     stopped before the database answered")
                return False
            delay = min(60.0, delay * 2)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
