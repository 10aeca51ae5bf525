"""Helpers for the probes tests: real processes that burn known CPU time, a fake clock.

A module with its own name (not ``conftest``): several test folders have a conftest.py,
and ``import conftest`` would find whichever was imported first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Burns CPU time (process_time, so a busy machine only slows it) in the root and in children
# that fork and exit; the parent reaps them. BURN_S, CHILDREN and CHILD_S are given.
BURN_PRELUDE = textwrap.dedent(
    """
    import os, sys, time
    def burn(seconds):
        t0 = time.process_time()
        while time.process_time() - t0 < seconds:
            pass
    """
)


def burner_code(root_s: float, children: int = 0, child_s: float = 0.0) -> str:
    """A script burning ``root_s`` itself and ``child_s`` in each of ``children`` forked children."""
    return BURN_PRELUDE + textwrap.dedent(
        f"""
        pids = []
        for _ in range({children}):
            pid = os.fork()
            if pid == 0:
                burn({child_s})
                os._exit(0)
            pids.append(pid)
        burn({root_s})
        for pid in pids:
            os.waitpid(pid, 0)
        """
    )


def spawn(code: str, *, new_session: bool = True) -> subprocess.Popen[bytes]:
    """Run ``code`` in a fresh Python, in its own session (as the executor does) by default."""
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=new_session)


def reap(proc: subprocess.Popen[bytes]) -> float:
    """Wait for ``proc`` with ``os.wait4`` and return its rusage CPU seconds."""
    _pid, _status, ru = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return ru.ru_utime + ru.ru_stime


def kill_group(pgid: int) -> None:
    """Kill whatever is left of a test's process group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class FakeClock:
    """An aware UTC clock that moves only when told (or by ``step`` per call)."""

    def __init__(
        self, start: datetime | None = None, step: timedelta = timedelta(seconds=1)
    ) -> None:
        self.t = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.step = step

    def __call__(self) -> datetime:
        self.t += self.step
        return self.t


def wait_for(path: Path, timeout_s: float = 10.0) -> None:
    """Wait until ``path`` exists."""
    import time

    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
