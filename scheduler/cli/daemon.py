"""``carbonshift run``: the daemon."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import click

from scheduler.cli.common import get_app, state
from scheduler.text.times import iso, parse_duration_s

if TYPE_CHECKING:
    from scheduler.app import App


@click.command()
@click.option("--site", "sites", multiple=True, metavar="NAME", help="Only launch jobs planned on this site (repeatable); default: all.")
@click.option("--sample-interval", metavar="DURATION", help="Energy sampling interval (default from config, 5s).")
@click.option("--exit-when-idle", is_flag=True, help="Stop once no job is waiting or running.")
@click.option("--no-planner", is_flag=True, help="Only launch and measure; another agent plans.")
@click.option("--agent-name", metavar="NAME", help="Name recorded on this agent's runs (default: "
              "config agent_name, else the host name); agents sharing a host and a site need distinct names.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics (0: any free port).")
@click.option("--run-as-owner", is_flag=True, default=None,
              help="Run each local job as the Unix user who submitted it (config run_as_owner; "
              "needs the agent to run as root).")
def run(sites: tuple[str, ...], sample_interval: str | None, exit_when_idle: bool, no_planner: bool,
        agent_name: str | None, metrics_port: int | None = None, run_as_owner: bool | None = None) -> None:
    """Run the daemon: plan waiting jobs, wait for their windows, launch, measure, account.

    One line is logged per event (planned, started, finished with energy and emissions),
    stamped with the (simulated) UTC time in ISO 8601 with a Z. Ctrl-C (exit 130) or
    SIGTERM (exit 0) stops the daemon cleanly; running jobs keep running, stay recorded,
    and the next daemon adopts them.
    """
    from scheduler.agent.loop import Daemon

    verbose = state().verbose
    # the daemon shows warnings (providers failing, database retries) even without -v
    logging.getLogger().setLevel(
        logging.DEBUG if verbose > 1 else (logging.INFO if verbose else logging.WARNING)
    )
    app = get_app()
    if run_as_owner:
        from dataclasses import replace

        app.settings = replace(app.settings, run_as_owner=True)
    from scheduler.config import credential_vars, hide_from_environ

    # read into app.env already: a job must not find them in /proc/<daemon pid>/environ
    hide_from_environ(credential_vars(app.settings))
    interval = parse_duration_s(sample_interval, what="sample interval") if sample_interval else None
    interrupted: list[int] = []  # SIGINT seen: exit 130 (SIGTERM, a service stop: 0)
    # on a database not made yet the sites are checked first (only the default one is
    # known): a refused --site creates nothing
    checked = bool(sites) and not app.database_exists()
    if checked:
        _check_sites(app, sites)
    if not _wait_for_database(app, interrupted):
        sys.exit(130 if interrupted else 0)
    if sites and not checked:
        _check_sites(app, sites)

    def emit(line: str) -> None:
        click.echo(f"{iso(app.clock.now())} {line}")
        sys.stdout.flush()

    daemon = Daemon(
        app, sites=sites or None, sample_interval_s=interval, exit_when_idle=exit_when_idle,
        on_event=emit, planner=not no_planner, agent=agent_name,
    )

    def handler(signum: int, _frame: FrameType | None) -> None:
        emit(f"stopping   on {signal.Signals(signum).name}; running jobs keep running")
        if signum == signal.SIGINT:
            interrupted.append(signum)
        daemon.stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    emit(f"daemon     started on {daemon.host} with {app.settings.db.split('://')[0]} database"
         + (f", sites {', '.join(sites)}" if sites else ""))
    if app.settings.run_as_owner:
        _say_run_as(app, emit)
    server = None
    if metrics_port is not None:
        from scheduler.web.server import serve_metrics

        server = serve_metrics(app, metrics_port)
        emit(f"metrics    on http://127.0.0.1:{server.server_address[1]}/metrics")
    try:
        daemon.run_forever()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    emit("daemon     stopped")
    if interrupted:  # Ctrl-C: the README's "130 interrupted"
        sys.exit(130)
    if daemon.exit_code:
        sys.exit(daemon.exit_code)


def _say_run_as(app: App, emit: Callable[[str], None]) -> None:
    """One line at start: who the local jobs run as under ``run_as_owner``."""
    import os

    from scheduler.executors.local import switches_user

    if switches_user(True):
        emit("run_as     each local job runs as its owner"
             + ("" if app.settings.run_as_owner_root_jobs else "; root's jobs are refused"))
    else:
        import pwd

        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = f"uid {os.geteuid()}"
        emit(f"run_as_owner needs the agent to run as root; jobs run as {user}")


def _check_sites(app: App, sites: tuple[str, ...]) -> None:
    known = app.queue.sites()
    for s in sites:
        if s not in known:
            from scheduler.errors import NotFound

            raise NotFound(f"unknown site {s!r}: known sites are {', '.join(sorted(known))}")


def _wait_for_database(app: App, interrupted: list[int]) -> bool:
    """Open the store, retrying with backoff (1 s doubling to 60 s) while the database is
    unreachable: a daemon started before its database (boot order, a PostgreSQL restart)
    waits for it, logging one line per try, instead of exiting into a crash loop.

    A database carbonshift cannot use (not SQLite, a newer schema) is not retried.
    Returns ``False`` when stopped (SIGINT/SIGTERM) before the database answered; a
    SIGINT is added to ``interrupted``.
    """
    import threading

    from scheduler.errors import BadDatabase, DatabaseUnreachable, StorageError

    stopped = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            interrupted.append(signum)
        stopped.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    delay = 1.0
    try:
        while True:
            try:
                if getattr(app.store, "read_only", None) is None:
                    return True
                # a full disk: the store only reads; wait for space rather than exit
                message = (f"disk full, retrying in {delay:g} s: {app.settings.db} can only be "
                           "read until space is freed on its disk")
                app.close()
            except BadDatabase:
                raise
            except StorageError as exc:
                trouble = "unreachable" if isinstance(exc, DatabaseUnreachable) else "error"
                message = f"database {trouble}, retrying in {delay:g} s: {exc}"
            click.echo(f"{iso(app.clock.now())} error      {message}")
            sys.stdout.flush()
            if stopped.wait(delay):
                click.echo("daemon     stopped before the database answered")
                return False
            delay = min(60.0, delay * 2)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
