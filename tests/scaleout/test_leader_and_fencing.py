"""The pieces under the scale-out tests, fast: the planner lease, and a supervisor stopping
a job whose agent died (the fencing that keeps a reclaimed job from running twice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.leader import Leadership, LeaseTiming
from scheduler.storage.base import Lease
from scheduler.storage.store import open_store

T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def test_one_leader_renewal_takeover_and_release() -> None:
    store = open_store("sqlite://")
    clock = Clock()
    changes: list[tuple[str, bool, int | None]] = []

    def watcher(name: str):  # type: ignore[no-untyped-def]
        def on_change(leading: bool, lease: Lease | None) -> None:
            changes.append((name, leading, lease.term if lease else None))
        return on_change

    a = Leadership(store, "a", ttl_s=30, now=clock, on_change=watcher("a"))
    b = Leadership(store, "b", ttl_s=30, now=clock, on_change=watcher("b"))
    assert a.hold() and not b.hold()
    assert changes == [("a", True, 1)]
    # a renews every third of the lease; b keeps asking at the same pace and is refused
    for _ in range(9):
        clock.advance(10)
        assert a.hold() and not b.hold()
    lease = store.get_lease("planner")
    assert lease is not None and lease.holder == "a" and lease.until == clock.t + timedelta(seconds=30)
    # a stops renewing (dies): b takes over once the lease has run out, with term 2
    for _ in range(3):
        clock.advance(10)
        assert not b.hold() or clock.t >= lease.until
    clock.advance(10)
    assert b.hold()
    assert ("b", True, 2) in changes
    # a, back from a long pause, finds it lost the lease: it no longer leads
    assert not a.hold()
    assert ("a", False, 2) in changes
    # a clean stop hands over at once
    b.release()
    clock.advance(1)
    a._last_try = None  # ask now rather than at the next third of a lease
    assert a.hold() and store.get_lease("planner").term == 3  # type: ignore[union-attr]
    store.close()


def test_leader_counts_itself_out_before_its_lease_ends() -> None:
    store = open_store("sqlite://")
    clock = Clock()
    a = Leadership(store, "a", ttl_s=30, now=clock)
    assert a.hold()
    store.close()  # the database is gone: renewals fail from now on
    clock.advance(20)
    assert a.hold()  # still within the lease minus the margin (25 s)
    clock.advance(6)
    assert not a.hold()  # would be a planner without a lease: it stops first


def _supervise(tmp_path: Path, agent_pid: int, grace_s: float, sleep_s: float) -> subprocess.Popen[bytes]:
    agent_file = tmp_path / "run.agent"
    agent_file.write_text(str(agent_pid))
    return subprocess.Popen(
        [sys.executable, "-S", "-m", "scheduler.executors.supervise",
         "--exit-file", str(tmp_path / "run.exit.json"), "--out", str(tmp_path / "run.out"),
         "--err", str(tmp_path / "run.err"), "--agent-file", str(agent_file),
         "--orphan-grace", str(grace_s), "--", "sleep", str(sleep_s)],
        cwd=Path(__file__).resolve().parents[2], start_new_session=True,
    )


def test_supervisor_stops_the_job_when_its_agent_is_gone(tmp_path: Path) -> None:
    agent = subprocess.Popen(["sleep", "1"])
    sup = _supervise(tmp_path, agent.pid, grace_s=1.0, sleep_s=60)
    agent.wait()
    t0 = time.monotonic()
    assert sup.wait(30) == 143  # SIGTERM, the shell convention
    assert time.monotonic() - t0 < 10
    record = json.loads((tmp_path / "run.exit.json").read_text())
    assert record["lost"] is True and "died and no agent adopted the run" in record["error"]
    assert "died and no agent adopted" in (tmp_path / "run.err").read_text()


def test_adopted_or_detached_jobs_keep_running(tmp_path: Path) -> None:
    agent = subprocess.Popen(["sleep", "0.5"])
    sup = _supervise(tmp_path, agent.pid, grace_s=1.5, sleep_s=4)
    agent.wait()
    (tmp_path / "run.agent").write_text("detached")  # a clean stop: wait for a successor
    time.sleep(2.5)
    assert sup.poll() is None
    # a successor adopts it (writes its own pid): the job runs to its end
    (tmp_path / "run.agent").write_text(str(__import__("os").getpid()))
    assert sup.wait(30) == 0
    record = json.loads((tmp_path / "run.exit.json").read_text())
    assert "lost" not in record and record["exit_code"] == 0


def _supervise_lease(tmp_path: Path, sleep_s: float) -> subprocess.Popen[bytes]:
    """A supervisor whose agent (this test process) is alive but renews the lease by hand."""
    (tmp_path / "run.agent").write_text(str(os.getpid()))
    return subprocess.Popen(
        [sys.executable, "-S", "-m", "scheduler.executors.supervise",
         "--exit-file", str(tmp_path / "run.exit.json"), "--out", str(tmp_path / "run.out"),
         "--err", str(tmp_path / "run.err"), "--agent-file", str(tmp_path / "run.agent"),
         "--orphan-grace", "1", "--lease-file", str(tmp_path / "run.lease"),
         "--fence-before", "1", "--kill-grace", "1", "--", "sleep", str(sleep_s)],
        cwd=Path(__file__).resolve().parents[2], start_new_session=True,
    )


def test_supervisor_stops_the_job_when_its_live_agent_stops_renewing(tmp_path: Path) -> None:
    lease = tmp_path / "run.lease"
    lease.write_text(f"{time.time() + 2.5:.3f}")
    sup = _supervise_lease(tmp_path, sleep_s=60)
    assert sup.wait(30) == 143  # the agent's pid lives on; the lease ran out
    record = json.loads((tmp_path / "run.exit.json").read_text())
    assert record["lost"] is True and "stopped renewing the run's lease" in record["error"]


def test_renewed_or_parked_leases_keep_the_job_running(tmp_path: Path) -> None:
    lease = tmp_path / "run.lease"
    lease.write_text(f"{time.time() + 2.0:.3f}")
    sup = _supervise_lease(tmp_path, sleep_s=5)
    for _ in range(6):  # the agent renews every half second, 2 s ahead: never fenced
        time.sleep(0.5)
        lease.write_text(f"{time.time() + 2.0:.3f}")
    lease.write_text("parked")  # a clean stop parks it: no end until a successor renews
    assert sup.wait(30) == 0
    assert "lost" not in json.loads((tmp_path / "run.exit.json").read_text())


@pytest.mark.parametrize("lease_s", [3.0, 6.0, 9.0, 60.0, 600.0])
def test_lease_margins_fence_before_any_reclaim(lease_s: float) -> None:
    t = LeaseTiming(lease_s)
    # a job fenced at the latest moment is gone before anyone may reclaim its run
    gone_by = -t.fence_before_s + t.kill_grace_s + t.WATCH_PERIOD_S
    assert gone_by < t.reclaim_after_s
    # a healthy agent's lease never comes within the fence: it renews well before
    assert t.heartbeat_s + t.fence_before_s < lease_s
    assert t.orphan_grace_s < lease_s
