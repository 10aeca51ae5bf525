"""Opening a store: bad databases are refused untouched, new files are private, the schema
is migrated once and matches the tables, and `carbonshift db upgrade/check` work."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from scheduler.cli import main
from scheduler.errors import BadDatabase, CarbonshiftError, StorageError
from scheduler.model import Job, JobState, Run
from scheduler.storage.store import (
    HEAD_REVISION,
    KNOWN_REVISIONS,
    MIGRATIONS_DIR,
    open_store,
)
from scheduler.storage.tables import metadata

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def a_job() -> Job:
    return Job(name="j", argv=["true"], duration_s=60, zone="GB", submitted_at=T0,
               earliest_start=T0, latest_start=T0 + timedelta(hours=1), deadline_at=None)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` and its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_refused(url: str, *needles: str) -> BadDatabase:
    with pytest.raises(BadDatabase) as info:
        open_store(url)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return info.value


# -- bad databases: refused, nothing written -------------------------------------------------


@contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """Make ``directory`` refuse new files, even to root (who ignores mode bits)."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o700)
        return
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode:
        pytest.skip("running as root without chattr +i: cannot make a directory unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@pytest.mark.parametrize("relative", ["cs.db", "new/sub/cs.db"])
def test_unwritable_directory_is_refused(tmp_path: Path, relative: str) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        assert_refused(f"sqlite:///{locked / relative}", str(locked))
    assert list(locked.iterdir()) == []


def test_directory_is_refused(tmp_path: Path) -> None:
    assert_refused(f"sqlite:///{tmp_path}", str(tmp_path), "is a directory")
    assert list(tmp_path.iterdir()) == []


def test_parent_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    assert_refused(f"sqlite:///{tmp_path / 'plain' / 'cs.db'}", "not a directory")
    assert snapshot(tmp_path) == {"plain": b"x"}


@pytest.mark.parametrize(
    "content",
    [b"name,value\nalpha,1\n" * 20, b"SQLite format 3\x00" + b"\xff" * 2000],
    ids=["csv", "sqlite-header-garbage-body"],
)
def test_non_sqlite_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    assert_refused(f"sqlite:///{path}", str(path))
    assert snapshot(tmp_path) == {"notes.db": content}


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE stuff (x)")
    before = snapshot(tmp_path)
    assert_refused(f"sqlite:///{path}", str(path), "not a carbonshift database")
    assert snapshot(tmp_path) == before


def test_newer_schema_revision_is_refused_untouched(tmp_path: Path, sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    store.add_job(a_job())
    store.close()
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    conn.close()
    before = path.read_bytes()
    assert_refused(sqlite_url, str(path), "9999_future", "upgrade carbonshift")
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            "9999_future",)
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
    conn.close()


@pytest.mark.postgres
def test_newer_schema_revision_is_refused_on_postgres(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    store.close()
    assert_refused(pg_url, "9999_future", "upgrade carbonshift")
    with pytest.raises(BadDatabase):
        open_store(pg_url, migrate=False)
    # nothing changed: read it back with the driver alone
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username,
                         dbname=url.database, options=url.query["options"]) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("9999_future",)]
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)


def test_bad_urls(tmp_path: Path) -> None:
    assert_refused("mysql://u@localhost/db", "sqlite:///")
    with pytest.raises(BadDatabase):
        open_store("::not a url::")


@pytest.mark.postgres
def test_unreachable_postgres_names_host_and_hides_password() -> None:
    with pytest.raises(StorageError) as info:
        open_store("postgresql+psycopg://bob:s3cr3t-pw@127.0.0.1:1/nowhere")
    message = str(info.value)
    assert "cannot reach database at 127.0.0.1:1" in message
    assert "check it is running" in message
    assert "s3cr3t-pw" not in message and "\n" not in message


# -- new files, pragmas, locking -------------------------------------------------------------


