"""Real agent processes (``carbonshift run``) sharing one queue, and jobs that say when they ran.

``Cluster`` starts agents as subprocesses of the real CLI against one database URL (the
PostgreSQL server through ``pg_url``, or an SQLite file), submits jobs through the Python
API into a capacity-free site (so the planner starts them all at once), and reads back what
happened: the jobs' states and runs from the database, and, from files the jobs write,
which copy of each job ran when. Leases are short (``CARBONSHIFT_LEASE_S``) so that the
death of an agent is noticed within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.config import load_settings
from scheduler.model import JobState, Site
from scheduler.queue import SubmitRequest
from scheduler.storage.store import SqlStore, open_store

SITE = "pool"
CLI = [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())"]
LEASE_S = 3.0


@dataclass
class Agent:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    killed_at: float | None = None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Cluster:
    """Agents and jobs on one database; everything is torn down by the fixture."""

    url: str
    root: Path
    lease_s: float = LEASE_S
    agents: list[Agent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.marks = self.root / "marks"
        self.marks.mkdir(exist_ok=True)
        config = self.root / "config.toml"  # offline: the static annual averages
        config.write_text('[intensity]\nproviders = ["static"]\n')
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.root / "data"),
            "CARBONSHIFT_DB": self.url,
            "CARBONSHIFT_LEASE_S": f"{self.lease_s:g}",
            "CARBONSHIFT_DEFAULT_ZONE": "GB",
            "CARBONSHIFT_CONFIG": str(config),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "LC_ALL": "C.UTF-8",
        }
        settings = load_settings(env=self.env)
        self.store: SqlStore = open_store(self.url)
        self.app = App(settings, env=self.env, store=self.store)
        # no capacity limit: every job is planned to start at once
        self.store.put_site(Site(name=SITE, zone="GB", executor="local", cpus=0, gpus=0))

    # -- agents ---------------------------------------------------------------------------
    def start_agent(self, name: str, *, planner: bool = True, site: str = SITE) -> Agent:
        log = self.root / f"{name}.log"
        argv = [*CLI, "run", "--site", site, "--agent-name", name, "--sample-interval", "5s"]
        if not planner:
            argv.append("--no-planner")
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=self.root, start_new_session=True)
        agent = Agent(name, proc, log)
        self.agents.append(agent)
        return agent

    def kill(self, agent: Agent) -> float:
        """SIGKILL the agent (its process only: its jobs' supervisors live on)."""
        agent.proc.send_signal(signal.SIGKILL)
        agent.killed_at = time.monotonic()
        agent.proc.wait(10)
        return agent.killed_at

    def stop_all(self) -> None:
        for agent in self.agents:
            if agent.proc.poll() is None:
                agent.proc.send_signal(signal.SIGTERM)
        for agent in self.agents:
            try:
                agent.proc.wait(20)
            except subprocess.TimeoutExpired:
                agent.proc.kill()
                agent.proc.wait(5)

    def logs(self) -> str:
        return "\n".join(f"--- {a.name} ---\n{a.text()[-3000:]}" for a in self.agents)

    # -- jobs -----------------------------------------------------------------------------
    def submit(self, commands: list[list[str]], *, deadline_s: int = 6 * 3600) -> list[int]:
        """Submit jobs (run now on the pool site) in one transaction; their ids in order."""
        from scheduler.model import Policy

        reqs = [
            SubmitRequest(argv=argv, duration_s=60, name=f"j{i}", site=SITE, cwd=str(self.root),
                          submitter_env={"PATH": "/usr/bin:/bin"},
                          overrides=Policy(name="(flags)", run_now=True, deadline_s=deadline_s))
            for i, argv in enumerate(commands)
        ]
        jobs = self.app.queue.submit_many(reqs)
        return [j.id for j in jobs if j.id is not None]

    def marking(self, token: str, *, sleep_s: float = 0.0, again_s: float | None = None) -> list[str]:
        """A job that appends ``token`` to a shared file when it starts (and beats while it
        sleeps, into its own file, so overlapping copies can be seen). A copy started after
        another has beaten (a rerun) sleeps ``again_s`` instead (default: ``sleep_s``): the
        tests need the first copy long, and the rerun only long enough to be seen."""
        shared = self.marks / "started"
        if sleep_s <= 0:
            return ["/bin/sh", "-c", f"echo {token} >> {shared}"]
        beats = self.marks / f"{token}.beats"
        n = max(1, int(sleep_s / 0.2))
        again = n if again_s is None else max(1, int(again_s / 0.2))
        script = (f"echo {token} >> {shared}; n={n}; [ -e {beats} ] && n={again}; i=0; "
                  f"while [ $i -lt $n ]; do "
                  f"echo \"$$ $(date +%s.%N)\" >> {beats}; sleep 0.2; i=$((i+1)); done")
        return ["/bin/sh", "-c", script]

    def started_tokens(self) -> Counter[str]:
        path = self.marks / "started"
        return Counter(path.read_text().split()) if path.exists() else Counter()

    def beats(self, token: str) -> dict[str, tuple[float, float]]:
        """For each copy (shell pid) of a beating job: its first and last beat."""
        path = self.marks / f"{token}.beats"
        spans: dict[str, tuple[float, float]] = {}
        if not path.exists():
            return spans
        for line in path.read_text().splitlines():
            pid, _, stamp = line.partition(" ")
            try:
                t = float(stamp)
            except ValueError:
                continue
            lo, hi = spans.get(pid, (t, t))
            spans[pid] = (min(lo, t), max(hi, t))
        return spans

    def wait_all_done(self, ids: list[int], timeout_s: float) -> float:
        """Wait until no job is waiting or running; return the seconds it took."""
        t0 = time.monotonic()
        busy = {JobState.PENDING.value, JobState.PLANNED.value, JobState.RUNNING.value,
                JobState.SUSPENDED.value}
        while time.monotonic() - t0 < timeout_s:
            counts = self.store.count_jobs_by_state()
            if not busy & {k for k, v in counts.items() if v}:
                return time.monotonic() - t0
            for agent in self.agents:
                if agent.killed_at is None and agent.proc.poll() is not None:
                    raise AssertionError(f"agent {agent.name} exited:\n{agent.text()[-4000:]}")
            time.sleep(0.5)
        raise AssertionError(
            f"jobs not done after {timeout_s}s: {self.store.count_jobs_by_state()}\n{self.logs()}"
        )

    def close(self) -> None:
        self.stop_all()
        self.store.close()


def cluster_on(url: str, root: Path, *, lease_s: float = LEASE_S) -> Iterator[Cluster]:
    cluster = Cluster(url, root, lease_s=lease_s)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_on(pg_url, tmp_path)


@pytest.fixture
def sqlite_cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_on(f"sqlite:///{tmp_path / 'queue.db'}", tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """The same cluster on SQLite (processes of one host) and on PostgreSQL."""
    yield from cluster_on(backend_url(request, tmp_path), tmp_path)


def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database of a fixture parametrised over ``sqlite`` and ``postgres``."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return str(request.getfixturevalue("pg_url"))
