"""``submit --array``/``--sweep`` through the real CLI (in-process, replayed GB trace): what a
sweep prints, its --json, and the inputs it refuses (one line, exit 2, nothing written);
``Client.submit_sweep`` refuses the same."""

from __future__ import annotations

import json
import sqlite3

import pytest

from scheduler.api import Client
from scheduler.errors import BadInput, InfeasibleJob
from tests.cli.conftest import CS


def _rows(cs: CS, table: str) -> int:
    if not cs.db_path.exists():
        return 0
    con = sqlite3.connect(cs.db_path)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _refused(cs: CS, *args: str, needle: str) -> str:
    r = cs("submit", *args)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert r.code == 2 and len(lines) == 1 and "Traceback" not in r.err, (r.code, r.out, r.err)
    assert needle in lines[0], lines[0]
    assert _rows(cs, "jobs") == 0 and _rows(cs, "sweeps") == 0
    return lines[0]


def test_a_sweep_prints_one_line_and_how_its_trials_were_planned(cs: CS) -> None:
    r = cs("submit", "--array", "0-5%2", "--duration", "1h", "--deadline", "12h", "--sweep-budget", "5kg",
           "--", "python", "train.py", "--seed", "{index}")
    assert r.code == 0, r.err
    first, *rest = r.out.splitlines()
    assert first.startswith("sweep s1 'python': 6 trials (jobs 1-6) planned") and "at most 2 at once" in first
    assert any(line.strip().startswith("trials ") for line in rest)
    assert any("budget 5.00 kg" in line for line in rest), r.out
    shown = cs("show", "3")
    assert "python train.py --seed 2" in shown.out and "trial 2 of sweep s1" in shown.out, shown.out


def test_sweep_json_gives_the_sweep_and_its_trials(cs: CS) -> None:
    grid = cs.tmp / "grid.txt"
    grid.write_text("--lr 0.1\n# skipped\n--lr 0.01 --wd '1e-4'\n")
    r = cs("submit", "--json", "--sweep", str(grid), "--array", "%1", "--name", "lr", "--duration", "30m",
           "--deadline", "6h", "--", "python", "train.py", "{args}", "--out", "run{index}")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["sweep"]["ref"] == "s1" and out["sweep"]["size"] == 2 and out["sweep"]["max_concurrent"] == 1
    assert [t["name"] for t in out["trials"]] == ["lr[0]", "lr[1]"]
    assert [t["argv"] for t in out["trials"]] == [
        ["python", "train.py", "--lr", "0.1", "--out", "run0"],
        ["python", "train.py", "--lr", "0.01", "--wd", "1e-4", "--out", "run1"],
    ]
    assert {t["sweep_id"] for t in out["trials"]} == {1} and all(t["state"] == "planned" for t in out["trials"])


@pytest.mark.parametrize(("args", "needle"), [
    (["--array", "5-1"], "runs backwards"),
    (["--array", "0-3%0"], "at least 1"),
    (["--array", "1,2,2"], "appears twice"),
    (["--array", "%4"], "no index"),
    (["--sweep-budget", "5kg"], "for a sweep"),
    (["--array", "0-3", "--sweep-budget", "lots"], "--sweep-budget 'lots'"),
    (["--array", "0-3", "--wait"], "--wait"),
    (["--sweep", "/nonexistent/grid.txt"], "cannot be read"),
])
def test_bad_sweep_input_is_refused_with_nothing_written(cs: CS, args: list[str], needle: str) -> None:
    _refused(cs, *args, "--duration", "1h", "--", "true", needle=needle)


def test_array_and_sweep_lines_together_are_refused(cs: CS) -> None:
    grid = cs.tmp / "grid.txt"
    grid.write_text("--lr 1\n")
    _refused(cs, "--sweep", str(grid), "--array", "0-3", "--duration", "1h", "--", "true", needle="only the cap")


def test_a_sweep_over_its_budget_is_refused_with_the_figures(cs: CS) -> None:
    line = _refused(cs, "--array", "0-9", "--duration", "1h", "--deadline", "12h", "--sweep-budget", "10g",
                    "--", "true", needle="sweep budget 10.0 g is below the best plan's expected")
    assert "for 10 trials" in line and "running them now" in line


def test_a_sweep_that_cannot_finish_by_its_deadline_names_the_earliest_finish(cs: CS) -> None:
    assert cs("site", "add", "local", "--zone", "TRACE", "--gpus", "2").code == 0
    # 6 one-GPU hours on 2 GPUs need 3 hours; the deadline gives 2
    line = _refused(cs, "--array", "0-5", "--gpus", "1", "--duration", "1h", "--deadline", "2h",
                    "--", "true", needle="cannot finish by its deadline")
    assert "sweep 'true' of 6 trials" in line and "the earliest finish that fits is" in line
    assert "give --deadline 3h" in line  # three waves of an hour on two GPUs


def test_client_submit_sweep_plans_and_refuses_like_the_cli(cs: CS) -> None:
    with Client() as client:
        res = client.submit_sweep("python train.py --seed {index}", array="0-3%2", duration="1h",
                                  deadline="12h", sweep_budget="5kg")
        assert res.sweep.id == 1 and res.sweep.max_concurrent == 2 and res.sweep.budget_g == 5000.0
        assert [j.argv[-1] for j in res.trials] == ["0", "1", "2", "3"]
        assert [j.array_index for j in res.trials] == [0, 1, 2, 3]
        lines = client.submit_sweep(["python", "t.py"], trials=["--lr 1", ["--lr", "2"]], duration="1h")
        assert [j.argv for j in lines.trials] == [["python", "t.py", "--lr", "1"], ["python", "t.py", "--lr", "2"]]
        with pytest.raises(InfeasibleJob, match="sweep budget"):
            client.submit_sweep("true", array="0-9", duration="1h", deadline="12h", sweep_budget=1)
        with pytest.raises(BadInput, match="backwards"):
            client.submit_sweep("true", array="3-1", duration="1h")
        with pytest.raises(BadInput, match="either"):
            client.submit_sweep("true", duration="1h")
        assert len(client.app.store.list_sweeps()) == 2


def test_a_capped_sweep_is_planned_under_its_cap_unless_it_runs_now(cs: CS) -> None:
    later = json.loads(cs("submit", "--json", "--array", "0-5%2", "--duration", "10m", "--deadline", "1h",
                          "--", "true").out)
    starts = [t["planned_start"] for t in later["trials"]]
    assert max(starts.count(s) for s in starts) <= 2  # ten-minute trials, two at a time
    now = json.loads(cs("submit", "--json", "--array", "0-5%2", "--now", "--duration", "10m", "--", "true").out)
    assert len({t["planned_start"] for t in now["trials"]}) == 1  # all due now: the daemon runs 2 at a time
    assert {t["sweep_id"] for t in now["trials"]} == {2}


def test_a_cap_that_cannot_start_every_trial_by_its_latest_start_is_refused(cs: CS) -> None:
    line = _refused(cs, "--array", "0-5%2", "--duration", "10m", "--latest-start", "5m", "--deadline", "3h",
                    "--", "true", needle="cannot start by its latest start")
    assert "with at most 2 at once" in line and "larger %N" in line
