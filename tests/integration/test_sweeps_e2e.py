"""Sweeps end to end: ``carbonshift submit --array`` and a real ``carbonshift run`` daemon in
subprocesses, on an accelerated clock over the replayed GB trace (tests/reliability's
:class:`Sim`). Concurrency is read from the runs' recorded start and finish times."""

from __future__ import annotations

import json
import signal
from datetime import datetime
from pathlib import Path

import pytest

from scheduler.model import JobState, Run
from scheduler.sweeps import BUDGET_NOTE, STOPPED_NOTE
from tests.reliability.conftest import PY, Sim, sim  # noqa: F401 (sim: a fixture)


def _most_at_once(runs: list[Run]) -> int:
    """The most runs open at one instant ([start, finish) each)."""
    edges: list[tuple[datetime, int]] = []
    for r in runs:
        assert r.finished_at is not None, r
        edges += [(r.started_at, 1), (r.finished_at, -1)]
    at = most = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # a finish before a start at one instant
        at += step
        most = max(most, at)
    return most


def _submit(sim: Sim, *args: str) -> dict[str, object]:
    r = sim.cli("submit", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def _trial_ids(sub: dict[str, object]) -> list[int]:
    return [int(t["id"]) for t in sub["trials"]]  # type: ignore[index,union-attr]


def _runs(sim: Sim, ids: list[int]) -> list[Run]:
    return [r for i in ids for r in sim.app.store.runs_for_job(i)]


def test_a_capped_sweep_on_a_4_gpu_site_runs_every_trial_by_its_deadline(sim: Sim) -> None:
    assert sim.cli("site", "add", "local", "--zone", "TRACE", "--gpus", "4", "--cpus", "64").returncode == 0
    # 20 one-GPU trials of 6 planned minutes (each a short process, launched and noticed in
    # a few real seconds: minutes at 60x): 5 waves of 4 fit in 40 minutes
    sub = _submit(sim, "--array", "0-19%4", "--gpus", "1", "--duration", "6m", "--deadline", "40m",
                  "--", PY, "-c", "import os,sys; "
                  "open(sys.argv[1]+os.environ['CARBONSHIFT_ARRAY_INDEX'],'w').write(sys.argv[2])",
                  str(sim.tmp / "out-"), "{index}")
    sweep = sub["sweep"]
    assert sweep["size"] == 20 and sweep["max_concurrent"] == 4 and sweep["ref"] == f"s{sweep['id']}"  # type: ignore[index]
    ids = _trial_ids(sub)
    daemon = sim.start_daemon("--exit-when-idle")
    assert daemon.wait(90) == 0, sim.daemon_log()
    deadline = sim.app.store.get_sweep(int(sweep["id"])).deadline_at  # type: ignore[index]
    assert deadline is not None
    jobs = [sim.app.store.get_job(i) for i in ids]
    assert [j.state for j in jobs] == [JobState.SUCCEEDED] * 20, [(j.id, j.state, j.note) for j in jobs]
    runs = _runs(sim, ids)
    assert len(runs) == 20  # each trial ran once
    assert all(r.finished_at is not None and r.finished_at <= deadline for r in runs)
    assert _most_at_once(runs) <= 4
    # {index} in the argv and CARBONSHIFT_ARRAY_INDEX in the environment agree
    assert all((sim.tmp / f"out-{j.array_index}").read_text() == str(j.array_index) for j in jobs)


def test_the_daemon_holds_a_sweep_to_its_cap_when_the_plan_does_not(sim: Sim) -> None:
    # the default site manages no capacity and --now plans every trial at once: only the
    # daemon's gate keeps it to %3
    sub = _submit(sim, "--array", "1,3,5-9%3", "--now", "--duration", "1m",
                  "--", PY, str(sim.script), "t{index}", "0.2", str(sim.ledger))
    ids = _trial_ids(sub)
    assert [t["array_index"] for t in sub["trials"]] == [1, 3, 5, 6, 7, 8, 9]  # type: ignore[index,union-attr]
    daemon = sim.start_daemon("--exit-when-idle")
    assert daemon.wait(90) == 0, sim.daemon_log()
    assert all(sim.state(i) is JobState.SUCCEEDED for i in ids)
    runs = _runs(sim, ids)
    assert len(runs) == 7 and _most_at_once(runs) <= 3
    assert "deferred" in sim.daemon_log()
    assert all(sim.app.store.get_job(i).attempts == 1 for i in ids)  # a deferral is not an attempt
    starts, ends = sim.ledger_counts()
    assert starts == ends == {f"t{i}": 1 for i in (1, 3, 5, 6, 7, 8, 9)}


def test_a_spent_sweep_budget_stops_launching_and_says_why(sim: Sim) -> None:
    # the trials plan as almost nothing (1 mW for a minute, 0.3 µg each) but each really burns a CPU
    # for a second: the measured grams of the first run exceed what the budget leaves
    sub = _submit(sim, "--array", "0-5%1", "--now", "--duration", "1m", "--power-w", "0.001",
                  "--sweep-budget", "0.0001g", "--", PY, str(sim.script), "b{index}", "1.0", str(sim.ledger))
    ids = _trial_ids(sub)
    daemon = sim.start_daemon("--exit-when-idle")
    assert daemon.wait(90) == 0, sim.daemon_log()
    states = [sim.state(i) for i in ids]
    ran = [i for i, s in zip(ids, states, strict=True) if s is JobState.SUCCEEDED]
    skipped = [i for i, s in zip(ids, states, strict=True) if s is JobState.SKIPPED]
    assert ran and skipped and len(ran) + len(skipped) == 6, states
    assert ran == ids[:len(ran)]  # launching stopped: nothing ran after the first skip
    assert all(sim.app.store.get_job(i).note == BUDGET_NOTE for i in skipped)
    sweep = sim.app.store.get_sweep(int(sub["sweep"]["id"]))  # type: ignore[index]
    assert sweep.stop_reason == "sweep budget" and sweep.stopped_at is not None
    log = sim.daemon_log()
    assert f"sweep s{sweep.id}" in log and "budget" in log and "skipped" in log
    shown = sim.cli("show", str(skipped[0]))
    assert "not launched: sweep budget" in shown.stdout, shown.stdout
    waited = sim.cli("wait", str(skipped[0]))
    assert waited.returncode == 1 and "not launched, sweep budget" in waited.stderr, waited.stderr


def test_sweep_stop_lets_running_trials_finish_and_skips_the_rest(sim: Sim) -> None:
    sub = _submit(sim, "--array", "0-4%2", "--now", "--duration", "1m",
                  "--", PY, str(sim.script), "s{index}", "1.5", str(sim.ledger))
    ref = sub["sweep"]["ref"]  # type: ignore[index]
    ids = _trial_ids(sub)
    daemon = sim.start_daemon("--exit-when-idle")
    sim.wait_for(lambda: sum(sim.state(i) is JobState.RUNNING for i in ids) == 2, what="two trials running")
    r = sim.cli("sweep", "stop", str(ref), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["skipped"] == ids[2:] and sorted(out["running"]) == ids[:2]
    assert daemon.wait(90) == 0, sim.daemon_log()
    assert [sim.state(i) for i in ids] == [JobState.SUCCEEDED] * 2 + [JobState.SKIPPED] * 3
    assert all(sim.app.store.get_job(i).note == STOPPED_NOTE for i in ids[2:])
    assert sim.ledger_counts()[0] == {"s0": 1, "s1": 1}
    again = sim.cli("sweep", "stop", str(ref))
    assert again.returncode == 2 and "nothing to stop" in again.stderr and len(again.stderr.splitlines()) == 1


def test_cancel_of_a_sweep_cancels_running_trials_and_skips_waiting_ones(sim: Sim) -> None:
    sub = _submit(sim, "--array", "0-3%2", "--now", "--duration", "1m",
                  "--", PY, str(sim.script), "c{index}", "30", str(sim.ledger))
    ref = sub["sweep"]["ref"]  # type: ignore[index]
    ids = _trial_ids(sub)
    daemon = sim.start_daemon("--exit-when-idle")
    sim.wait_for(lambda: sum(sim.state(i) is JobState.RUNNING for i in ids) == 2
                 and all(r.handle for r in _runs(sim, ids)), what="two trials running")
    r = sim.cli("cancel", str(ref), "--json", "--grace", "1s")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["skipped"] == ids[2:] and sorted(out["cancelled"]) == ids[:2]
    assert daemon.wait(90) == 0, sim.daemon_log()
    assert [sim.state(i) for i in ids] == [JobState.CANCELLED] * 2 + [JobState.SKIPPED] * 2
    starts, ends = sim.ledger_counts()
    assert set(starts) == {"c0", "c1"} and not ends  # stopped long before their 30 s
    assert sim.app.store.get_sweep(int(sub["sweep"]["id"])).stop_reason == "sweep cancelled"  # type: ignore[index]


def test_a_daemon_killed_mid_sweep_loses_no_trial_and_runs_none_twice(sim: Sim) -> None:
    sub = _submit(sim, "--array", "0-7%2", "--now", "--duration", "1m",
                  "--", PY, str(sim.script), "k{index}", "0.6", str(sim.ledger))
    ids = _trial_ids(sub)
    for _ in range(2):  # killed twice while trials run
        proc = sim.start_daemon()
        sim.wait_for(lambda: len(sim.ledger_counts()[0]) >= 2 * (len(sim.daemons)), timeout=60,
                     what="trials started")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    last = sim.start_daemon("--exit-when-idle")
    assert last.wait(120) == 0, sim.daemon_log()
    assert [sim.state(i) for i in ids] == [JobState.SUCCEEDED] * 8, sim.daemon_log()[-3000:]
    starts, ends = sim.ledger_counts()
    assert starts == ends == {f"k{i}": 1 for i in range(8)}
    assert _most_at_once([r for r in _runs(sim, ids) if r.state is JobState.SUCCEEDED]) <= 2
