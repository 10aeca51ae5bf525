"""The queue order of a large plan, sorted as numpy columns, is the order the tuple sort of
small plans gives: the same plan, entry for entry and in the same order (priorities, ties of
latest start and duration, committed jobs, jobs planned as tasks beside jobs planned alone)."""

from __future__ import annotations

import random

import pytest

from scheduler.model import Site
from scheduler.planner import PlanOptions, plan
from scheduler.planning import greedy
from tests.planner.helpers import T0, forecast, job


@pytest.mark.parametrize("seed", range(4))
def test_column_sort_gives_the_plan_of_the_tuple_sort(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    fcs = {"Z": forecast("Z", [rng.randrange(50_000, 400_000, 25_000) for _ in range(48)], [1800] * 48),
           "Y": forecast("Y", [rng.randrange(50_000, 400_000, 25_000) for _ in range(48)], [1800] * 48)}
    gpus = 0 if seed % 2 else 3
    sites = {"a": Site("a", "Z", gpus=gpus), "b": Site("b", "Y", gpus=gpus)}
    jobs = []
    for i in range(1, 400):
        e = rng.choice([0, 0, 600, 1800])
        jobs.append(job(i, rng.choice([1800, 3600, 7200]), e, e + rng.choice([3600, 7200, 36_000]),
                        site=rng.choice("ab"), allowed=["a", "b"] if rng.random() < 0.2 else [],
                        gpus=rng.choice([0, 1]), priority=rng.choice([0, 0, 5, -3]),
                        interruptible=rng.random() < 0.1))
    rng.shuffle(jobs)
    opts = PlanOptions(committed=frozenset(rng.sample(range(1, 400), 40)))
    assert len(jobs) >= greedy.SORT_COLUMNS_MIN
    columns = plan(jobs, fcs, sites, T0, opts)
    monkeypatch.setattr(greedy, "SORT_COLUMNS_MIN", 10**9)
    tuples = plan(jobs, fcs, sites, T0, opts)
    assert list(columns.entries.items()) == list(tuples.entries.items())
    assert columns.unplanned == tuples.unplanned
