"""The queue is a service over the collaborators it is handed (a store, an intensity
service, settings, a clock, a user), not over the whole App: built here from real parts
(a SQLite file, the replay provider on the shipped trace, a clock that moves when told) with
no App at all, it submits, plans and refuses another user's cancel."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.clock import ManualClock
from scheduler.config import load_settings
from scheduler.errors import NotOwner
from scheduler.intensity_setup import build_intensity_service
from scheduler.model import JobState, Policy
from scheduler.queue import Queue, SubmitRequest
from scheduler.storage.store import open_store
from tests.cli.conftest import write_retimed_trace
from tests.integration.conftest import ORIGIN

QUEUE_DIR = Path(__file__).resolve().parents[2] / "scheduler" / "queue"


def test_queue_imports_no_app() -> None:
    files = sorted(QUEUE_DIR.glob("*.py"))
    assert {p.name for p in files} >= {"ports.py", "submit.py", "replan.py", "cancel.py"}
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "scheduler.app" not in names, path.name


def test_a_queue_from_its_parts_submits_plans_and_checks_owners(tmp_path: Path) -> None:
    trace = write_retimed_trace(tmp_path / "trace.csv", ORIGIN - timedelta(days=2))
    settings = load_settings(env={"HOME": str(tmp_path)},
                             overrides={"db": f"sqlite:///{tmp_path / 'q.db'}", "default_zone": "TRACE"})
    settings = replace(settings, intensity={**settings.intensity, "providers": ["replay"], "trace": str(trace)})
    store = open_store(settings.db)
    intensity = build_intensity_service(settings, {}, store)
    clock = ManualClock(ORIGIN)
    who = ["alice"]
    queue = Queue(store=lambda: store, intensity=lambda: intensity, settings=lambda: settings,
                  clock=lambda: clock, user=lambda: who[0])
    try:
        res = queue.submit(SubmitRequest(argv=["true"], duration_s=3600,
                                         overrides=Policy(name="(flags)", deadline_s=12 * 3600)))
        job = res.job
        assert job.owner == "alice" and job.state is JobState.PLANNED and job.submitted_at == ORIGIN
        assert job.planned_start is not None and ORIGIN <= job.planned_start <= ORIGIN + timedelta(hours=11)
        assert store.get_job(job.id).planned_start == job.planned_start  # type: ignore[arg-type]
        who[0] = "mallory"  # the user (like the clock) is read when needed, not at construction
        with pytest.raises(NotOwner):
            queue.cancel(job.id)  # type: ignore[arg-type]
        who[0] = "alice"
        clock.advance(300)
        cancelled, was_running = queue.cancel(job.id)  # type: ignore[arg-type]
        assert cancelled.state is JobState.CANCELLED and not was_running
        assert store.events_for_job(job.id)[-1].at == ORIGIN + timedelta(minutes=5)  # type: ignore[arg-type]
    finally:
        store.close()
