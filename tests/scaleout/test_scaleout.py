"""Several agents, one queue: real ``carbonshift run`` processes on PostgreSQL and SQLite.

- many agents and many quick jobs: every job runs exactly once, none is left behind;
- an agent killed with SIGKILL mid-run: its runs are reclaimed (``lost``, job requeued)
  within about one lease, the jobs run again elsewhere, never two copies at once;
- the planning agent killed: another takes the planner lease over and plans.

Leases are 3 s here (``CARBONSHIFT_LEASE_S``). Figures are printed (``-s`` shows them).
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from scheduler.leader import LeaseTiming
from scheduler.model import JobState, Run
from tests.scaleout.conftest import CLI, Cluster


def run_many(cluster: Cluster, *, agents: int, jobs: int, timeout_s: float) -> dict[str, float]:
    """Start ``agents`` agents, submit ``jobs`` quick jobs, wait; check exactly-once."""
    for i in range(agents):
        cluster.start_agent(f"agent-{i}")
    t0 = time.monotonic()
    ids = cluster.submit([cluster.marking(f"t{i}") for i in range(jobs)])
    assert len(ids) == jobs
    elapsed = cluster.wait_all_done(ids, timeout_s)
    counts = cluster.store.count_jobs_by_state()
    assert counts == {JobState.SUCCEEDED.value: jobs}, (counts, cluster.logs())
    # every job started exactly once: once in the shared file, one run in the database
    started = cluster.started_tokens()
    twice = {t: n for t, n in started.items() if n > 1}
    assert not twice, f"jobs started more than once: {twice}"
    assert set(started) == {f"t{i}" for i in range(jobs)}
    runs_by_host: dict[str, int] = {}
    runs_per_job: dict[int, int] = {}
    for job_id in ids:
        runs = cluster.store.runs_for_job(job_id)
        runs_per_job[job_id] = len(runs)
        for r in runs:
            runs_by_host[r.host] = runs_by_host.get(r.host, 0) + 1
    assert set(runs_per_job.values()) == {1}, {k: v for k, v in runs_per_job.items() if v != 1}
    assert cluster.store.open_runs() == []
    # one planner at a time: the leader says so; the others never planned
    leaders = [a.name for a in cluster.agents if "plans the queue now" in a.text()]
    assert len(leaders) == 1, leaders
    lease = cluster.store.get_lease("planner")
    assert lease is not None and leaders[0] in lease.holder
    total = time.monotonic() - t0
    figures = {"jobs": jobs, "agents": agents, "duplicates": len(twice),
               "seconds": round(total, 1), "jobs_per_s": round(jobs / elapsed, 1),
               "busiest_agent_runs": max(runs_by_host.values()),
               "agents_that_ran_jobs": len(runs_by_host)}
    print(f"\nscale-out figures ({cluster.url.split(':')[0]}): {figures}")
    return figures


@pytest.mark.postgres
@pytest.mark.slow
def test_eight_agents_four_hundred_jobs_on_postgres(pg_cluster: Cluster) -> None:
    # 400 jobs: some 50 per agent, every claim still contended by eight (2,000 took the
    # suite's longest 2.5 minutes to check the same)
    figures = run_many(pg_cluster, agents=8, jobs=400, timeout_s=480)
    assert figures["agents_that_ran_jobs"] >= 6  # the work was shared, not taken by one


def test_four_agents_on_sqlite(sqlite_cluster: Cluster) -> None:
    figures = run_many(sqlite_cluster, agents=4, jobs=200, timeout_s=150)
    assert figures["agents_that_ran_jobs"] >= 3


def _wait(predicate: object, timeout_s: float, what: str, cluster: Cluster) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout_s}s\n{cluster.logs()}")


def test_killed_agent_runs_are_reclaimed_within_the_lease(cluster: Cluster) -> None:
    victim = cluster.start_agent("victim", planner=False)
    ids = cluster.submit([cluster.marking(f"k{i}", sleep_s=10.0, again_s=1.0) for i in range(4)])

    def victim_runs() -> list[Run]:
        return [r for r in cluster.store.open_runs() if r.host == "victim"]

    _wait(lambda: len(victim_runs()) == len(ids), 30, "the victim starting every job", cluster)
    # its jobs are running: start the survivors, let them settle (an agent reclaims nothing
    # in its first lease), then kill the victim without warning
    survivors = [cluster.start_agent("survivor-1"), cluster.start_agent("survivor-2", planner=False)]
    _wait(lambda: all("daemon     started" in a.text() for a in survivors), 30,
          "the survivors starting", cluster)
    time.sleep(cluster.lease_s + 0.5)
    assert len(victim_runs()) == len(ids), "the jobs ended before the victim could be killed"
    held = {r.id for r in victim_runs()}
    last_lease = max(r.lease_until for r in victim_runs() if r.lease_until)
    cluster.kill(victim)

    def reclaimed() -> bool:
        runs = [cluster.store.get_run(i) for i in held if i is not None]
        return all(r.finished_at is not None for r in runs)

    reclaim_s = _wait(reclaimed, 30, "the victim's runs reclaimed", cluster)
    # reclaimed within the lease timeout and its reclaim margin, plus one sweep period and
    # some slack for a shared, loaded machine
    assert reclaim_s <= cluster.lease_s + LeaseTiming(cluster.lease_s).reclaim_after_s + 2.0, reclaim_s
    for run_id in held:
        assert run_id is not None
        run = cluster.store.get_run(run_id)
        assert run.state is JobState.LOST
        assert "victim stopped renewing" in run.reason and "presumed dead" in run.reason
        assert run.finished_at is not None and run.finished_at > last_lease
    cluster.wait_all_done(ids, 90)
    for job_id in ids:
        job = cluster.store.get_job(job_id)
        runs = cluster.store.runs_for_job(job_id)
        assert job.state is JobState.SUCCEEDED, (job, runs)
        assert [r.state for r in runs] == [JobState.LOST, JobState.SUCCEEDED]
        assert runs[1].host.startswith("survivor")
        kinds = [e.kind for e in cluster.store.events_for_job(job_id)]
        assert "requeued" in kinds, kinds
    # at least once, never twice at once: the killed copy stopped beating before the
    # second copy started (its supervisor stopped it when its agent was gone)
    for i in range(len(ids)):
        spans = sorted(cluster.beats(f"k{i}").values())
        assert len(spans) == 2, spans
        (_, first_end), (second_start, _) = spans
        assert first_end < second_start, spans
    print(f"\nlease {cluster.lease_s:g} s: runs reclaimed {reclaim_s:.1f} s after SIGKILL "
          f"({cluster.url.split(':')[0]})")


def test_planner_killed_another_agent_takes_over(cluster: Cluster) -> None:
    first = cluster.start_agent("planner-a")
    _wait(lambda: "plans the queue now" in first.text(), 30, "the first agent leading", cluster)
    cluster.start_agent("planner-b")
    cluster.start_agent("planner-c")
    time.sleep(1.0)
    lease = cluster.store.get_lease("planner")
    assert lease is not None and "planner-a" in lease.holder and lease.term == 1
    cluster.kill(first)
    t_kill = time.monotonic()

    def taken_over() -> bool:
        now = cluster.store.get_lease("planner")
        return now is not None and "planner-a" not in now.holder

    takeover_s = _wait(taken_over, 30, "another agent taking the planner lease", cluster)
    assert takeover_s <= cluster.lease_s + 3.0, takeover_s
    lease = cluster.store.get_lease("planner")
    assert lease is not None and lease.term == 2
    winner = next(a for a in cluster.agents[1:] if a.name in lease.holder)
    _wait(lambda: "plans the queue now" in winner.text(), 10, "the new leader saying so", cluster)
    # the admin sees who plans, and which agent serves the site (its serves: lease, taken
    # over from the killed agent too)
    _wait(lambda: (s := cluster.store.get_lease("serves:pool")) is not None and "planner-a" not in s.holder,
          30, "another agent serving the site", cluster)
    check = subprocess.run([*CLI, "db", "check", "--json"], env=cluster.env, capture_output=True,
                           text=True, timeout=60)
    report = json.loads(check.stdout)
    planner = report["planner"]
    assert winner.name in planner["holder"] and planner["term"] == 2, check.stdout
    (serves,) = report["serving"]
    assert serves["site"] == "pool" and serves["live"] and serves["term"] >= 2, check.stdout
    assert any(a.name in serves["holder"] for a in cluster.agents[1:]), serves
    text = subprocess.run([*CLI, "db", "check"], env=cluster.env, capture_output=True, text=True,
                          timeout=60).stdout
    line = rf"^serves pool: {re.escape(serves['holder'])} \(term {serves['term']}, since .*, lease until "
    assert re.search(line, text, re.M), text
    # the new leader plans: a job left pending (as a requeued one is) gets planned and runs
    [job_id] = cluster.submit([cluster.marking("after")])
    assert cluster.store.transition(job_id, JobState.PENDING, expected={JobState.PLANNED})
    cluster.wait_all_done([job_id], 60)
    assert cluster.store.get_job(job_id).state is JobState.SUCCEEDED
    planned_by = [a.name for a in cluster.agents if re.search(rf"planned +job {job_id}:", a.text())]
    assert planned_by == [winner.name], (planned_by, cluster.logs())
    print(f"\nplanner lease {cluster.lease_s:g} s: taken over {takeover_s:.1f} s after SIGKILL "
          f"(since kill {time.monotonic() - t_kill:.1f} s ago)")
