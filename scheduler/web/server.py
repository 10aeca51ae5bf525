"""The dashboard's HTTP server: the standard library's, read-only, on the loopback only.

Routes (GET and HEAD only; anything else is 405):

- ``/``: the page (queue with planned windows over the forecast, recent history with
  savings, report chart);
- ``/api/queue``, ``/api/history?since=7d&limit=100``, ``/api/report?by=day&since=30d``
  (``by=sweep``: each row's ``sweep`` summary), ``/api/sweeps?since=30d&limit=50`` (the
  page's sweeps: one summary each, newest first), ``/api/forecast?zone=GB&hours=48``,
  ``/api/job/ID``: JSON;
- ``/charts/report.svg?by=day&since=30d``, ``/charts/job/ID.svg``: SVG charts;
- ``/healthz``: ``ok``;
- ``/metrics``: Prometheus text format (:mod:`scheduler.metrics`).

Every response carries a strict Content-Security-Policy (no scripts at all) and
``X-Content-Type-Options: nosniff``. The server binds 127.0.0.1 only: the data (job
names, commands, owners) is not for the network. It answers only requests whose ``Host``
is a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``, any port), else 421: a web page
elsewhere that points its own name at 127.0.0.1 (DNS rebinding) cannot read the queue. Every
query parameter is checked and bounded (400 with the reason), unknown ones included, so
no request can hold the server for long.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import tzinfo
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from scheduler.errors import BadInput, CarbonshiftError, NotFound

if TYPE_CHECKING:
    from scheduler.app import App

log = logging.getLogger("carbonshift.web")

LOOPBACK = "127.0.0.1"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_JOB_SVG = re.compile(r"^/charts/job/(\d{1,12})\.svg$")
_JOB_JSON = re.compile(r"^/api/job/(\d{1,12})$")
#: the names a request may give in its ``Host`` header (with any port)
LOOPBACK_HOSTS = frozenset({"localhost", LOOPBACK, "[::1]"})
#: the query parameters each route reads; any other is refused
PARAMS: dict[str, frozenset[str]] = {
    "/api/history": frozenset({"since", "until", "limit"}),
    "/api/report": frozenset({"since", "until", "by", "carbon_price"}),
    "/charts/report.svg": frozenset({"since", "until", "by", "carbon_price"}),
    "/api/forecast": frozenset({"zone", "hours"}),
    "/api/sweeps": frozenset({"since", "until", "limit"}),
}
#: the longest value a query parameter may have
MAX_PARAM_CHARS = 100


class DashboardServer(ThreadingHTTPServer):
    """A threading HTTP server holding the app and the display time zone."""

    daemon_threads = True

    def __init__(self, app: App, tz: tzinfo, port: int, since: str = "30d") -> None:
        self.app = app
        self.tz = tz
        self.since = since
        self.lock = threading.Lock()
        super().__init__((LOOPBACK, port), Handler)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}/"


class Handler(BaseHTTPRequestHandler):
    """Serves the page, the JSON endpoints and the charts."""

    server: DashboardServer
    server_version = "carbonshift-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # the base class's parameter name
        log.info("%s %s", self.address_string(), format % args)

    # -- plumbing -----------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        from scheduler.present import json_default

        body = json.dumps(data, default=json_default, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def do_GET(self) -> None:
        host = _host_name(self.headers.get("Host"))
        if host not in LOOPBACK_HOSTS:
            self._error(421, f"this dashboard answers only to {', '.join(sorted(LOOPBACK_HOSTS))}, "
                        f"not to host {host!r}: open {self.server.url}")
            return
        parts = urlsplit(self.path)
        given = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        route = self._route(parts.path)
        if route is None:
            self._error(404, f"no such page: {parts.path}")
            return
        refused = _bad_params(parts.path, given)
        if refused:
            self._error(400, refused)
            return
        query = {k: v for k, v in given.items() if v}  # a blank value means the default
        try:
            with self.server.lock:
                route(query)
        except (BadInput, NotFound) as exc:
            self._error(404 if isinstance(exc, NotFound) else 400, str(exc))
        except CarbonshiftError as exc:
            self._error(500, str(exc))
        except Exception as exc:  # one bad request must not stop the server
            log.exception("dashboard request %s failed", self.path)
            self._error(500, f"internal error: {type(exc).__name__}")

    do_HEAD = do_GET

    def _not_allowed(self) -> None:
        self._error(405, "the dashboard is read-only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _route(self, path: str) -> Callable[[dict[str, str]], None] | None:
        fixed: dict[str, Callable[[dict[str, str]], None]] = {
            "/": self.page, "/index.html": self.page, "/healthz": self.health,
            "/favicon.ico": self.favicon, "/api/queue": self.api_queue,
            "/api/history": self.api_history, "/api/report": self.api_report,
            "/api/sweeps": self.api_sweeps,
            "/api/forecast": self.api_forecast, "/charts/report.svg": self.report_svg,
            "/metrics": self.metrics,
        }
        if path in fixed:
            return fixed[path]
        svg = _JOB_SVG.match(path)
        if svg is not None:
            svg_id = int(svg.group(1))
            return lambda q: self.job_svg(svg_id)
        js = _JOB_JSON.match(path)
        if js is not None:
            js_id = int(js.group(1))
            return lambda q: self.api_job(js_id)
        return None

    # -- pages ----------------------------------------------------------------------------
    def metrics(self, q: dict[str, str]) -> None:
        from scheduler.metrics import CONTENT_TYPE, render_app

        self._send(200, render_app(self.server.app), CONTENT_TYPE)

    def page(self, q: dict[str, str]) -> None:
        from scheduler.web.page import gather, render_page

        snap = gather(self.server.app, tz=self.server.tz, since=self.server.since)
        self._send(200, render_page(snap).encode("utf-8"), "text/html; charset=utf-8")

    def health(self, q: dict[str, str]) -> None:
        self._send(200, b"ok\n", "text/plain; charset=utf-8")

    def favicon(self, q: dict[str, str]) -> None:
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _since(self, q: dict[str, str], default: str | None):  # type: ignore[no-untyped-def]
        from scheduler.text.times import parse_since

        now = self.server.app.clock.now()
        return (parse_since(q.get("since", default), now, "since") if q.get("since", default) else None,
                parse_since(q.get("until"), now, "until"))

    def api_queue(self, q: dict[str, str]) -> None:
        from scheduler.present import job_dict
        from scheduler.web.page import WAITING

        app = self.server.app
        self._json([job_dict(j) for j in app.store.list_jobs(list(WAITING))])

    def api_job(self, job_id: int) -> None:
        from scheduler.api import Client

        d = Client.from_app(self.server.app).show(job_id)
        p = d.projection
        self._json({
            "job": d.history.as_dict(),
            "events": [{"at": e.at, "kind": e.kind, "message": e.message} for e in d.events],
            "projection": None if p is None else {
                "energy_j": p.energy_j, "power_w": p.power_w, "total_energy_j": p.total_energy_j,
                "total_emissions_g": p.total_emissions_g, "basis": p.basis,
                "fraction_done": p.fraction_done},
        })

    def api_history(self, q: dict[str, str]) -> None:
        from scheduler.history import history_rows

        since, until = self._since(q, "7d")
        limit = _int(q.get("limit"), "limit", 100)
        rows = history_rows(self.server.app.store, since=since, until=until, limit=limit or None)
        self._json([r.as_dict() for r in rows])

    def _report(self, q: dict[str, str]):  # type: ignore[no-untyped-def]
        from scheduler.history import history_rows
        from scheduler.reporting import CarbonPrice, build_report

        app = self.server.app
        since, until = self._since(q, self.server.since)
        price_text = q.get("carbon_price") or app.settings.carbon_price
        price = CarbonPrice.parse(price_text) if price_text else None
        rows = history_rows(app.store, since=since, until=until)
        return build_report(rows, by=q.get("by", "day"), tz=self.server.tz, price=price,
                            since=since, until=until, now=app.clock.now())

    def api_report(self, q: dict[str, str]) -> None:
        from scheduler.present import report_dict
        from scheduler.sweep_summary import report_sweeps

        rep = self._report(q)
        sweeps = report_sweeps(self.server.app, rep.rows) if rep.by == "sweep" else {}
        self._json(report_dict(rep, sweeps))

    def api_sweeps(self, q: dict[str, str]) -> None:
        from scheduler.present import sweep_dict
        from scheduler.web.page import recent_sweeps

        since, until = self._since(q, self.server.since)
        limit = _int(q.get("limit"), "limit", 50)
        found = recent_sweeps(self.server.app, since=since, until=until, limit=limit)
        self._json([sweep_dict(s) for s in found])

    def report_svg(self, q: dict[str, str]) -> None:
        from scheduler.charts import render_svg, report_chart

        self._send(200, render_svg(report_chart(self._report(q))).encode("utf-8"), "image/svg+xml")

    def job_svg(self, job_id: int) -> None:
        from scheduler.charts import job_chart_from_store, render_svg

        app = self.server.app
        chart = job_chart_from_store(app.store, app.store.get_job(job_id), sites=dict(app.queue.sites()),
                                     now=app.clock.now(), tz=self.server.tz)
        self._send(200, render_svg(chart).encode("utf-8"), "image/svg+xml")

    def api_forecast(self, q: dict[str, str]) -> None:
        from scheduler.api import Client

        hours = _number(q.get("hours"), "hours", 48.0)
        answer = Client.from_app(self.server.app).forecast(q.get("zone"), hours=hours)
        self._json({
            "zone": answer.forecast.zone, "source": answer.describe(), "fallback": answer.fallback,
            "points": [{"start": p.start, "end": p.end, "intensity_g_per_kwh": p.intensity_g_per_kwh,
                        "kind": str(p.kind), "provider": p.provider} for p in answer.forecast.points],
        })


def _int(text: str | None, what: str, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadInput(f"{what} {text!r} is not a whole number") from None
    if value <= 0 or value > 100_000:
        raise BadInput(f"{what} {value} is out of range 1..100000")
    return value


def _host_name(header: str | None) -> str:
    """The name in a ``Host`` header, lower case, without its port (``[::1]`` keeps its
    brackets); empty when there is none."""
    text = (header or "").strip().lower()
    if text.startswith("["):
        return text[: text.find("]") + 1] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def _bad_params(path: str, query: dict[str, str]) -> str | None:
    """Why the query cannot be served (an unknown or overlong parameter), or ``None``."""
    known = PARAMS.get(path, frozenset())
    for key, value in query.items():
        if key not in known:
            allowed = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
            return f"unknown query parameter {key[:MAX_PARAM_CHARS]!r} for {path}: {allowed}"
        if len(value) > MAX_PARAM_CHARS:
            return f"query parameter {key} is longer than {MAX_PARAM_CHARS} characters"
    return None


def _number(text: str | None, what: str, default: float) -> float:
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"{what} {text!r} is not a number") from None


def make_server(app: App, *, port: int = 8765, tz: tzinfo, since: str = "30d") -> DashboardServer:
    """A server bound to 127.0.0.1:``port`` (0: any free port); call ``serve_forever``.
    ``since`` is the page's window (``30d``, an ISO time or ``all``)."""
    from scheduler.text.times import parse_since

    parse_since(since, app.clock.now(), "--since")  # refuse a bad window before listening
    try:
        return DashboardServer(app, tz, port, since)
    except OSError as exc:
        raise BadInput(f"cannot listen on {LOOPBACK}:{port}: {exc.strerror} (try another --port)") from None


