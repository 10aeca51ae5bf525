"""Sweeps in the simulation engine: every policy keeps a sweep's cap; the independent
replay of the same trials has none and plans each arrival on its own."""

from __future__ import annotations

from datetime import timedelta

from scheduler.model import Site
from scheduler.planner import PlanOptions
from scheduler.simulate import INDEPENDENT, SimJob, compare
from tests.simulate.test_engine import T0, daily, sj


def most_at_once(outcomes: list) -> int:
    spans = [iv for o in outcomes for iv in o.intervals]
    return max(sum(a <= t < b for a, b in spans) for t, _ in spans)


def test_every_policy_keeps_the_cap_and_the_independent_replay_has_none() -> None:
    tr = {"Z": daily("Z", 4)}  # clean 02:00-06:00 each day
    sites = {"a": Site("a", "Z", gpus=8)}
    trials: list[SimJob] = [sj(i, 20, 1, 44, sweep_id=1, sweep_limit=2) for i in range(1, 7)]
    other = sj(7, 20, 1, 44)  # a job outside the sweep takes a clean hour freely
    c = compare([*trials, other], sites, tr, forecast="perfect", options=PlanOptions(slot_s=3600))
    assert set(c.results) == {"run-now", "carbon-aware", "oracle", INDEPENDENT}
    for mode in ("run-now", "carbon-aware", "oracle"):
        res = c.results[mode]
        assert len(res.outcomes) == 7 and res.misses() == 0, mode
        assert most_at_once([res.outcomes[i] for i in range(1, 7)]) <= 2, mode
    # together: two trials in each of the three first clean hours (02:00-05:00 next day)
    starts = sorted(c.results["carbon-aware"].outcomes[i].intervals[0][0] for i in range(1, 7))
    assert starts == [T0 + timedelta(hours=h) for h in (26, 26, 27, 27, 28, 28)]
    # independent: no cap, all six in the first clean hour, and no dirtier
    ind = c.results[INDEPENDENT]
    assert {ind.outcomes[i].intervals[0][0] for i in range(1, 7)} == {T0 + timedelta(hours=26)}
    assert ind.misses() == 0 and ind.total_g() <= c.results["carbon-aware"].total_g()
    assert c.summary()["together_vs_independent_g"] == ind.total_g() - c.results["carbon-aware"].total_g()


def test_no_sweep_no_independent_replay() -> None:
    c = compare([sj(1, 20, 1, 44)], {"a": Site("a", "Z")}, {"Z": daily("Z", 3)}, forecast="perfect")
    assert INDEPENDENT not in c.results and "independent_g" not in c.summary()
