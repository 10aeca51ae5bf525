"""``carbonshift dashboard``: a read-only web page on localhost."""

from __future__ import annotations

import click

from scheduler.cli.common import get_app, state


@click.command()
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port on 127.0.0.1 (0: any free port).")
@click.option("--since", default="30d", show_default=True, metavar="WHEN",
              help="History and report window: a duration ago, an ISO time, or 'all'.")
def dashboard(port: int, since: str) -> None:
    """Serve a read-only page on http://127.0.0.1:PORT/ until Ctrl-C.

    \b
    The queue with planned windows over the forecast, recent history with savings, and
    the report chart; JSON at /api/queue, /api/history, /api/report, /api/forecast and
    /api/job/ID; SVG charts at /charts/report.svg and /charts/job/ID.svg. It binds the
    loopback address only: use an SSH tunnel to look at it from elsewhere.
    """
    from scheduler.cli.report import display_tz
    from scheduler.web.server import make_server

    app = get_app()
    _ = app.store  # open (and check) the database before listening
    server = make_server(app, port=port, tz=display_tz(state().utc), since=since)
    click.echo(f"carbonshift dashboard on {server.url} (read-only; Ctrl-C to stop)")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    click.echo("dashboard stopped")
