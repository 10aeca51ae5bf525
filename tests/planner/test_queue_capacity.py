"""The queue with a capacity-managed site: submits fit around committed jobs; re-plans keep
every slot within capacity."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.errors import InfeasibleJob
from scheduler.model import Site
from tests.integration.conftest import make_app, request


def _overlaps(jobs) -> int:  # type: ignore[no-untyped-def]
    """Most GPUs in use at once, per 5-minute slot."""
    use: Counter[int] = Counter()
    for j in jobs:
        a = int(j.planned_start.timestamp()) // 300
        b = -(-int((j.planned_start + timedelta(seconds=j.duration_s)).timestamp()) // 300)
        for k in range(a, b):
            use[k] += j.gpus
    return max(use.values())


def test_submits_and_batches_respect_committed_capacity(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        app.store.put_site(Site("box", "TRACE", gpus=2))
        now = app.clock.now()

        def req(name: str, deadline_h: int):  # type: ignore[no-untyped-def]
            r = request(["true"], duration="2h", name=name, deadline_s=deadline_h * 3600)
            r.site, r.gpus = "box", 1
            return r

        # two jobs that must start now take both GPUs for two hours...
        urgent = [app.queue.submit(req(f"u{i}", 2), now=now).job for i in range(2)]
        # ...so a third that must also start now is refused, with when it could finish
        with pytest.raises(InfeasibleJob, match=r"earliest finish that fits is .*--deadline 4h"):
            app.queue.submit(req("late", 2), now=now)
        singles = [app.queue.submit(req(f"s{i}", 12), now=now).job for i in range(2)]
        batch = app.queue.submit_many([req(f"b{i}", 12) for i in range(3)], now=now)
        jobs = urgent + singles + batch
        assert _overlaps(jobs) <= 2
        assert all(j.planned_start >= now + timedelta(hours=2) for j in singles + batch)
        # starts are whole seconds (rounded up): one second of rounding is not lateness
        assert all(j.planned_start + timedelta(seconds=j.duration_s - 1) <= j.deadline_at for j in jobs)
        _, moved = app.queue.replan(now + timedelta(minutes=1))
        assert _overlaps(app.queue.jobs()) <= 2
        assert len(app.queue.jobs()) == 7 and moved is not None
    finally:
        app.close()
