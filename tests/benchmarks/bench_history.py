"""`carbonshift history --format json` on 10,000 finished jobs against its floor: a stdlib
sqlite3 script doing one query that joins each job to its last run, the same fields,
``json.dumps``.

Run ``python tests/benchmarks/bench_history.py [--jobs 10000] [--pairs 5]`` from the
repository root. It fills a temporary SQLite queue through the store (jobs, one accounted
run each), then times the real command and the floor, each in a new process, alternately,
and prints each pair's CPU seconds (user + system of the child) and the median ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FLOOR = r"""
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
rows = con.execute('''
    SELECT j.id, j.name, j.state, j.owner, j.policy_name, j.submitted_at, j.planned_start,
           r.started_at, r.finished_at, COALESCE(r.site, j.site), j.zone,
           r.facility_energy_j / 3.6e6, r.emissions_g, r.counterfactual_g,
           r.counterfactual_g - r.emissions_g, r.exit_code, r.energy_method, r.measured_share,
           r.intensity_kind, r.intensity_provider, r.actual_share, r.pue, j.expected_g,
           j.run_now_g, j.plan_source, j.duration_s, j.gpus, j.deadline_at, j.note, r.id
    FROM jobs j LEFT JOIN runs r ON r.id = (SELECT id FROM runs WHERE job_id = j.id
                                            ORDER BY started_at DESC, id DESC LIMIT 1)
    ORDER BY j.id''').fetchall()
names = ["id", "name", "state", "owner", "policy", "submitted_at", "planned_start", "started_at",
         "finished_at", "site", "zone", "energy_kwh", "emissions_g", "counterfactual_g", "saved_g",
         "exit_code", "energy_method", "measured_share", "intensity_kind", "intensity_provider",
         "actual_share", "pue", "expected_g", "run_now_g", "plan_source", "duration_s", "gpus",
         "deadline_at", "note", "run_id"]
sys.stdout.write(json.dumps([dict(zip(names, r)) for r in rows], indent=2))
"""


def fill(db: Path, n: int) -> None:
    sys.path.insert(0, str(REPO))
    from scheduler.model import Job, JobState, Run, RunAccounting
    from scheduler.storage.store import open_store

    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    store = open_store(f"sqlite:///{db}")
    jobs = [Job(name=f"job-{i}", argv=["python", "train.py"], duration_s=3600, zone="GB",
                submitted_at=t0 + timedelta(minutes=i), earliest_start=t0, latest_start=t0, deadline_at=None,
                owner="bench", state=JobState.SUCCEEDED) for i in range(n)]
    ids = store.add_jobs(jobs)
    acct = RunAccounting(energy_j=3.6e6, facility_energy_j=4e6, emissions_g=120.0, counterfactual_g=180.0,
                         energy_method="rapl", intensity_kind="actual", intensity_provider="ukgrid")
    for k, jid in enumerate(ids):
        run = store.add_run(Run(job_id=jid, site="local", executor="local",
                                started_at=t0 + timedelta(minutes=k), host="h",
                                finished_at=t0 + timedelta(minutes=k + 60), exit_code=0,
                                state=JobState.SUCCEEDED))
        store.set_accounting(run.id or 0, acct)
    store.close()


def cpu_of(cmd: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--pairs", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cs.db"
        fill(db, args.jobs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
        env.update(HOME=tmp, CARBONSHIFT_DB=str(db), PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="")
        ours = [sys.executable, "-m", "carbonshift", "history", "--format", "json", "--since", "all"]
        floor = [sys.executable, "-c", FLOOR, str(db)]
        ratios = []
        for k in range(args.pairs):
            pair = [("ours", ours), ("floor", floor)] if k % 2 == 0 else [("floor", floor), ("ours", ours)]
            got = {name: cpu_of(cmd, env) for name, cmd in pair}
            ratios.append(got["ours"] / got["floor"])
            print(f"pair {k + 1}: history {got['ours']:.2f} s CPU, floor {got['floor']:.2f} s CPU", flush=True)
    print(f"{args.jobs} finished jobs: median ratio history/floor {statistics.median(ratios):.2f}x "
          f"(load average {os.getloadavg()[0]:.2f})")
    print(json.dumps({"jobs": args.jobs, "ratio": statistics.median(ratios)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
