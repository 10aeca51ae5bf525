"""Sweeps through the real CLI on a real SQLite file: ``show s1``, ``show`` of a trial,
``queue``, ``history`` and ``report --by sweep``, as tables and as JSON, on the history of
tests/report/sweep_seed.py.
"""

from __future__ import annotations

import json

import pytest

from tests.report.sweep_seed import seed_sweeps


@pytest.fixture
def seeded(cs):  # type: ignore[no-untyped-def]
    return cs, seed_sweeps(cs.db_path)


def test_show_a_sweep_sums_its_trials_and_lists_them(seeded) -> None:  # type: ignore[no-untyped-def]
    cs, _ = seeded
    r = cs("show", "s1", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert (d["kind"], d["ref"], d["name"], d["state"], d["size"]) == ("sweep", "s1", "lr-search", "running", 5)
    assert [d[k] for k in ("done", "failed", "running", "waiting", "skipped", "cancelled")] == [2, 1, 1, 0, 1, 0]
    assert d["energy_kwh"] == pytest.approx(3.5) and d["emissions_g"] == pytest.approx(450.0)
    assert d["counterfactual_g"] == pytest.approx(750.0) and d["saved_g"] == pytest.approx(300.0)
    assert d["intensity_kind"] == "mixed" and d["intensity_provider"] == "replay"
    # as the daemon counts it (scheduler.sweeps.budget_use): 450 g measured, and the running
    # trial, with no sample yet, at its plan's 60 g
    assert d["budget_used_g"] == pytest.approx(510.0) and d["budget_used_pct"] == pytest.approx(51.0)
    assert d["running_g"] == pytest.approx(60.0) and d["budget_waiting_g"] == 0.0
    assert [t["array_index"] for t in d["trials"]] == [0, 1, 2, 3, 4]
    assert d["trials"][4]["state"] == "skipped" and d["trials"][4]["note"] == "skipped: sweep budget"
    t = cs("show", "S1")
    assert t.code == 0, t.err
    assert t.out.startswith("sweep s1  lr-search  [running]  owner alice")
    assert "5: 2 done, 1 failed, 1 running, 1 skipped; at most 2 at once" in t.out
    assert "510 g of 1.00 kg (51%) used, 60.0 g of it by running trials" in t.out and "saved 300 g (40.0%)" in t.out
    assert "skipped: sweep budget" in t.out


def test_show_of_a_trial_names_its_sweep_and_bad_refs_are_refused(seeded) -> None:  # type: ignore[no-untyped-def]
    cs, ids = seeded
    r = cs("show", str(ids["trial3"]))
    assert r.code == 0, r.err
    assert "sweep     trial 3 of sweep s1" in r.out
    d = json.loads(cs("show", str(ids["trial3"]), "--json").out)
    assert (d["sweep"], d["sweep_id"], d["array_index"], d["sweep_limit"]) == ("s1", 1, 3, 2)
    bad = cs("show", "sx")
    assert bad.code == 2 and "'sx' is not a job or a sweep" in bad.err and "Traceback" not in bad.err
    missing = cs("show", "s99")
    assert missing.code != 0 and "no sweep s99" in missing.err


def test_queue_collapses_trials_into_one_row_per_sweep(seeded) -> None:  # type: ignore[no-untyped-def]
    cs, _ = seeded
    rows = json.loads(cs("queue", "--json").out)
    assert [(r["kind"], r.get("ref") or r["name"]) for r in rows] == [
        ("job", "solo"), ("sweep", "s1"), ("sweep", "s2")]
    s2 = rows[2]
    assert (s2["state"], s2["waiting"], s2["expected_g"]) == ("waiting", 3, pytest.approx(180.0))
    expanded = json.loads(cs("queue", "--trials", "--json").out)
    trials = [r for r in expanded if r["kind"] == "job" and r["sweep"] is not None]
    assert sorted((r["sweep"], r["array_index"]) for r in trials) == [
        ("s1", 3), ("s2", 0), ("s2", 1), ("s2", 2)]
    table = cs("queue")
    assert table.code == 0, table.err
    assert "solo" in table.out and "seeds[0]" not in table.out
    line = next(x for x in table.out.splitlines() if x.startswith("s2 "))
    assert "3 waiting of 3" in line and "bob" in line
    # a limit counts rows: the collapsed trials leave room for the jobs after them
    limited = json.loads(cs("queue", "--limit", "2", "--json").out)
    assert len(limited) == 2


def test_history_has_a_row_per_sweep_beside_jobs(seeded) -> None:  # type: ignore[no-untyped-def]
    cs, _ = seeded
    rows = json.loads(cs("history", "--json").out)
    assert sorted((r["kind"], r.get("ref") or r["name"]) for r in rows) == [
        ("job", "eval"), ("job", "solo"), ("sweep", "s1"), ("sweep", "s2")]
    s1 = next(r for r in rows if r.get("ref") == "s1")
    assert s1["saved_g"] == pytest.approx(300.0) and s1["skipped"] == 1
    every = json.loads(cs("history", "--trials", "--json").out)
    assert len([r for r in every if r["kind"] == "job"]) == 2 + 5 + 3
    table = cs("history")
    assert "lr-search[0]" not in table.out
    line = next(x for x in table.out.splitlines() if x.startswith("s1 "))
    assert "2 done, 1 failed, 1 running, 1 skipped of 5" in line and "(51%)" in line
    # csv stays one line per job, trials included, with their sweep
    csv_lines = cs("history", "--format", "csv").out.splitlines()
    assert csv_lines[0].endswith(",sweep_id,array_index") and len(csv_lines) == 1 + 10


def test_report_by_sweep(seeded) -> None:  # type: ignore[no-untyped-def]
    cs, _ = seeded
    r = cs("report", "--by", "sweep", "--since", "all", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert [row["key"] for row in d["rows"]] == ["s1", "s2", "-"]
    s1, s2, rest = d["rows"]
    assert (s1["jobs"], s1["emissions_kg"], s1["saved_kg"]) == (5, pytest.approx(0.45), pytest.approx(0.3))
    assert s1["sweep"]["budget_used_pct"] == pytest.approx(51.0) and s1["sweep"]["skipped"] == 1
    assert s2["sweep"]["waiting"] == 3 and rest["sweep"] is None and rest["jobs"] == 2
    table = cs("report", "--by", "sweep", "--since", "all")
    assert table.code == 0, table.err
    assert "budget used" in table.out.splitlines()[1]
    line = next(x for x in table.out.splitlines() if x.startswith("s1 "))
    assert "2 done, 1 failed, 1 running, 1 skipped" in line


def test_a_submitted_then_stopped_sweep_through_the_cli(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("submit", "--array", "0-3%2", "--duration", "1h", "--deadline", "24h", "--sweep-budget", "5kg",
           "--", "python", "train.py", "--seed", "{index}")
    assert r.code == 0, r.err
    rows = json.loads(cs("queue", "--json").out)
    assert [(x["kind"], x["ref"], x["waiting"], x["max_concurrent"]) for x in rows] == [("sweep", "s1", 4, 2)]
    assert rows[0]["budget_used_g"] == 0.0 and rows[0]["budget_waiting_g"] == pytest.approx(rows[0]["expected_g"])
    assert cs("sweep", "stop", "s1").code == 0
    d = json.loads(cs("show", "s1", "--json").out)
    assert (d["state"], d["skipped"], d["waiting"]) == ("stopped", 4, 0) and d["stop_reason"]
    assert [t["note"] for t in d["trials"]] == ["skipped: sweep stopped"] * 4
    assert d["expected_g"] is None  # skipped trials will not emit
    assert json.loads(cs("queue", "--json").out) == []
    hist = json.loads(cs("history", "--json").out)
    assert [(x["kind"], x.get("ref"), x["state"]) for x in hist] == [("sweep", "s1", "stopped")]
