"""The ``cs`` fixture: run the real CLI in-process against a private home and database.

``cs("submit", "--duration", "1h", "--", "true")`` returns a :class:`Result` with the exit
code, stdout and stderr. The environment points HOME and the XDG directories into
``tmp_path`` and a config file configures the replay provider on a real trace (the shipped
GB March 2023 values, re-timed to start two days before now) so forecasts are real data.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intensity.providers.replay import SHIPPED_TRACE
from scheduler.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str


def write_retimed_trace(path: Path, start: datetime) -> Path:
    """The shipped trace's values as a plain CSV beginning at ``start`` (hourly)."""
    with SHIPPED_TRACE.open(encoding="utf-8") as f:
        values = [row["Carbon Intensity gCO₂eq/kWh (LCA)"] for row in csv.DictReader(f)]
    with path.open("w", encoding="utf-8") as f:
        f.write("time,intensity_g_per_kwh\n")
        for i, v in enumerate(values):
            t = start + timedelta(hours=i)
            f.write(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{v}\n")
    return path


class CS:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp = tmp_path
        self.capsys = capsys
        self.home = tmp_path / "home"
        self.data = tmp_path / "data"
        self.home.mkdir()
        for key in list(__import__("os").environ):
            if key.startswith("CARBONSHIFT_"):
                monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.setenv("XDG_DATA_HOME", str(self.data))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.trace = write_retimed_trace(tmp_path / "trace.csv", now - timedelta(days=2))
        self.config = tmp_path / "config.toml"
        self.config.write_text(
            f'default_zone = "TRACE"\n[intensity]\nproviders = ["replay"]\ntrace = "{self.trace}"\n'
        )
        monkeypatch.setenv("CARBONSHIFT_CONFIG", str(self.config))
        self.db_path = self.data / "carbonshift" / "carbonshift.db"

    def __call__(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = main(list(args))
        out, err = self.capsys.readouterr()
        return Result(code, out, err)


@pytest.fixture
def cs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[CS]:
    yield CS(tmp_path, monkeypatch, capsys)


CLI_ARGV = [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())"]


def offline_cli(tmp_path: Path, db: Path) -> tuple[dict[str, str], Callable[..., subprocess.CompletedProcess[str]]]:
    """The environment of a real CLI subprocess on the SQLite file ``db``, offline (static
    annual averages), home and data in ``tmp_path``; and ``cs(*args)`` running it there."""
    config = tmp_path / "config.toml"
    config.write_text('[intensity]\nproviders = ["static"]\n')
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "data"), "CARBONSHIFT_CONFIG": str(config),
           "CARBONSHIFT_DB": str(db), "CARBONSHIFT_DEFAULT_ZONE": "GB",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "LC_ALL": "C.UTF-8"}

    def cs(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI_ARGV, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=timeout)

    return env, cs


def read_pty(master: int, proc: subprocess.Popen[bytes], timeout_s: float) -> bytes:
    """Everything a child writes to the pseudo-terminal ``master`` until it closes it or
    exits (at most ``timeout_s``); ``master`` is closed."""
    import select
    import time

    chunks: list[bytes] = []
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return b"".join(chunks)
