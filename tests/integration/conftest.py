"""An app on a temporary SQLite file, a replayed real trace and an accelerated clock."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.clock import AcceleratedClock
from scheduler.config import load_settings
from scheduler.dispatch import Daemon
from scheduler.model import Policy
from scheduler.queue import SubmitRequest
from tests.cli.conftest import write_retimed_trace

ORIGIN = datetime(2026, 3, 15, 17, 0, tzinfo=UTC)
PY = sys.executable


def make_app(tmp_path: Path, *, factor: float = 60.0, origin: datetime = ORIGIN,
             trace: Path | None = None, **overrides: object) -> App:
    """An app on ``trace`` (default: the shipped GB trace re-timed to two days before
    ``origin``), a private SQLite file and a clock started at ``origin``; ``overrides``
    are settings (``lease_s=3.0``...)."""
    trace = trace or write_retimed_trace(tmp_path / "trace.csv", origin - timedelta(days=2))
    settings = load_settings(
        env={"HOME": str(tmp_path)},
        overrides={"db": f"sqlite:///{tmp_path / 'cs.db'}", "data_dir": str(tmp_path / "data"),
                   "default_zone": "TRACE", "replan_interval_s": 3600.0, **overrides},
    )
    settings = replace(settings, intensity={**settings.intensity, "providers": ["replay"], "trace": str(trace)})
    app = App(settings, env={"PATH": "/usr/bin:/bin"})
    _ = app.store  # migrate before the clock starts
    app.clock = AcceleratedClock(origin, factor)
    return app


def request(argv: list[str], *, duration: str = "1h", **policy: object) -> SubmitRequest:
    from scheduler.timeutil import parse_duration_s

    return SubmitRequest(
        argv=argv, duration_s=parse_duration_s(duration), name=policy.pop("name", None),  # type: ignore[arg-type]
        overrides=Policy(name="(flags)", **policy),  # type: ignore[arg-type]
        cwd=str(Path.cwd()), submitter_env={"PATH": "/usr/bin:/bin"},
    )


def run_daemon(app: App, *, timeout_s: float = 60.0, **kw: object) -> tuple[Daemon, list[str]]:
    """Run a daemon until idle (or ``timeout_s`` real seconds); return it and its event lines."""
    lines: list[str] = []
    daemon = Daemon(app, sample_interval_s=0.2, tick_s=0.1, exit_when_idle=True,
                    on_event=lines.append, **kw)  # type: ignore[arg-type]
    t = threading.Thread(target=daemon.run_forever, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        daemon.stop()
        t.join(10)
        raise AssertionError("daemon did not finish in time:\n" + "\n".join(lines))
    return daemon, lines


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = make_app(tmp_path)
    yield a
    a.close()


BurnFn = Callable[[float], list[str]]


def burn(seconds: float, *, exit_code: int = 0, out: str = "hello") -> list[str]:
    return [PY, "-c",
            f"import time,sys\nend=time.time()+{seconds}\nx=0\nwhile time.time()<end: x+=1\n"
            f"print({out!r}); sys.stderr.write('to stderr\\n'); sys.exit({exit_code})"]
