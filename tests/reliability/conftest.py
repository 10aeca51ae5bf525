"""A real ``carbonshift run`` daemon as a subprocess, on an accelerated clock, for fault tests.

:class:`Sim` keeps one simulated timeline for every process it starts: each gets
``CARBONSHIFT_CLOCK=<simulated now>*<factor>`` at its own start, so a restarted daemon
carries on from where the timeline is, not from the origin. Its config points at a replay
trace (the shipped values re-timed around the origin), a private data directory and a
private SQLite file. Jobs are small Python scripts that append ``start TAG`` / ``end TAG``
to a ledger file, so a test can tell whether any job ran twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.clock import Clock
from scheduler.config import load_settings
from scheduler.model import JobState, Policy
from scheduler.queue import SubmitRequest
from scheduler.timeutil import iso
from tests.cli.conftest import cs, write_retimed_trace  # noqa: F401 (cs: a fixture)
from tests.integration.conftest import app  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
ORIGIN = datetime(2026, 3, 15, 17, 0, tzinfo=UTC)

JOB_SCRIPT = """\
import sys, time
tag, seconds, ledger = sys.argv[1], float(sys.argv[2]), sys.argv[3]
with open(ledger, "a") as f:
    f.write(f"start {tag}\\n")
end = time.time() + seconds
x = 0
while time.time() < end:
    x += 1
with open(ledger, "a") as f:
    f.write(f"end {tag}\\n")
print("done", tag)
"""


class SimClock:
    """The shared simulated timeline as a :class:`~scheduler.clock.Clock`."""

    def __init__(self, origin: datetime, factor: float) -> None:
        self.origin = origin
        self._factor = factor
        self._t0 = time.monotonic()

    @property
    def factor(self) -> float:
        return self._factor

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=(time.monotonic() - self._t0) * self._factor)

    def real_delay_s(self, until: datetime) -> float:
        return max(0.0, (until - self.now()).total_seconds() / self._factor)


class Sim:
    def __init__(self, tmp: Path, *, factor: float = 60.0, extra_config: str = "") -> None:
        self.tmp = tmp
        self.factor = factor
        self.trace = write_retimed_trace(tmp / "trace.csv", ORIGIN - timedelta(days=2))
        self.db_path = tmp / "cs.db"
        self.data = tmp / "data"
        self.ledger = tmp / "ledger.txt"
        self.script = tmp / "job.py"
        self.script.write_text(JOB_SCRIPT)
        self.config = tmp / "config.toml"
        self.config.write_text(
            f'default_zone = "TRACE"\ndb = "sqlite:///{self.db_path}"\ndata_dir = "{self.data}"\n'
            "sampling_interval_s = 0.2\nreplan_interval_s = 3600.0\n"
            # leases are real seconds: a dead daemon's claims and planner lease are taken
            # back after one lease, and an unadopted job is stopped after a third of one
            "lease_s = 20.0\n" + extra_config
            + f'[intensity]\nproviders = ["replay"]\ntrace = "{self.trace}"\n'
        )
        self.config.chmod(0o600)
        self.clock: Clock = SimClock(ORIGIN, factor)
        self.daemons: list[subprocess.Popen[bytes]] = []
        self._app: App | None = None

    # -- environment ----------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.tmp),
            "XDG_DATA_HOME": str(self.tmp / "xdg-data"),
            "XDG_CONFIG_HOME": str(self.tmp / "xdg-config"),
            "PYTHONPATH": str(REPO),
            "CARBONSHIFT_CONFIG": str(self.config),
            "CARBONSHIFT_CLOCK": f"{iso(self.clock.now())}*{self.factor:g}",
        }
        env.update(extra)
        return env

    # -- the Python API on the same database and timeline ---------------------------------
    @property
    def app(self) -> App:
        if self._app is None:
            settings = load_settings(env={"HOME": str(self.tmp)}, config_path=str(self.config))
            self._app = App(settings, env={"PATH": "/usr/bin:/bin"}, clock=self.clock)
        return self._app

    def submit(self, tag: str, seconds: float, *, after_s: float = 0.0, deadline: str = "6h",
               duration: str = "2m", argv: list[str] | None = None) -> int:
        """Submit a ledger job; ``after_s`` simulated seconds from now it may start."""
        from scheduler.timeutil import parse_duration_s

        now = self.clock.now()
        req = SubmitRequest(
            argv=argv or [PY, str(self.script), tag, str(seconds), str(self.ledger)],
            duration_s=parse_duration_s(duration), name=tag,
            overrides=Policy(name="(flags)", deadline_s=parse_duration_s(deadline),
                             run_now=True),
            not_before=now + timedelta(seconds=after_s) if after_s else None,
            cwd=str(self.tmp), submitter_env={"PATH": "/usr/bin:/bin"},
        )
        res = self.app.queue.submit(req, now=now)
        assert res.job.id is not None
        return res.job.id

    # -- processes -------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 60.0, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PY, "-c", "import sys; from scheduler.cli import main; sys.exit(main())", *args],
            env=self.env(**extra), cwd=str(self.tmp), capture_output=True, text=True,
            timeout=timeout,
        )

    def start_daemon(self, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"daemon-{len(self.daemons)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [PY, "-c", "import sys; from scheduler.cli import main; sys.exit(main())", "run", *args],
            env=self.env(**extra), cwd=str(self.tmp), stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        self.daemons.append(proc)
        return proc

    def daemon_log(self) -> str:
        return "\n".join(
            (self.tmp / f"daemon-{i}.log").read_text(errors="replace") for i in range(len(self.daemons))
        )

    def kill_daemon(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def wait_for(self, predicate: object, timeout: float = 30.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\n{self.daemon_log()[-4000:]}")

    def state(self, job_id: int) -> JobState:
        return self.app.store.get_job(job_id).state

    def ledger_counts(self) -> tuple[Counter[str], Counter[str]]:
        lines = self.ledger.read_text().split() if self.ledger.exists() else []
        starts: Counter[str] = Counter()
        ends: Counter[str] = Counter()
        for verb, tag in zip(lines[::2], lines[1::2], strict=True):
            (starts if verb == "start" else ends)[tag] += 1
        return starts, ends

    def close(self) -> None:
        for proc in self.daemons:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if self._app is not None:
            self._app.close()
        # kill any job process group left behind by a test that failed half-way
        if self._app is not None or self.db_path.exists():
            try:
                app = self.app
                for run in app.store.open_runs():
                    pid = (run.handle or "").split(":", 1)[0]
                    if pid.isdigit():
                        try:
                            os.killpg(int(pid), signal.SIGKILL)
                        except OSError:
                            pass
                app.close()
            except Exception:
                pass


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    s = Sim(tmp_path)
    try:
        yield s
    finally:
        s.close()