def test_new_database_is_private(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "cs.db"
    store = open_store(f"sqlite:///{path}", create_parents=True)
    store.add_job(a_job())  # creates the WAL beside it
    for d in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for f in path.parent.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f
    store.close()


def test_sqlite_pragmas(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    store.close()
    raw = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # persistent
    raw.close()


def test_a_held_lock_becomes_a_storage_error(sqlite_url: str) -> None:
    store = open_store(sqlite_url, busy_timeout_s=0.2)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="busy timeout") as info:
            store.add_job(a_job())
        assert isinstance(info.value, CarbonshiftError)
        assert type(info.value).__module__.startswith("scheduler")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.add_job(a_job()).id == 1  # fine once the lock is gone
    store.close()


# -- migrations ---------------------------------------------------------------------------------


def test_head_revision_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_current_head() == HEAD_REVISION
    oldest_first = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert tuple(oldest_first) == KNOWN_REVISIONS


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrated_schema_matches_the_tables(
    request: pytest.FixtureRequest, sqlite_url: str, backend: str
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = sqlite_url if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = open_store(url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    store.close()
    assert diff == []


def test_opening_an_up_to_date_database_does_not_import_alembic(sqlite_url: str) -> None:
    open_store(sqlite_url).close()
    code = (
        "import sys; from scheduler.storage.store import open_store; "
        f"s = open_store({sqlite_url!r}); s.add_job; s.close(); "
        "print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_migrate_false_leaves_the_schema_alone(sqlite_url: str) -> None:
    store = open_store(sqlite_url, migrate=False)
    assert store.revision() is None
    with pytest.raises(StorageError):
        store.list_jobs()
    assert store.upgrade() == HEAD_REVISION
    assert store.list_jobs() == []
    store.close()


# -- carbonshift db -------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No config or database from the person running the tests."""
    for name in list(os.environ):
        if name.startswith("CARBONSHIFT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / ".local" / "share"))


def check_json(db: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main(["--db", db, "db", "check", "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_db_upgrade_and_check(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    backend: str,
) -> None:
    db = str(tmp_path / "cs.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    assert main(["--db", db, "db", "upgrade"]) == 0
    assert HEAD_REVISION in capsys.readouterr().out
    code, report = check_json(db, capsys)
    assert code == 0, report
    assert report["consistent"] is True and report["revision"] == HEAD_REVISION
    assert report["jobs_by_state"] == {} and report["open_runs"] == []
    assert "password" not in json.dumps(report)

    url = db if backend == "postgres" else f"sqlite:///{db}"
    store = open_store(url)
    jid = store.add_job(a_job()).id or 0
    store.add_job(a_job())
    run = store.add_run(Run(job_id=jid, site="local", executor="local", started_at=T0))
    store.transition(jid, JobState.RUNNING, expected={JobState.PENDING})
    code, report = check_json(db, capsys)
    assert code == 0, report
    assert report["jobs_by_state"] == {"pending": 1, "running": 1}
    assert [r["run"] for r in report["open_runs"]] == [run.id]  # type: ignore[index]
    assert report["open_runs"][0]["lease_expired"] is False  # type: ignore[index]
    store.renew_leases([run.id or 0], T0)  # a lease that ended long ago: a warning only
    code, report = check_json(db, capsys)
    assert code == 0 and report["open_runs"][0]["lease_expired"] is True  # type: ignore[index]
    assert any("lease ended" in w for w in report["warnings"])  # type: ignore[attr-defined]

    store.transition(jid, JobState.SUCCEEDED, expected={JobState.RUNNING})  # run left open
    store.close()
    code, report = check_json(db, capsys)
    assert code == 1
    assert any("still open" in p for p in report["problems"])  # type: ignore[attr-defined]
    capsys.readouterr()
    assert main(["--db", db, "db", "check"]) == 1
    assert "NOT consistent" in capsys.readouterr().out


@pytest.mark.usefixtures("cli_env")
def test_db_check_finds_broken_foreign_keys_and_old_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cs.db"
    open_store(f"sqlite:///{db}").close()
    raw = sqlite3.connect(db)  # foreign keys are off by default on a plain connection
    raw.execute("INSERT INTO events (job_id, at, kind, message) "
                "VALUES (42, '2026-05-01 12:00:00.000000', 'x', 'orphan')")
    raw.commit()
    raw.close()
    code, report = check_json(str(db), capsys)
    assert code == 1
    assert any("foreign key" in p and "events" in p for p in report["problems"])  # type: ignore[attr-defined]

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a valid, empty SQLite file: no schema yet
    code, report = check_json(str(empty), capsys)
    assert code == 1 and report["revision"] is None

    assert main(["--db", str(tmp_path / "missing.db"), "db", "check"]) == 2
    assert not (tmp_path / "missing.db").exists()


def migrate_to(url: str, revision: str, *statements: str) -> None:
    """Create the schema of an older ``revision`` at ``url`` and run ``statements`` on it."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def test_an_older_schema_is_upgraded_on_open_keeping_its_rows(sqlite_url: str) -> None:
    migrate_to(sqlite_url, KNOWN_REVISIONS[0],
               "INSERT INTO policies (name, run_now, interruptible, description) "
               "VALUES ('kept', 0, 0, 'from the first schema')")
    store = open_store(sqlite_url, migrate=False)
    assert store.revision() == KNOWN_REVISIONS[0]
    store.close()
    store = open_store(sqlite_url)
    assert store.revision() == HEAD_REVISION
    assert store.get_policy("kept").description == "from the first schema"
    store.close()


def _open_and_report(url: str, barrier: Any, out: Any) -> None:
    try:
        barrier.wait(60)
        store = open_store(url, create_parents=True)  # the default location's folders too
        out.put(store.revision())
        store.close()
    except BaseException as exc:
        out.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_processes_opening_a_new_database_at_once_all_succeed(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    import multiprocessing

    url = (f"sqlite:///{tmp_path / 'new' / 'cs.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["scheduler.storage.store"])
    n = 3
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_and_report, args=(url, barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(30)
    assert results == [HEAD_REVISION] * n


# -- bounded columns: only closed enums keep a length ------------------------------------------


def _enum_columns() -> dict[tuple[str, str], list[str]]:
    from intensity.model import Kind, Signal, Source
    from probes.model import Method
    from scheduler.storage.store import FAILURE_KIND

    return {
        ("jobs", "state"): [s.value for s in JobState],
        ("runs", "state"): [s.value for s in JobState],
        ("jobs", "pause_mode"): ["stop", "checkpoint"],
        ("intensity_points", "kind"): [k.value for k in Kind],
        ("intensity_points", "signal"): [s.value for s in Signal],
        ("intensity_points", "source"): [s.value for s in Source],
        ("intensity_fetches", "kind"): [k.value for k in Kind] + [FAILURE_KIND],
        ("samples", "method"): [m.value for m in Method],
    }


def test_only_enum_columns_have_a_length_and_every_value_fits() -> None:
    enums = _enum_columns()
    bounded = {(table.name, col.name): col.type.length for table in metadata.tables.values()
               for col in table.columns if getattr(col.type, "length", None) is not None}
    assert set(bounded) == set(enums)
    for key, length in bounded.items():
        assert max(len(v) for v in enums[key]) <= length, key


@pytest.mark.postgres
def test_postgres_upgrade_widens_the_text_columns_keeping_rows(pg_url: str) -> None:
    migrate_to(pg_url, "0003",
               "INSERT INTO policies (name, run_now, interruptible, description) "
               "VALUES ('kept', false, false, 'from 0003')")
    store = open_store(pg_url)
    assert store.revision() == HEAD_REVISION
    assert store.get_policy("kept").description == "from 0003"
    with store.engine.connect() as conn:
        lengths = {(r[0], r[1]): r[2] for r in conn.execute(text(
            "SELECT table_name, column_name, character_maximum_length "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND character_maximum_length IS NOT NULL AND table_name <> 'alembic_version'"))}
    assert set(lengths) == set(_enum_columns())
    job = store.add_job(a_job())
    assert job.id is not None
    run = store.add_run(Run(job_id=job.id, site="local", executor="local", started_at=T0,
                            handle="/" + "d" * 5000 + "/run-1"))
    assert run.id is not None and store.get_run(run.id).handle == run.handle
    store.close()
