"""The light SQLite reader behind `carbonshift queue`: the same answer as the store, on a
healthy current database only, read-only; anything else is left to the full store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from scheduler.model import JobState
from scheduler.storage import lite
from scheduler.storage.store import HEAD_REVISION, open_store
from tests.storage.test_contract import QUEUE_ORDER, WAITING_AND_RUNNING, add_queue, make_job


@pytest.fixture
def url(sqlite_url: str) -> str:
    store = open_store(sqlite_url)
    add_queue(store)
    store.add_job(make_job(name="odd", argv=["é", "a b"], env={"K": "v=1"}, allowed_sites=["x"],
                           shell=True, interruptible=True, deadline_at=None))
    store.close()
    return sqlite_url


def test_the_same_jobs_and_counts_as_the_store(url: str) -> None:
    store = open_store(url)
    try:
        everything = list(JobState)
        for states in (WAITING_AND_RUNNING, everything, [JobState.PENDING], []):
            for limit in (None, 1, 2, 5, 9, 11, 100):
                assert lite.queue_view(url, states, limit=limit) == store.queue_view(states, limit=limit)
        jobs, _ = lite.queue_view(url, WAITING_AND_RUNNING) or ([], {})
        assert [j.name for j in jobs][:len(QUEUE_ORDER)] == QUEUE_ORDER
        odd = next(j for j in jobs if j.name == "odd")
        assert odd.argv == ["é", "a b"] and odd.env == {"K": "v=1"} and odd.shell is True
        assert odd.submitted_at.tzinfo is not None and odd.deadline_at is None
    finally:
        store.close()


def test_it_never_writes(url: str) -> None:
    path = Path(url.removeprefix("sqlite:///"))
    before = path.read_bytes()
    assert lite.queue_view(url, WAITING_AND_RUNNING) is not None
    assert path.read_bytes() == before


def test_anything_it_cannot_vouch_for_is_left_to_the_store(tmp_path: Path, url: str) -> None:
    states = WAITING_AND_RUNNING
    assert lite.queue_view("sqlite://", states) is None  # in memory
    assert lite.queue_view("postgresql+psycopg://u@h/db", states) is None
    assert lite.queue_view("sqlite:///relative.db", states) is None
    assert lite.queue_view(f"{url}?timeout=3", states) is None
    assert lite.queue_view(f"sqlite:///{tmp_path / 'missing.db'}", states) is None
    assert not (tmp_path / "missing.db").exists()  # not created either
    assert lite.queue_view(f"sqlite:///{tmp_path}", states) is None  # a directory
    text = tmp_path / "notes.db"
    text.write_text("not a database\n" * 50)
    assert lite.queue_view(f"sqlite:///{text}", states) is None
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY)")
    con.commit()
    con.close()
    assert lite.queue_view(f"sqlite:///{other}", states) is None  # not ours
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    for revision in ("9999_from_the_future", "0001"):  # newer, or not migrated yet
        con.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        con.commit()
        assert lite.queue_view(url, states) is None
    con.close()


def test_it_knows_the_store_s_schema() -> None:
    from sqlalchemy import JSON, Boolean

    from scheduler.storage.tables import UTCDateTime, jobs

    assert lite.head_revision() == HEAD_REVISION
    kinds = {name: type(jobs.c[name].type) for name in lite.JOB_FIELDS}
    assert {n for n, k in kinds.items() if k is UTCDateTime} == lite.DATETIME_FIELDS
    assert {n for n, k in kinds.items() if k is JSON} == lite.JSON_FIELDS
    assert {n for n, k in kinds.items() if k is Boolean} == lite.BOOL_FIELDS


def test_sqlite_file() -> None:
    assert lite.sqlite_file("sqlite:////var/lib/cs.db") == Path("/var/lib/cs.db")
    assert lite.sqlite_file("sqlite:///cs.db") is None
    assert lite.sqlite_file("sqlite:///") is None
    assert lite.sqlite_file("sqlite://") is None
