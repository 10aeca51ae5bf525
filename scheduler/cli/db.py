"""``carbonshift db``: apply schema migrations, check the database is consistent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from scheduler.cli.common import echo_json, fmt_time, get_app, json_option, print_table
from scheduler.domain.model import TERMINAL_STATES, JobState
from scheduler.errors import BadDatabase, StorageError

if TYPE_CHECKING:
    from scheduler.storage.base import JobStore, Lease


@click.group("db")
def db() -> None:
    """Database maintenance: upgrade, check."""


@db.command("upgrade")
@json_option
def upgrade(as_json: bool) -> None:
    """Apply pending schema migrations and print the revision the database is now at.

    Opening the database applies them anyway; this makes it explicit (for a deploy step).
    """
    from scheduler.cli.progressbar import progress
    from scheduler.storage.sql.admin import maintenance
    from scheduler.storage.sql.opening import open_store

    settings = get_app().settings
    # opened as it is, so the migrations run here, under the progress bar
    store = open_store(settings.db, migrate=False, create_parents=settings.db_is_default)
    try:
        with progress("db upgrade", as_json=as_json) as step:
            revision = maintenance(store).upgrade(step)
    finally:
        store.close()
    if as_json:
        echo_json({"revision": revision})
    else:
        click.echo(f"database at schema revision {revision}")


@db.command("check")
@json_option
def check(as_json: bool) -> None:
    """Check the database without changing it.

    Runs SQLite's integrity and foreign-key checks, compares the schema revision with this
    carbonshift's, counts jobs by state and lists open runs. Exits 0 when consistent, 1
    otherwise (a schema that needs `carbonshift db upgrade` counts as inconsistent).
    """
    from scheduler.storage.sql.admin import HEAD_REVISION
    from scheduler.storage.sql.engine import safe_url, sqlite_path
    from scheduler.storage.sql.opening import open_store

    url = get_app().settings.db
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise BadDatabase(
            f"no database at {path}: nothing to check (`carbonshift db upgrade` creates one)"
        )
    store = open_store(url, migrate=False)
    try:
        report = _check(store, HEAD_REVISION)
    finally:
        store.close()
    report["database"] = safe_url(url)
    if as_json:
        echo_json(report)
    else:
        _print_report(report)
    if not report["consistent"]:
        # SystemExit, not click's Exit: with standalone_mode=False click would turn Exit
        # into a return value that run_cli does not propagate.
        raise SystemExit(1)


def _check(store: JobStore, head: str) -> dict[str, Any]:
    from scheduler.storage.sql.admin import maintenance

    admin = maintenance(store)  # revision, integrity, counts: the store's maintenance face
    problems: list[str] = []
    warnings: list[str] = []
    revision = admin.revision()
    if revision != head:
        problems.append(
            f"schema revision {revision or 'none'} is not {head}: run `carbonshift db upgrade`"
        )
    problems.extend(admin.integrity_problems())
    by_state: dict[str, int] = {}
    open_runs: list[dict[str, Any]] = []
    planner: dict[str, Any] | None = None
    serving: list[dict[str, Any]] = []
    if revision == head:
        try:
            _check_rows(store, by_state, open_runs, problems, warnings)
            lease = store.get_lease("planner")
            if lease is not None:
                planner = _lease_dict(lease)
            # which agents serve which sites (scheduler/presence.py); an ended one is kept
            # until an agent serves the site again
            from scheduler.presence import LEASE_PREFIX

            serving = [{"site": lease.name[len(LEASE_PREFIX):], **_lease_dict(lease)}
                       for lease in store.leases(LEASE_PREFIX)]
        except StorageError as exc:  # a table missing or unreadable
            problems.append(str(exc))
    return {
        "backend": admin.dialect,
        "revision": revision,
        "head": head,
        "jobs_by_state": by_state,
        "jobs_total": sum(by_state.values()),
        "open_runs": open_runs,
        "planner": planner,
        "serving": serving,
        "problems": problems,
        "warnings": warnings,
        "consistent": not problems,
    }


def _lease_dict(lease: Lease) -> dict[str, Any]:
    return {"holder": lease.holder, "term": lease.term, "since": lease.acquired_at,
            "until": lease.until, "live": lease.until > datetime.now(UTC)}


def _check_rows(
    store: JobStore,
    by_state: dict[str, int],
    open_runs: list[dict[str, Any]],
    problems: list[str],
    warnings: list[str],
) -> None:
    """Jobs by state and open runs; an open run of a finished job is a problem, an open
    run whose lease has ended a warning."""
    from scheduler.storage.sql.admin import maintenance

    now = datetime.now(UTC)
    by_state.update(maintenance(store).count_jobs_by_state())
    for run in store.open_runs():
        job = store.get_job(run.job_id)
        expired = run.lease_until is not None and run.lease_until < now
        open_runs.append(
            {
                "run": run.id,
                "job": run.job_id,
                "job_state": str(job.state),
                "host": run.host,
                "started_at": run.started_at,
                "lease_until": run.lease_until,
                "lease_expired": expired,
            }
        )
        if expired:
            warnings.append(
                f"run {run.id} of job {run.job_id}: its lease ended at {run.lease_until} "
                f"(host {run.host or '?'} stopped renewing it); an agent will reclaim it"
            )
        if job.state in TERMINAL_STATES:
            problems.append(
                f"run {run.id} is still open but job {run.job_id} is {job.state}"
            )
    running = by_state.get(JobState.RUNNING.value, 0)
    if running > len({r["job"] for r in open_runs}):
        warnings.append(
            f"{running} running jobs but open runs for only "
            f"{len({r['job'] for r in open_runs})} (a launch in progress, or a lost host)"
        )


def _lease_line(lease: dict[str, Any]) -> str:
    until = "lease until " + fmt_time(lease["until"]) if lease["live"] else "lease ended"
    return f"{lease['holder']} (term {lease['term']}, since {fmt_time(lease['since'])}, {until})"


def _print_report(report: dict[str, Any]) -> None:
    click.echo(f"database: {report['database']} ({report['backend']})")
    click.echo(f"schema revision: {report['revision'] or 'none'} (this carbonshift: {report['head']})")
    planner = report.get("planner")
    if planner:  # which agent plans (scheduler/leader.py); an ended lease waits for a taker
        click.echo(f"planner: {_lease_line(planner)}")
    for lease in report.get("serving", []):  # "*": an agent of every site
        click.echo(f"serves {lease['site']}: {_lease_line(lease)}")
    if report["jobs_by_state"]:
        print_table(
            ["state", "jobs"],
            sorted(report["jobs_by_state"].items()),
            title=f"jobs: {report['jobs_total']}",
        )
    else:
        click.echo("jobs: 0")
    if report["open_runs"]:
        print_table(
            ["run", "job", "job state", "host", "started", "lease until", "lease"],
            [
                (
                    r["run"],
                    r["job"],
                    r["job_state"],
                    r["host"] or "-",
                    fmt_time(r["started_at"]),
                    fmt_time(r["lease_until"]),
                    "expired" if r["lease_expired"] else "-",
                )
                for r in report["open_runs"]
            ],
            title=f"open runs: {len(report['open_runs'])}",
        )
    else:
        click.echo("open runs: 0")
    for line in report["warnings"]:
        click.echo(f"warning: {line}")
    for line in report["problems"]:
        click.echo(f"problem: {line}")
    click.echo("consistent" if report["consistent"] else "NOT consistent")
