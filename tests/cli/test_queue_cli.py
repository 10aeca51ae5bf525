"""`carbonshift queue`: running jobs first, then what starts next; a bounded number of rows
(table and --json alike) with a line saying what is not shown and how to see it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.model import Job, JobState
from scheduler.storage import lite
from scheduler.storage.store import open_store
from tests.cli.conftest import CS

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


def _job(name: str, state: JobState, start: datetime | None) -> Job:
    return Job(name=name, argv=["true"], duration_s=3600, zone="TRACE", submitted_at=T0,
               earliest_start=T0, latest_start=T0 + timedelta(hours=20),
               deadline_at=T0 + timedelta(hours=21), state=state, planned_start=start)


def _fill(cs: CS, planned: int = 55) -> None:
    """``planned`` planned jobs (the later ids start earlier), 2 running, 3 pending, 4 done."""
    assert cs("site", "list").code == 0  # creates the database (queue only reads)
    store = open_store(f"sqlite:///{cs.db_path}")
    store.add_jobs(
        [_job(f"p{i}", JobState.PLANNED, T0 + timedelta(minutes=planned - i)) for i in range(planned)]
        + [_job(f"pend{i}", JobState.PENDING, None) for i in range(3)]
        + [_job(f"run{i}", JobState.RUNNING, T0 - timedelta(hours=1)) for i in range(2)]
        + [_job(f"done{i}", JobState.SUCCEEDED, T0 - timedelta(hours=2)) for i in range(4)]
    )
    store.close()


def _names(table: str) -> list[str]:
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["id", "name", "state"]
    return [ln.split()[1] for ln in lines[1:] if ln[:1].isdigit()]


def test_default_is_bounded_running_first_then_next_to_start(cs: CS) -> None:
    _fill(cs)
    r = cs("queue")
    assert r.code == 0, r.err
    names = _names(r.out)
    assert len(names) == 50
    assert names[:3] == ["run0", "run1", "p54"]  # then p53, p52, ...: soonest start first
    assert names[-1] == "p7"
    assert r.out.splitlines()[-1] == (
        "showing 50 of 60 jobs (2 running, 55 planned, 3 pending): `--limit N` shows N, "
        "`--limit 0` all, `--all` finished ones too")


def test_limit_and_all(cs: CS) -> None:
    _fill(cs)
    five = cs("queue", "--limit", "5")
    assert _names(five.out) == ["run0", "run1", "p54", "p53", "p52"]
    assert five.out.splitlines()[-1].startswith("showing 5 of 60 jobs")
    every = cs("queue", "--limit", "0")
    assert len(_names(every.out)) == 60 and _names(every.out)[-3:] == ["pend0", "pend1", "pend2"]
    assert "showing" not in every.out  # nothing left out, nothing to say
    with_done = cs("queue", "--all")
    assert len(_names(with_done.out)) == 64 and _names(with_done.out)[-1] == "done3"
    assert "showing" not in with_done.out
    some = cs("queue", "--all", "--limit", "61")
    assert _names(some.out)[-2:] == ["pend2", "done0"]
    assert some.out.splitlines()[-1].startswith("showing 61 of 64 jobs (2 running, 55 planned, 3 pending, 4 succeeded)")
    assert "--all" not in some.out.splitlines()[-1]
    assert cs("queue", "--limit", "-1").code == 2


def test_json_is_bounded_too_and_says_so_on_stderr(cs: CS) -> None:
    _fill(cs)
    r = cs("queue", "--json")
    rows = json.loads(r.out)
    assert len(rows) == 50 and rows[0]["name"] == "run0" and rows[0]["state"] == "running"
    assert set(rows[0]) >= {"id", "argv", "planned_start", "expected_g", "deadline"}
    assert r.err.strip() == ("carbonshift: showing 50 of 60 jobs (2 running, 55 planned, 3 pending): "
                             "`--limit N` shows N, `--limit 0` all, `--all` finished ones too")
    every = cs("queue", "--json", "--limit", "0")
    assert len(json.loads(every.out)) == 60 and every.err == ""


def test_a_short_queue_reads_as_before(cs: CS) -> None:
    assert cs("queue").out.startswith("the queue is empty")
    assert cs("submit", "--name", "only", "--duration", "1h", "--", "true").code == 0
    r = cs("queue")
    assert _names(r.out) == ["only"] and len(r.out.splitlines()) == 2
    assert [row["name"] for row in json.loads(cs("queue", "--json").out)] == ["only"]


def test_the_full_store_answers_the_same(cs: CS, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(cs)
    light = [cs("queue").out, cs("queue", "--json", "--limit", "7").out, cs("queue", "--all").out]
    monkeypatch.setattr(lite, "queue_view", lambda *a, **k: None)
    full = [cs("queue").out, cs("queue", "--json", "--limit", "7").out, cs("queue", "--all").out]
    assert light == full
