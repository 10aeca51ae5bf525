"""Security: argv not shell, bound SQL parameters, secrets kept out of files, output and the
database, owner-only files, owner checks on cancel, and the job's environment."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from scheduler.app import App
from scheduler.errors import NotOwner
from scheduler.model import JobState
from tests.cli.conftest import CS
from tests.integration.conftest import make_app, request, run_daemon

TOKEN = "tok-7c1e0f9d2b-SECRET"


# -- argv, never a shell unless asked ---------------------------------------------------------
def test_job_arguments_are_argv_not_shell(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    app = make_app(tmp_path)
    try:
        hostile = [f"; rm -rf {victim}", "$(touch PWNED)", "`touch PWNED2`", "| cat /etc/passwd"]
        plain = app.queue.submit(request(["echo", *hostile], run_now=True)).job
        req = request(["touch SHELLED; echo $(echo expanded)"], run_now=True)
        req.shell = True
        shelled = app.queue.submit(req).job
        run_daemon(app)
        run = app.store.runs_for_job(plain.id)[-1]  # type: ignore[arg-type]
        out = Path(run.out_path).read_text()  # type: ignore[arg-type]
        assert out.strip() == " ".join(hostile)  # passed through literally
        assert (victim / "keep").exists()
        assert not list(Path.cwd().glob("PWNED*")) and not list(tmp_path.glob("PWNED*"))
        # --shell is the one way into a shell, and it does run one
        srun = app.store.runs_for_job(shelled.id)[-1]  # type: ignore[arg-type]
        assert Path(srun.out_path).read_text().strip() == "expanded"  # type: ignore[arg-type]
        assert (Path.cwd() / "SHELLED").exists()
        (Path.cwd() / "SHELLED").unlink()
    finally:
        app.close()


# -- names, commands and environment values are bound parameters ------------------------------
INJECTIONS = ["'); DROP TABLE jobs;--", "\"; DELETE FROM runs; --", "x' OR '1'='1", "Robert'); --", "名前 ☃ 🚀"]


def test_hostile_strings_round_trip(cs: CS) -> None:
    for i, s in enumerate(INJECTIONS):
        r = cs("submit", "--json", "--duration", "1h", "--name", s, "--env", f"V{i}={s}", "--", "echo", s)
        assert r.code == 0, r.err
        job_id = json.loads(r.out)["id"]
        shown = cs("show", str(job_id), "--json")
        assert shown.code == 0, shown.err
        data = json.loads(shown.out)
        assert data["name"] == s and data["argv"] == ["echo", s]
    con = sqlite3.connect(cs.db_path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        names = [r[0] for r in con.execute("SELECT name FROM jobs ORDER BY id")]
        envs = [json.loads(r[0]) for r in con.execute("SELECT env FROM jobs ORDER BY id")]
    finally:
        con.close()
    assert {"jobs", "runs", "events", "policies"} <= tables
    assert names == INJECTIONS
    assert [e[f"V{i}"] for i, e in enumerate(envs)] == INJECTIONS


# -- secrets ------------------------------------------------------------------------------------
def test_config_with_a_secret_must_be_private(cs: CS) -> None:
    cs.config.write_text(
        f'default_zone = "TRACE"\n[intensity]\nproviders = ["replay"]\ntrace = "{cs.trace}"\n'
        f'[providers.electricitymaps]\ntoken = "{TOKEN}"\n'
    )
    for mode in (0o644, 0o640, 0o604):
        cs.config.chmod(mode)
        r = cs("queue")
        assert r.code == 2 and "chmod 600" in r.err and len(r.err.strip().splitlines()) == 1, r.err
        assert TOKEN not in r.err
    cs.config.chmod(0o600)
    assert cs("queue").code == 0
    shown = cs("config", "show")
    assert shown.code == 0 and TOKEN not in shown.out + shown.err
    as_json = cs("config", "show", "--json") if "--json" in cs("config", "show", "--help").out else shown
    assert TOKEN not in as_json.out


def test_token_never_reaches_output_errors_or_the_database(
    cs: CS, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def echo_token(req: Request) -> Response:  # a server that echoes credentials back
        return Response(json.dumps({"error": f"bad token {req.headers.get('auth-token')}"}), status=401)

    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_handler(echo_token)
    httpserver.expect_request("/v3/carbon-intensity/history").respond_with_handler(echo_token)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(echo_token)
    monkeypatch.setenv("EM_TOKEN", TOKEN)
    cs.config.write_text(
        'default_zone = "DE"\n[intensity]\nproviders = ["electricitymaps"]\ntimeout_s = 2.0\n'
        f'[providers.electricitymaps]\nbase_url = "{httpserver.url_for("").rstrip("/")}"\n'
        'token_env = "EM_TOKEN"\nzones = ["DE"]\n'
    )
    r = cs("-v", "submit", "--json", "--duration", "1h", "--", "true")
    assert r.code == 0, r.err
    assert httpserver.log, "the provider was never asked"
    assert any(req.headers.get("auth-token") == TOKEN for req, _ in httpserver.log)
    data = json.loads(r.out)
    assert data["fallback"] and "401" in data["plan_source"]
    outputs = [r.out, r.err]
    for args in (("show", str(data["id"]), "--json"), ("queue", "--json"), ("history", "--format", "json"),
                 ("config", "show")):
        res = cs(*args)
        outputs += [res.out, res.err]
    assert all(TOKEN not in o for o in outputs)
    for f in cs.db_path.parent.glob("carbonshift.db*"):
        assert TOKEN.encode() not in f.read_bytes(), f


# -- files readable only by their owner ---------------------------------------------------------
def test_database_and_logs_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        app = make_app(tmp_path)
        app.queue.submit(request(["echo", "hi"], run_now=True))
        run_daemon(app)
        app.close()
    finally:
        os.umask(old)
    db = tmp_path / "cs.db"
    for f in [db, *tmp_path.glob("cs.db-*")]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    logs = tmp_path / "data" / "logs"
    for d in [logs, *logs.rglob("*")]:
        want = 0o700 if d.is_dir() else 0o600
        assert stat.S_IMODE(d.stat().st_mode) == want, d


# -- owners: only the owner or an admin cancels ---------------------------------------------------
def _owner_checks(alice: App, mallory: App, admin: App) -> None:
    job = alice.queue.submit(request(["true"], duration="1h", deadline_s=12 * 3600)).job
    assert job.owner == "alice"
    with pytest.raises(NotOwner) as err:
        mallory.queue.cancel(job.id)  # type: ignore[arg-type]
    assert "alice" in str(err.value) and err.value.exit_code == 2
    assert alice.store.get_job(job.id).state is JobState.PLANNED  # type: ignore[arg-type]
    admin.queue.cancel(job.id)  # type: ignore[arg-type]
    other = alice.queue.submit(request(["true"], duration="1h", deadline_s=12 * 3600)).job
    alice.queue.cancel(other.id)  # type: ignore[arg-type]
    assert alice.store.get_job(other.id).state is JobState.CANCELLED  # type: ignore[arg-type]


def _apps(settings_app: App, url: str | None = None) -> tuple[App, App, App]:
    from dataclasses import replace

    settings = replace(settings_app.settings, admins=("ops",))
    if url is not None:
        settings = replace(settings, db=url)
    return tuple(  # type: ignore[return-value]
        App(settings, env=settings_app.env, clock=settings_app.clock, user=u) for u in ("alice", "mallory", "ops")
    )


def test_only_owner_or_admin_cancels_sqlite(tmp_path: Path) -> None:
    base = make_app(tmp_path)
    apps = _apps(base)
    try:
        _owner_checks(*apps)
    finally:
        for a in (*apps, base):
            a.close()


@pytest.mark.postgres
def test_only_owner_or_admin_cancels_on_shared_postgres(tmp_path: Path, pg_url: str) -> None:
    base = make_app(tmp_path)
    apps = _apps(base, pg_url)
    try:
        _owner_checks(*apps)
    finally:
        for a in (*apps, base):
            a.close()


def test_cli_user_is_the_os_user_not_the_environment(cs: CS, monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    for var in ("USER", "LOGNAME", "USERNAME", "LNAME"):
        monkeypatch.setenv(var, "alice")  # pretending to be alice changes nothing
    r = cs("submit", "--json", "--duration", "1h", "--", "true")
    assert r.code == 0, r.err
    shown = json.loads(cs("show", str(json.loads(r.out)["id"]), "--json").out)
    assert shown["owner"] == me


# -- the job's environment ------------------------------------------------------------------------
def test_job_sees_only_what_the_submitter_passed_and_the_allow_list(
    cs: CS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "daemon-secret-42")
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", "daemon-secret-43")
    monkeypatch.setenv("LANG", "C.UTF-8")
    r = cs("submit", "--json", "--now", "--duration", "1m", "--env", "MINE=yes", "--", "env")
    assert r.code == 0, r.err
    job_id = json.loads(r.out)["id"]
    assert cs("run", "--exit-when-idle", "--sample-interval", "1s").code == 0
    out = cs("logs", str(job_id)).out
    assert "MINE=yes" in out and "LANG=C.UTF-8" in out
    assert "daemon-secret" not in out
    from scheduler.queue import ENV_ALLOW_LIST

    names = {m.group(1) for m in re.finditer(r"^([A-Za-z_][A-Za-z0-9_]*)=", out, re.MULTILINE)}
    # what carbonshift tells every job about itself (executors.base.job_environment)
    own = {"CARBONSHIFT_PROGRESS_FILE", "CARBONSHIFT_JOB_ID", "CARBONSHIFT_RUN_ID", "CARBONSHIFT_SITE"}
    extra = names - set(ENV_ALLOW_LIST) - own - {"MINE", "PWD", "SHLVL", "_"}
    assert not extra, extra
    for f in cs.db_path.parent.glob("carbonshift.db*"):
        assert b"daemon-secret" not in f.read_bytes()
