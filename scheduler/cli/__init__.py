"""The ``carbonshift`` command line.

Subcommands live in their own modules and are imported only when invoked, so
``carbonshift --help`` stays fast. Every error the packages raise becomes one line on
stderr and an exit code (2 for bad input, 1 otherwise); no traceback reaches the user
unless ``CARBONSHIFT_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "submit": ("scheduler.cli.jobs", "submit", "Submit a job with a carbon deadline policy."),
    "queue": ("scheduler.cli.jobs", "queue", "List waiting and running jobs with their plan."),
    "show": ("scheduler.cli.jobs", "show", "Show one job: plan, runs, energy, emissions."),
    "cancel": ("scheduler.cli.jobs", "cancel", "Cancel a job (terminates it if running)."),
    "logs": ("scheduler.cli.jobs", "logs", "Print a job's stdout and stderr."),
    "history": ("scheduler.cli.jobs", "history", "Finished jobs with energy, emissions and savings."),
    "policy": ("scheduler.cli.policy", "policy", "Manage named carbon deadline policies."),
    "run": ("scheduler.cli.daemon", "run", "Run the daemon: plan, wait, launch, measure."),
    "demo": ("scheduler.cli.demo", "demo", "Run the offline demo on a replayed trace."),
    "db": ("scheduler.cli.db", "db", "Database maintenance: upgrade, check."),
    "forecast": ("scheduler.cli.forecast", "forecast", "Show a zone's forecast and best window."),
    "zones": ("scheduler.cli.forecast", "zones", "List known zones and their providers."),
    "wait-window": ("scheduler.cli.forecast", "wait_window", "Wait for the cleanest window, then exit (for scripts)."),
    "measure": ("scheduler.cli.measure", "measure", "Run a command now and measure its energy."),
    "probes": ("scheduler.cli.measure", "probes", "What this machine can measure, and why not."),
    "site": ("scheduler.cli.site", "site", "Manage sites (zone, executor, capacity, PUE)."),
    "simulate": ("scheduler.cli.simulate", "simulate", "What would carbon-aware scheduling save?"),
    "report": ("scheduler.cli.report", "report", "Aggregate energy, emissions and savings."),
    "sweep": ("scheduler.cli.sweep", "sweep", "Stop a sweep's trials (submit --array/--sweep)."),
    "wait": ("scheduler.cli.jobs", "wait", "Wait for a job, showing live progress."),
    "config": ("scheduler.cli.configcmd", "config", "Show, locate or create the config file."),
    "dashboard": ("scheduler.cli.dashboard", "dashboard", "Serve a read-only web page."),
    "completion": ("scheduler.cli.completion", "completion", "Print a shell completion script (bash, zsh, fish)."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, spec in COMMANDS.items() if _available(spec[0]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None or not _available(spec[0]):
            return None
        module = importlib.import_module(spec[0])
        cmd = getattr(module, spec[1])
        assert isinstance(cmd, click.Command)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _version() -> str:
    from carbonshift import __version__

    return __version__


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"carbonshift, version {_version()}")
        ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db", metavar="URL", help="Database URL or SQLite path [env CARBONSHIFT_DB].")
@click.option("--config", "config", metavar="FILE", help="Config file [env CARBONSHIFT_CONFIG].")
@click.option("--replay", "replay", multiple=True, metavar="ZONE=FILE",
              help="Serve ZONE's carbon intensity from FILE (Electricity Maps portal CSV or "
                   "time,intensity_g_per_kwh), first in the provider chain (repeatable).")
@click.option("--clock", "clock", metavar="ISO[*FACTOR]",
              help="Start the clock at ISO, FACTOR times faster than real time [env CARBONSHIFT_CLOCK].")
@click.option("--utc", is_flag=True, help="Show times in UTC instead of local time.")
@click.option("-v", "--verbose", count=True, help="More detail (repeat for debug).")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
@click.pass_context
def cli(ctx: click.Context, db: str | None, config: str | None, replay: tuple[str, ...],
        clock: str | None, utc: bool, verbose: int) -> None:
    """carbonshift: run ML training jobs when and where the grid is cleanest.

    Submit jobs with a deadline; the daemon (`carbonshift run`) delays or relocates each one
    into its lowest-carbon window, measures the energy it really used, and records the
    emissions and the savings against running it at once.

    Exit codes: 0 ok, 1 runtime failure, 2 bad input, 130 interrupted; `wait` and
    `submit --wait` exit with the job's own exit code.
    """
    import logging

    from scheduler.cli.common import CliState, replay_entries

    # warnings (a provider failing, a probe degrading) are recorded on the job; on the
    # terminal they show with -v
    level = logging.ERROR if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    sim_clock = None
    if clock is not None:
        from scheduler.app import clock_from_env
        from scheduler.errors import BadInput

        if not clock.strip():
            raise BadInput("--clock is empty: give ISO[*FACTOR], like 2023-06-14T16:00Z*3600")
        sim_clock = clock_from_env(clock, what="--clock")
    ctx.obj = CliState(db=db, config=config, utc=utc, verbose=verbose,
                       replay=replay_entries(replay), clock=sim_clock)
    ctx.call_on_close(ctx.obj.close)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the CLI, turning package errors into one line."""
    from scheduler.cli.common import run_cli

    return run_cli(cli, argv if argv is not None else sys.argv[1:], debug=bool(os.environ.get("CARBONSHIFT_DEBUG")))
