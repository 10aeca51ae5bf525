"""Submitting jobs through the Python API into SQLite (issue 2: at least 2,000 jobs/s):
``Queue.submit`` and ``Client.submit`` one at a time, and ``Queue.submit_many`` batched.

Run with ``python -m pytest tests/benchmarks/test_bench_submit.py --benchmark-enable``;
without ``--benchmark-enable`` each benchmark runs once on a smaller count, as a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.model import Policy
from scheduler.queue import SubmitRequest
from tests.integration.conftest import make_app


def _requests(n: int) -> list[SubmitRequest]:
    return [
        SubmitRequest(argv=["python", "train.py", f"--seed={i}"], duration_s=3600 * (1 + i % 4),
                      name=f"job-{i}", overrides=Policy("(flags)", deadline_s=24 * 3600), cwd="/tmp",
                      submitter_env={"PATH": "/usr/bin"})
        for i in range(n)
    ]


def _count(benchmark: object) -> int:
    return 500 if getattr(benchmark, "disabled", True) else 10_000


def test_submit_one_at_a_time(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    n = _count(benchmark)
    apps: list[App] = []

    def setup() -> tuple[tuple[App, list[SubmitRequest]], dict[str, object]]:
        d = tmp_path / f"r{len(apps)}"
        d.mkdir()
        app = make_app(d, factor=1.0)
        apps.append(app)
        return (app, _requests(n)), {}

    def run(app: App, reqs: list[SubmitRequest]) -> None:
        for r in reqs:
            app.queue.submit(r)

    benchmark.extra_info["jobs"] = n
    benchmark.pedantic(run, setup=setup, rounds=3 if not benchmark.disabled else 1, iterations=1)
    assert len(apps[-1].store.list_jobs()) == n
    if not benchmark.disabled:
        med = benchmark.stats.stats.median
        benchmark.extra_info["jobs_per_s"] = n / med
    for a in apps:
        a.close()


def test_client_submit_one_at_a_time(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The public API as the issue states it: ``Client.submit`` one job at a time."""
    from scheduler import Client

    n = _count(benchmark)
    clients: list[Client] = []

    def setup() -> tuple[tuple[Client], dict[str, object]]:
        d = tmp_path / f"c{len(clients)}"
        d.mkdir()
        clients.append(Client.from_app(make_app(d, factor=1.0)))
        return (clients[-1],), {}

    def run(cs: Client) -> None:
        for i in range(n):
            cs.submit(["python", "train.py", f"--seed={i}"], duration=3600 * (1 + i % 4),
                      deadline="24h", name=f"job-{i}", cwd="/tmp")

    benchmark.pedantic(run, setup=setup, rounds=3 if not benchmark.disabled else 1, iterations=1)
    assert len(clients[-1].app.store.list_jobs()) == n
    if not benchmark.disabled:
        benchmark.extra_info["jobs_per_s"] = n / benchmark.stats.stats.median
    for c in clients:
        c.close()


def test_submit_many_in_one_transaction(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    n = _count(benchmark)
    apps: list[App] = []

    def setup() -> tuple[tuple[App, list[SubmitRequest]], dict[str, object]]:
        d = tmp_path / f"m{len(apps)}"
        d.mkdir()
        app = make_app(d, factor=1.0)
        apps.append(app)
        return (app, _requests(n)), {}

    benchmark.pedantic(lambda app, reqs: app.queue.submit_many(reqs), setup=setup,
                       rounds=3 if not benchmark.disabled else 1, iterations=1)
    assert len(apps[-1].store.list_jobs()) == n
    if not benchmark.disabled:
        benchmark.extra_info["jobs_per_s"] = n / benchmark.stats.stats.median
    for a in apps:
        a.close()


@pytest.fixture(autouse=True)
def _quiet_pytest_benchmark_warnings() -> None:
    return None
