"""A hung agent (SIGSTOP) never runs its job beside the copy another agent starts.

An agent that is stopped (SIGSTOP, a frozen VM, a process stuck in the kernel) keeps its pid,
so its jobs' supervisors cannot tell it from a live one by the pid: they are fenced by lease
time instead (``scheduler.leader.LeaseTiming``). Two real ``carbonshift run`` agents share one
queue with a 6 s lease; the one running a beating job is stopped for longer than its lease;
the other reclaims the run and starts the job again. The job's ledger (a beat every 0.2 s
per copy) must show the first copy's last beat before the second copy's first.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.model import JobState
from tests.scaleout.conftest import Cluster, backend_url, cluster_on

LEASE_S = 6.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def cluster6(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_on(backend_url(request, tmp_path), tmp_path, lease_s=LEASE_S)


def _wait(predicate: object, timeout_s: float, what: str, cluster: Cluster) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout_s}s\n{cluster.logs()}")


def test_a_stopped_agent_never_runs_its_job_beside_the_reclaimed_copy(cluster6: Cluster) -> None:
    cluster = cluster6
    victim = cluster.start_agent("victim", planner=False)
    # the rerun beats 3 s: through the 2 s the stopped agent is kept stopped beside it
    [job_id] = cluster.submit([cluster.marking("hung", sleep_s=8.0, again_s=3.0)])
    _wait(lambda: len(cluster.beats("hung")) == 1, 60, "the victim starting the job", cluster)
    (first_run,) = cluster.store.runs_for_job(job_id)
    assert first_run.host == "victim"
    survivor = cluster.start_agent("survivor")
    _wait(lambda: "daemon     started" in survivor.text(), 60, "the survivor starting", cluster)
    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        # the survivor reclaims the run once its lease is over and starts the job again
        _wait(lambda: len(cluster.beats("hung")) >= 2, 90, "a second copy starting", cluster)
        time.sleep(2.0)  # the stopped agent stays stopped while the second copy runs
    finally:
        os.kill(victim.proc.pid, signal.SIGCONT)
    cluster.wait_all_done([job_id], 90)
    assert cluster.store.get_job(job_id).state is JobState.SUCCEEDED
    runs = cluster.store.runs_for_job(job_id)
    assert [r.state for r in runs] == [JobState.LOST, JobState.SUCCEEDED], runs
    assert runs[1].host == "survivor"
    assert "victim stopped renewing" in runs[0].reason, runs[0].reason
    # never two copies at once: each copy's last beat comes before the next one's first
    spans = sorted(cluster.beats("hung").values())
    assert len(spans) == 2, spans
    overlap_s = max(0.0, spans[0][1] - spans[1][0])
    print(f"\nhung agent, lease {LEASE_S:g} s ({cluster.url.split(':')[0]}): copies {spans}, "
          f"overlap {overlap_s:.1f} s")
    assert overlap_s == 0.0, spans
    # the stopped agent's supervisor said why it stopped the job
    err = Path(first_run.out_path or "").with_suffix(".err")
    assert "stopped renewing the run's lease" in err.read_text(), err.read_text()
