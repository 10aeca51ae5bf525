"""How fast `carbonshift submit` can write: jobs inserted one ``add_job()`` call (one
transaction) at a time into an SQLite file in WAL mode.

Run with ``pytest tests/benchmarks/test_bench_store.py --benchmark-enable``: each round
inserts 10,000 jobs into a fresh file and the report's ``jobs_per_s`` extra info is
10,000 / that round's time. With benchmarks disabled (the default) it runs one short round
as a smoke test.
"""

from __future__ import annotations

import itertools
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scheduler.model import Job
from scheduler.storage.store import SqlStore, open_store

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_add_job_one_call_at_a_time(benchmark: Any, tmp_path: Path) -> None:
    n_jobs = 300 if benchmark.disabled else 10_000
    counter = itertools.count()
    stores: list[SqlStore] = []
    job = Job(
        name="bench", argv=["python", "train.py", "--lr", "3e-4"], duration_s=3600,
        zone="GB", submitted_at=T0, earliest_start=T0, latest_start=T0 + timedelta(hours=8),
        deadline_at=T0 + timedelta(hours=9), env={"SEED": "0"}, allowed_sites=["local"],
        owner="bench", policy_name="overnight",
    )

    def fresh_store() -> tuple[tuple[SqlStore], dict[str, Any]]:
        store = open_store(f"sqlite:///{tmp_path / f'bench{next(counter)}.db'}")
        stores.append(store)
        return (store,), {}

    cpu_s: list[float] = []

    def insert_all(store: SqlStore) -> None:
        cpu0 = time.process_time()
        for _ in range(n_jobs):
            store.add_job(job)
        cpu_s.append(time.process_time() - cpu0)

    benchmark.pedantic(insert_all, setup=fresh_store, rounds=1 if benchmark.disabled else 5,
                       iterations=1)
    for store in stores:
        assert len(store.list_jobs()) == n_jobs
        store.close()
    if not benchmark.disabled:
        median_s = statistics.median(benchmark.stats.stats.data)
        benchmark.extra_info["jobs"] = n_jobs
        benchmark.extra_info["jobs_per_s"] = round(n_jobs / median_s)
        # on a shared machine wall time includes waiting for a CPU; CPU time does not
        benchmark.extra_info["jobs_per_cpu_s"] = round(n_jobs / statistics.median(cpu_s))
        print(f"\nadd_job: median {n_jobs / median_s:,.0f} jobs/s wall, "
              f"{n_jobs / statistics.median(cpu_s):,.0f} jobs per CPU-second, "
              f"over {n_jobs:,} jobs a round")
