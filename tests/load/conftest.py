"""A queue of 10,000 jobs in an SQLite file, and the settings every process opens it with."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.clock import AcceleratedClock
from scheduler.config import Settings, load_settings
from tests.cli.conftest import cs, write_retimed_trace  # noqa: F401 (cs: a fixture)
from tests.integration.conftest import ORIGIN, request

QUEUED = 10_000


def settings_for(tmp: Path) -> Settings:
    settings = load_settings(
        env={"HOME": str(tmp)},
        overrides={"db": f"sqlite:///{tmp / 'cs.db'}", "data_dir": str(tmp / "data"),
                   "default_zone": "TRACE"},
    )
    return replace(settings, intensity={**settings.intensity, "providers": ["replay"],
                                        "trace": str(tmp / "trace.csv")})


def open_app(tmp: Path) -> App:
    return App(settings_for(tmp), env={"PATH": "/usr/bin:/bin"}, clock=AcceleratedClock(ORIGIN, 60.0))


def fill(app: App, n: int, prefix: str = "queued") -> None:
    for start in range(0, n, 2000):
        reqs = []
        for i in range(start, min(n, start + 2000)):
            req = request(["python", "train.py", f"--seed={i}"], duration="1h", deadline_s=24 * 3600)
            req.name = f"{prefix}-{i}"
            reqs.append(req)
        app.queue.submit_many(reqs)


@pytest.fixture(scope="module")
def big_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with ``cs.db`` holding 10,000 planned jobs and the trace they use."""
    tmp = tmp_path_factory.mktemp("load")
    write_retimed_trace(tmp / "trace.csv", ORIGIN - __import__("datetime").timedelta(days=2))
    app = open_app(tmp)
    fill(app, QUEUED)
    app.close()
    yield tmp
