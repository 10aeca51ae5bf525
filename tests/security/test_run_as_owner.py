"""``run_as_owner``: an agent running as root starts each local job as its owner.

A real daemon on an accelerated clock runs real jobs; the job's own ``id`` says who it
ran as. Needs root (CI runs as root); skipped elsewhere.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.model import JobState
from tests.cli.conftest import CS
from tests.integration.conftest import make_app, request, run_daemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs the agent to run as root")

WHO = ["/bin/sh", "-c", 'id -u; id -g; echo "$HOME $USER $LOGNAME"']


def _run_one(app: App, owner: str, argv: list[str] = WHO) -> tuple[JobState, list[str], str]:
    """Submit ``argv`` as ``owner``, run a daemon until idle: the job's state, its runs'
    reasons then its events, and its stdout. Asserts it had one run (none retried)."""
    app.user = owner
    job = app.queue.submit(request(argv, run_now=True)).job
    assert job.id is not None
    _, lines = run_daemon(app, timeout_s=30)
    runs = app.store.runs_for_job(job.id)
    assert len(runs) == 1, lines
    out = Path(runs[-1].out_path).read_text() if runs and runs[-1].out_path and os.path.exists(runs[-1].out_path) else ""
    notes = [r.reason or "" for r in runs] + [e.message for e in app.store.events_for_job(job.id)]
    return app.store.get_job(job.id).state, notes, out


def test_job_runs_as_its_owner_with_its_home(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    app = make_app(tmp_path, run_as_owner=True)
    try:
        state, notes, out = _run_one(app, "nobody")
    finally:
        app.close()
    assert state is JobState.SUCCEEDED, notes
    uid, gid, env = out.splitlines()[:3]
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert env == f"{nobody.pw_dir} nobody nobody"


def test_job_of_a_user_unknown_here_fails_once_saying_who(tmp_path: Path) -> None:
    app = make_app(tmp_path, run_as_owner=True)
    try:
        state, notes, _ = _run_one(app, "cs-no-such-user")
    finally:
        app.close()
    assert state is JobState.FAILED
    assert any("'cs-no-such-user', not a user of this machine" in n and "create the user" in n
               for n in notes), notes


def test_root_job_is_refused_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "refused").mkdir()
    (tmp_path / "allowed").mkdir()
    app = make_app(tmp_path / "refused", run_as_owner=True)
    try:
        state, notes, _ = _run_one(app, "root")
    finally:
        app.close()
    assert state is JobState.FAILED
    assert any("run_as_owner_root_jobs = true" in n for n in notes), notes
    app = make_app(tmp_path / "allowed", run_as_owner=True, run_as_owner_root_jobs=True)
    try:
        state, notes, out = _run_one(app, "root")
    finally:
        app.close()
    assert state is JobState.SUCCEEDED, notes
    assert out.splitlines()[0] == "0"


def test_without_the_setting_jobs_run_as_the_agent(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        state, notes, out = _run_one(app, "nobody")
    finally:
        app.close()
    assert state is JobState.SUCCEEDED, notes
    assert out.splitlines()[0] == str(os.geteuid())


def test_run_flag_says_who_jobs_run_as(cs: CS) -> None:
    r = cs("run", "--run-as-owner", "--exit-when-idle")
    assert r.code == 0, r.out
    assert "run_as     each local job runs as its owner; root's jobs are refused" in r.out
