"""History rows through the stdlib side door (``lite.history_view``, one query): the same
rows as the store's path (``history_rows``: jobs, then their last runs) for every filter, on
jobs with no run, several runs, runs tied on start time, unaccounted runs, planned sites and
sweep trials; anything the side door cannot vouch for goes to the store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.history import history_rows, read_history_rows
from scheduler.model import Event, JobState, Run, RunAccounting
from scheduler.storage import lite
from scheduler.storage.store import SqlStore, open_store
from tests.storage.test_contract import T0, make_job

H = timedelta(hours=1)


def _fill(store: SqlStore) -> None:
    states = [JobState.SUCCEEDED, JobState.FAILED, JobState.PENDING, JobState.SUCCEEDED,
              JobState.CANCELLED, JobState.SUCCEEDED, JobState.RUNNING]
    ids = store.add_jobs([
        make_job(name=f"j{i}", state=s, submitted_at=T0 + i * H, owner=f"o{i % 2}",
                 planned_site="far" if i == 2 else ("" if i == 4 else None),
                 planned_start=T0 + (i + 1) * H if i % 2 else None,
                 deadline_at=None if i == 5 else T0 + 20 * H, note="é ñ" if i == 1 else "",
                 expected_g=10.0 * i if i else None, run_now_g=20.0 * i if i else None,
                 sweep_id=7 if i == 5 else None, array_index=0 if i == 5 else None)
        for i, s in enumerate(states)
    ])
    acct = RunAccounting(energy_j=3.6e6, facility_energy_j=4e6, emissions_g=120.0, counterfactual_g=180.0,
                         energy_method="rapl", intensity_kind="actual", intensity_provider="ukgrid",
                         pue=1.1, measured_share=0.5, actual_share=0.75)
    zero = RunAccounting(energy_j=0.0, facility_energy_j=0.0, emissions_g=0.0, counterfactual_g=0.0,
                         energy_method="estimate", intensity_kind="forecast", intensity_provider="static")

    def run(job: int, start_h: float, *, acc: RunAccounting | None, site: str = "local",
            finished: bool = True) -> None:
        r = store.add_run(Run(job_id=ids[job], site=site, executor="local", started_at=T0 + start_h * H,
                              host="h", finished_at=T0 + (start_h + 1) * H if finished else None,
                              exit_code=0 if finished else None,
                              state=JobState.SUCCEEDED if finished else JobState.RUNNING))
        if acc is not None:
            store.set_accounting(r.id or 0, acc)

    run(0, 1, acc=acct)
    run(1, 2, acc=None, site="a")     # failed, never accounted
    run(1, 3, acc=acct, site="b")     # the later run is the last
    run(3, 4, acc=zero, site="c")     # tied on start time: the higher id is the last
    run(3, 4, acc=acct, site="d")
    run(5, 6, acc=acct)
    run(6, 7, acc=None, finished=False)
    for job, kind, at_h in ((0, "projection", 1.5), (1, "started", 2), (0, "projection", 1.7),
                            (3, "projection", 4.5), (1, "projection", 3.2)):
        store.add_event(Event(job_id=ids[job], at=T0 + at_h * H, kind=kind, message=f"{{\"at\": {at_h}}}"))


@pytest.fixture
def url(sqlite_url: str) -> str:
    store = open_store(sqlite_url)
    _fill(store)
    store.close()
    return sqlite_url


def test_the_same_rows_as_the_store_for_every_filter(url: str) -> None:
    store = open_store(url)
    try:
        for states in (None, [JobState.SUCCEEDED], [JobState.SUCCEEDED, JobState.FAILED], []):
            for since in (None, T0 + 2 * H):
                for until in (None, T0 + 5 * H):
                    for limit in (None, 3):
                        want = history_rows(store, states=states, since=since, until=until, limit=limit)
                        got = read_history_rows(url, _no_store, states=states, since=since, until=until,
                                                limit=limit)
                        assert got == want, (states, since, until, limit)
        rows = read_history_rows(url, _no_store)
        assert [r.site for r in rows] == ["local", "b", "far", "d", "local", "local", "local"]
        assert rows[3].emissions_g == 120.0 and rows[3].saved_pct == pytest.approx(100 / 3)
        assert rows[2].run_id is None and rows[2].energy_kwh is None
        assert rows[4].site == "local"  # an empty planned site: the job's own
    finally:
        store.close()


def test_json_and_table_output_unchanged(url: str) -> None:
    store = open_store(url)
    try:
        assert [r.as_dict() for r in read_history_rows(url, _no_store)] == [
            r.as_dict() for r in history_rows(store)]
    finally:
        store.close()


def test_events_of_kind_as_the_store_reads_them(url: str) -> None:
    store = open_store(url)
    try:
        ids = [r.id for r in history_rows(store)]
        for kind in ("projection", "started", "none"):
            for some in (ids, ids[:2], []):
                assert lite.events_of_kind(url, some, kind) == store.events_of_kind(some, kind)
        assert [len(v) for v in (lite.events_of_kind(url, ids, "projection") or {}).values()] == [2, 1, 1]
    finally:
        store.close()


def test_what_it_cannot_vouch_for_goes_to_the_store(tmp_path: Path, url: str) -> None:
    store = open_store(url)
    try:
        want = history_rows(store)
        # the store is open (the app's side door is then None) or the file is not SQLite
        assert read_history_rows(None, lambda: store) == want
        assert lite.history_view(f"sqlite:///{tmp_path / 'missing.db'}") is None
        assert read_history_rows(f"sqlite:///{tmp_path / 'missing.db'}", lambda: store) == want
    finally:
        store.close()


def _no_store() -> SqlStore:
    raise AssertionError("the side door should have answered")
