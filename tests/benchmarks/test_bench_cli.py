"""Wall time of `carbonshift --help` and `carbonshift submit` (issue 2: <= 0.3 s and 0.5 s).

Each round is a fresh process, as a user would run it. Run with ``--benchmark-enable``.
``test_submit_wall_time`` uses the default providers, which fail offline: the first round
asks the live provider and falls back, the later ones skip it (it failed a moment ago);
``test_submit_wall_time_warm_cache`` is served from a fresh cached forecast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("carbonshift")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    # bytecode, as an installed package has it (pip compiles at install), kept out of the
    # tree: with PYTHONDONTWRITEBYTECODE and no __pycache__, every run would compile every
    # module from source (~0.2 s more for submit); the warm-up round writes it
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    return env


def _cmd(*args: str) -> list[str]:
    if EXE:
        return [EXE, *args]
    return [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())", *args]


def test_help_wall_time(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path)
    result = benchmark.pedantic(
        lambda: subprocess.run(_cmd("--help"), env=env, capture_output=True, check=True),
        rounds=1 if benchmark.disabled else 10, iterations=1,
        warmup_rounds=0 if benchmark.disabled else 1,
    )
    assert b"submit" in result.stdout


def test_submit_wall_time(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path)
    subprocess.run(_cmd("db", "upgrade"), env=env, capture_output=True, check=True)
    result = benchmark.pedantic(
        lambda: subprocess.run(
            _cmd("submit", "--duration", "2h", "--deadline", "12h", "--", "python", "train.py"),
            env=env, capture_output=True, check=True,
        ),
        rounds=1 if benchmark.disabled else 10, iterations=1,
        warmup_rounds=0 if benchmark.disabled else 1,
    )
    assert b"planned" in result.stdout


def test_submit_wall_time_warm_cache(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from intensity.model import IntensityPoint, Kind, Source
    from scheduler.storage.store import open_store

    env = _env(tmp_path)
    subprocess.run(_cmd("db", "upgrade"), env=env, capture_output=True, check=True)
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'carbonshift' / 'carbonshift.db'}")
    now = datetime.now(UTC)
    half = timedelta(minutes=30)
    store.add_points([IntensityPoint("GB", now + i * half - half, now + i * half, 120.0 + i % 48,
                                     Kind.FORECAST, "ukgrid", issued_at=now, source=Source.PROVIDER)
                      for i in range(100)])
    store.close()
    result = benchmark.pedantic(
        lambda: subprocess.run(
            _cmd("submit", "--duration", "2h", "--deadline", "12h", "--zone", "GB", "--", "python", "train.py"),
            env=env, capture_output=True, check=True,
        ),
        rounds=1 if benchmark.disabled else 10, iterations=1,
        warmup_rounds=0 if benchmark.disabled else 1,
    )
    assert b"forecast from ukgrid:cache" in result.stdout


@pytest.mark.skipif(EXE is None, reason="the console script is not installed")
def test_console_script_installed() -> None:
    assert EXE is not None
