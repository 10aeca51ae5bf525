"""The stdlib submit path (fast_sqlite.LiteSubmitStore): the same rows as the store writes,
in one transaction, on a healthy current SQLite file only; anything else is left to the
full store, and a refused transaction leaves nothing behind."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from scheduler.errors import BadDatabase, NotFound
from scheduler.model import Job, JobState, Policy, Site
from scheduler.storage.sql.fast_sqlite import FLOAT_FIELDS, LiteSubmitStore
from scheduler.storage.store import SqlStore, open_store
from tests.storage.test_contract import T0, H, make_job

PARIS = timezone(timedelta(hours=2))


def jobs_to_add() -> list[tuple[Job, tuple[Any, str, str] | None]]:
    return [
        (make_job(), (T0, "submitted", "planned now")),
        (make_job(name="odd é", argv=["é", "a b", "x\ny"], env={"K": "v=1", "É": "ü"}, allowed_sites=["a", "b"],
                  shell=True, interruptible=True, run_now=True, deadline_at=None, power_w=100,
                  submitted_at=T0.astimezone(PARIS), earliest_start=T0.astimezone(PARIS) + H,
                  state=JobState.PLANNED, planned_start=T0 + 2 * H, planned_site="a", expected_g=1.5,
                  run_now_g=2, plan_source="replay:cache", note="n", threshold_g_per_kwh=150,
                  budget_g=3, transfer_delay_s=30, transfer_energy_j=5, pause_mode="checkpoint",
                  pause_signal="SIGUSR1", pause_grace_s=30, sweep_id=None, priority=-3, gpus=2, cpus=4,
                  owner="ann", policy_name="nightly"),
         (T0.astimezone(PARIS), "submitted", "planned 14:00 on a (x; y)")),
        (make_job(name="no event", argv=[], env={}), None),
    ]


def table_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    """Every column of every row, with its SQLite storage class (``updated_at`` differs by
    when each was written: its form only)."""
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        cur = con.execute(f"SELECT * FROM {table} ORDER BY id")
        names = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            cells = []
            for name, value in zip(names, row, strict=True):
                if name == "updated_at":
                    value = (len(value), value[10], value[19])  # 'YYYY-MM-DD HH:MM:SS.ffffff'
                cells.append((name, type(value).__name__, value))
            out.append(tuple(cells))
        return out
    finally:
        con.close()


def fresh(tmp_path: Path, name: str) -> str:
    url = f"sqlite:///{tmp_path / name}"
    open_store(url).close()
    return url


class Spy:
    """The full store, opened only when the side door hands a call to it."""

    def __init__(self, url: str) -> None:
        self.url, self.store, self.calls = url, None, 0

    def __call__(self) -> SqlStore:
        self.calls += 1
        if self.store is None:
            self.store = open_store(self.url)
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def test_it_writes_the_rows_the_store_writes(tmp_path: Path) -> None:
    by_store, by_lite = fresh(tmp_path, "store.db"), fresh(tmp_path, "lite.db")
    store = open_store(by_store)
    spy = Spy(by_lite)
    lite = LiteSubmitStore(by_lite, spy, lambda: spy.store is not None)
    try:
        for job, event in jobs_to_add():
            a = store.add_job(job, event=event)
            b = lite.add_job(job, event=event)
            assert b.id == a.id and b == dataclasses.replace(a, updated_at=b.updated_at)
        assert spy.calls == 0  # all through sqlite3
        for table in ("jobs", "events"):
            assert table_rows(by_lite, table) == table_rows(by_store, table)
        assert len(table_rows(by_lite, "events")) == 2
        assert {name for name, kind, _ in table_rows(by_lite, "jobs")[1] if kind == "float"} >= FLOAT_FIELDS
        # and the store reads them back the same
        again = open_store(by_lite)
        assert [dataclasses.replace(j, updated_at=None) for j in again.list_jobs()] == [
            dataclasses.replace(j, updated_at=None) for j in store.list_jobs()]
        assert again.events_for_job(2) == store.events_for_job(2)
        again.close()
    finally:
        store.close()
        spy.close()


def test_its_reads_are_the_store_s(tmp_path: Path) -> None:
    url = fresh(tmp_path, "cs.db")
    store = open_store(url)
    store.put_policy(Policy(name="nightly", deadline_s=3600, latest_start_at=T0.astimezone(PARIS),
                            threshold_g_per_kwh=100.0, run_now=True, description="é"))
    store.put_policy(Policy(name="a"))
    store.put_site(Site(name="gb", zone="GB", executor="local", gpus=2, cpus=8, pue=1.2))
    store.put_site(Site(name="de", zone="DE", executor="local", gpus=0, cpus=0, pue=1.0))
    for i, site in enumerate(["gb", "de", "gb"]):
        store.add_job(make_job(name=f"j{i}", site=site, interruptible=i == 0))
    spy = Spy(url)
    lite = LiteSubmitStore(url, spy, lambda: spy.store is not None)
    try:
        assert lite.get_policy("nightly") == store.get_policy("nightly")
        assert lite.list_policies() == store.list_policies()
        assert lite.list_sites() == store.list_sites()
        with pytest.raises(NotFound, match="no policy named 'gone'"):
            lite.get_policy("gone")
        for states in (None, [JobState.PENDING], [JobState.RUNNING], []):
            for sites in (None, ["gb"], ["de", "x"], []):
                assert lite.list_jobs(states, sites=sites) == store.list_jobs(states, sites=sites)
        assert lite.planned_intervals([1, 2]) == store.planned_intervals([1, 2])
        assert spy.calls == 0 and lite.config_version == 0
        assert lite.list_jobs(limit=1) == store.list_jobs(limit=1)  # not its own: the store's
        assert spy.calls == 1
    finally:
        store.close()
        spy.close()


def test_what_it_cannot_vouch_for_goes_to_the_store(tmp_path: Path) -> None:
    url = fresh(tmp_path, "cs.db")
    path = Path(url.removeprefix("sqlite:///"))
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.commit()
    con.close()
    spy = Spy(url)
    lite = LiteSubmitStore(url, spy, lambda: spy.store is not None)
    with pytest.raises(BadDatabase):  # not at head: the store's refusal, in its words
        lite.add_job(make_job())
    assert spy.calls == 1 and table_rows(url, "jobs") == []
    url = fresh(tmp_path, "open.db")
    spy = Spy(url)
    lite = LiteSubmitStore(url, spy, lambda: spy.store is not None)
    try:
        spy()
        assert lite.add_job(make_job()).id == 1  # the store is open: it answers everything
        assert spy.calls == 2
    finally:
        spy.close()
    # a journal not in WAL mode (the store would switch it), a missing file, a naive time
    url2 = fresh(tmp_path, "rollback.db")
    con = sqlite3.connect(url2.removeprefix("sqlite:///"))
    con.execute("PRAGMA journal_mode = DELETE")
    con.close()
    for target, job in ((url2, make_job()), (f"sqlite:///{tmp_path / 'missing.db'}", make_job()),
                        (fresh(tmp_path, "naive.db"), make_job(submitted_at=T0.replace(tzinfo=None)))):
        spy = Spy(target)
        lite = LiteSubmitStore(target, spy, lambda spy=spy: spy.store is not None)  # type: ignore[misc]
        try:
            try:
                lite.add_job(job)
            except ValueError:
                pass  # the store's refusal of a naive time
            assert spy.calls == 1
        finally:
            spy.close()


def test_a_refused_transaction_leaves_nothing(tmp_path: Path) -> None:
    url = fresh(tmp_path, "cs.db")
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    con.execute("CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'no'); END")
    con.commit()
    con.close()

    def refuse() -> SqlStore:
        raise RuntimeError("handed to the store")

    lite = LiteSubmitStore(url, refuse, lambda: False)
    with pytest.raises(RuntimeError, match="handed to the store"):
        lite.add_job(make_job(), event=(T0, "submitted", "x"))
    assert table_rows(url, "jobs") == []  # the job's row was rolled back with the event's