class _MetricsHandler(BaseHTTPRequestHandler):
    """``/metrics`` alone, for ``carbonshift run --metrics-port``."""

    server: MetricsServer
    server_version = "carbonshift-metrics"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        from scheduler.metrics import CONTENT_TYPE, render_app

        if urlsplit(self.path).path != "/metrics":
            body, status, ctype = b"only /metrics here\n", 404, "text/plain; charset=utf-8"
        else:
            try:
                with self.server.lock:
                    body = render_app(self.server.app)
                status, ctype = 200, CONTENT_TYPE
            except Exception as exc:  # a failed scrape must not stop the daemon
                log.warning("metrics scrape failed: %s", exc)
                body, status, ctype = f"scrape failed: {exc}\n".encode(), 500, "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: App, port: int) -> None:
        self.app = app
        self.lock = threading.Lock()
        super().__init__((LOOPBACK, port), _MetricsHandler)


def serve_metrics(app: App, port: int) -> MetricsServer:
    """Start serving ``/metrics`` on the loopback in a background thread."""
    try:
        server = MetricsServer(app, port)
    except OSError as exc:
        raise BadInput(f"--metrics-port {port}: cannot listen on {LOOPBACK}:{port} "
                       f"({exc.strerror or exc}): choose another port, or 0 for any free one") from None
    threading.Thread(target=server.serve_forever, name="carbonshift-metrics", daemon=True).start()
    return server
