"""``carbonshift sweep stop ID``: stop launching a sweep's trials (see :mod:`scheduler.sweeps`)."""

from __future__ import annotations

import click

from scheduler.cli.common import echo_json, get_app, json_option


@click.group()
def sweep() -> None:
    """Sweeps: trials submitted together with `submit --array` or `--sweep FILE`."""


@sweep.command("stop")
@click.argument("ref", metavar="ID")
@json_option
def stop(ref: str, as_json: bool) -> None:
    """Stop sweep ID (s3, or 3): running trials finish, waiting ones are skipped.

    `carbonshift cancel s3` cancels the running trials too.
    """
    from scheduler.domain.model import sweep_ref
    from scheduler.sweeps import parse_ref, stop_by_user

    _, sweep_id = parse_ref(ref)  # s3, or a plain 3: only a sweep is meant here
    app = get_app()
    stopped, skipped, running = stop_by_user(app, sweep_id, app.clock.now())
    if as_json:
        echo_json({"sweep": sweep_ref(sweep_id), "id": sweep_id, "stopped_at": stopped.stopped_at,
                   "stop_reason": stopped.stop_reason, "skipped": skipped, "running": running})
        return
    click.echo(f"sweep {sweep_ref(sweep_id)} stopped: {len(skipped)} waiting trial"
               f"{'s' if len(skipped) != 1 else ''} skipped, {len(running)} running "
               f"trial{'s' if len(running) != 1 else ''} will finish")
