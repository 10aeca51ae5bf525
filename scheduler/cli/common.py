"""What every command shares: the lazily built app, error translation, output helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from scheduler.errors import CarbonshiftError
from scheduler.present import json_text

if TYPE_CHECKING:
    from scheduler.app import App
    from scheduler.clock import Clock


class CliState:
    """Global options, and the :class:`~scheduler.app.App` built from them on first use."""

    def __init__(self, db: str | None, config: str | None, utc: bool, verbose: int,
                 replay: Sequence[str] = (), clock: Clock | None = None) -> None:
        self.db = db
        self.config = config
        self.utc = utc
        self.verbose = verbose
        #: ``--replay ZONE=FILE`` entries (files made absolute) and the ``--clock``
        self.replay = tuple(replay)
        self.clock = clock
        self._app: App | None = None

    def app(self) -> App:
        if self._app is None:
            from scheduler.app import App
            from scheduler.config import current_environ

            self._app = App.from_cli(db=self.db, config=self.config, env=current_environ(),
                                     replay=self.replay, clock=self.clock)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


def replay_entries(values: Sequence[str]) -> list[str]:
    """``--replay ZONE=FILE`` values checked (the form, a readable file) with each file made
    absolute, so every process started from here reads the same one."""
    if not values:
        return []
    import os

    from intensity.errors import BadTrace
    from intensity.providers.replay import _zone_trace, parse_zone_file

    out = []
    for value in values:
        zone, path = parse_zone_file(value)
        full = os.path.abspath(os.path.expanduser(path))
        if not os.path.isfile(full) or not os.access(full, os.R_OK):
            raise BadTrace(f"--replay {value!r}: {path!r} is not a readable file: give the path "
                           "of an Electricity Maps portal CSV or a time,intensity_g_per_kwh CSV")
        _zone_trace(zone, full)  # its content, before any command reads or writes anything
        out.append(f"{zone}={full}")
    return out


def check_output_file(path: str, what: str) -> str:
    """A file a command will write (``--svg FILE``): its folder must exist and be writable and
    the path must not be a folder, checked before anything is read or written."""
    import os

    from scheduler.errors import BadInput

    full = os.path.abspath(os.path.expanduser(path))
    folder = os.path.dirname(full)
    if not path.strip() or os.path.isdir(full):
        raise BadInput(f"{what} {path!r} is not a file name: give a path like chart.svg")
    if not os.path.isdir(folder):
        raise BadInput(f"{what} {path!r}: folder {folder!r} does not exist: create it first or "
                       "give a path in an existing folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(f"{what} {path!r}: folder {folder!r} is not writable: give a path in a writable folder")
    return path


def state(ctx: click.Context | None = None) -> CliState:
    ctx = ctx or click.get_current_context()
    obj = ctx.find_object(CliState)
    if obj is None:  # a command invoked on its own, in tests
        obj = CliState(None, None, False, 0)
        ctx.obj = obj
    return obj


def get_app(ctx: click.Context | None = None) -> App:
    return state(ctx).app()


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if line else "unknown error"


def error_exit_code(exc: BaseException) -> int | None:
    """Exit code for a package error, or ``None`` if ``exc`` is not one of ours."""
    if isinstance(exc, CarbonshiftError):
        return exc.exit_code
    try:
        from intensity.errors import (
            BadTrace,
            IntensityError,
            UnknownProvider,
            UnknownZone,
        )

        if isinstance(exc, BadTrace | UnknownZone | UnknownProvider):
            return 2
        if isinstance(exc, IntensityError):
            return 1
    except ImportError:  # pragma: no cover
        pass
    try:
        from probes.errors import ProbeError

        if isinstance(exc, ProbeError):
            return 1
    except ImportError:  # pragma: no cover
        pass
    return None


def run_cli(group: click.Group, argv: list[str], *, debug: bool = False) -> int:
    """Run ``group`` and map errors to one line on stderr and an exit code."""
    try:
        rv = group.main(args=argv, prog_name="carbonshift", standalone_mode=False)
        # without standalone mode click returns ctx.exit()'s code instead of exiting
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except click.exceptions.Abort:
        click.echo("carbonshift: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("carbonshift: interrupted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        msg = exc.format_message()
        usage = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            usage = f" (see `{exc.ctx.command_path} --help`)"
        click.echo(f"carbonshift: {_one_line(msg)}{usage}", err=True)
        return 2 if exc.exit_code in (1, 2) else exc.exit_code
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException as exc:
        code = error_exit_code(exc)
        if debug or code is None:
            if code is None and not debug:
                click.echo(
                    f"carbonshift: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
                    "(rerun with CARBONSHIFT_DEBUG=1 for details)",
                    err=True,
                )
                return 1
            raise
        click.echo(f"carbonshift: {_one_line(str(exc))}", err=True)
        return code


def echo_json(data: Any) -> None:
    click.echo(json_text(data))  # json.dumps(data, default=json_default, indent=2, ensure_ascii=False)


def fmt_time(value: datetime | None, *, utc: bool | None = None) -> str:
    """A time for people: local time by default, UTC with ``--utc``."""
    if value is None:
        return "-"
    use_utc = state().utc if utc is None else utc
    if use_utc:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    """A table on stdout (rich when stdout is a terminal, plain aligned text otherwise)."""
    rows = [[("-" if c is None else str(c)) for c in r] for r in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # cells and titles are Text, never markup: a name like `train[lr=0.1]` or `a[/]b`
        # prints as typed
        table = Table(title=Text(title) if title else None, header_style="bold")
        for h in headers:
            table.add_column(Text(h))
        for r in rows:
            table.add_row(*(Text(c) for c in r))
        Console().print(table)
        return
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    if title:
        click.echo(title)
    click.echo("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
    for r in rows:
        click.echo("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)
