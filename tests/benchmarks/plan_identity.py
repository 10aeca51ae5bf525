"""Identical plans before and after a planner change (issue 17): pickled plans of a few
hundred random instances (capacity, relocation, splits, thresholds, run-now, running and
suspended jobs, hysteresis, committed and pinned jobs, overdue windows, forecast gaps).

Run ``PYTHONPATH=<old checkout> python tests/benchmarks/plan_identity.py save plans.pkl``,
then ``PYTHONPATH=<new checkout> python tests/benchmarks/plan_identity.py compare plans.pkl``;
an optional third argument sets the number of instances (300).
"""

from __future__ import annotations

import pickle
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from intensity.model import Forecast, IntensityPoint, Kind
from scheduler.model import Job, JobState, Site
from scheduler.planner import PlanOptions, plan

NOW = datetime(2024, 6, 1, 0, 7, 13, tzinfo=UTC)


def fc(zone: str, rng: random.Random) -> Forecast:
    step = rng.choice([300, 900, 1800, 3600])
    n = rng.randrange(4, 200)
    t = NOW - timedelta(seconds=rng.randrange(0, 7200))
    pts = []
    for _ in range(n):
        L = step if rng.random() < 0.9 else rng.randrange(60, 5000)
        if rng.random() < 0.05:
            t += timedelta(seconds=rng.randrange(60, 3600))  # gap
        v = rng.choice([round(rng.uniform(10, 500)), round(rng.uniform(10, 500), 3), 100.0])
        pts.append(IntensityPoint(zone, t, t + timedelta(seconds=L), v, Kind.FORECAST, "g"))
        t += timedelta(seconds=L)
    return Forecast(zone, tuple(pts))

def instance(seed: int) -> tuple[list[Job], dict[str, Forecast], dict[str, Site], PlanOptions]:
    rng = random.Random(seed)
    zones = [f"Z{i}" for i in range(rng.randrange(1, 4))]
    fcs = {z: fc(z, rng) for z in zones if rng.random() < 0.95}
    nsites = rng.randrange(1, 5)
    sites = {f"s{i}": Site(f"s{i}", rng.choice(zones), gpus=rng.choice([0, 0, 1, 2, 4, 8, 300]),
                           cpus=rng.choice([0, 0, 4, 16]), pue=rng.choice([1.0, 1.2]),
                           transfer_delay_s=rng.choice([0, 1800]), transfer_energy_j=rng.choice([0, 3.6e5]))
             for i in range(nsites)}
    names = sorted(sites)
    n = rng.choice([1, 3, 8, 20, 80, 200])
    jobs = []
    for i in range(n):
        d = rng.choice([rng.randrange(60, 8 * 3600), rng.randrange(1, 8) * 900, 3600 * rng.randrange(1, 30)])
        e = NOW + timedelta(seconds=rng.randrange(-7200, 6 * 3600))
        lat = e + timedelta(seconds=rng.randrange(-3600, 36 * 3600))
        state = rng.choice([JobState.PENDING] * 8 + [JobState.RUNNING, JobState.SUSPENDED, JobState.SUCCEEDED])
        home = rng.choice(names)
        j = Job(name=f"j{i}", argv=["x"], duration_s=d, zone=sites[home].zone, submitted_at=NOW,
                earliest_start=e, latest_start=lat, deadline_at=lat + timedelta(seconds=d), id=i + 1,
                power_w=rng.uniform(50, 2000), gpus=rng.choice([0, 1, 1, 2, 3]), cpus=rng.choice([0, 1, 2]),
                site=home, allowed_sites=rng.sample(names, rng.randrange(0, len(names) + 1)),
                interruptible=rng.random() < 0.2, run_now=rng.random() < 0.05,
                threshold_g_per_kwh=rng.choice([None] * 9 + [150.0]), priority=rng.choice([0, 0, 1]),
                state=state, pause_mode=rng.choice(["stop", "checkpoint"]),
                planned_start=NOW - timedelta(seconds=600) if state != JobState.PENDING else None,
                planned_site=home if state != JobState.PENDING else None)
        jobs.append(j)
    cur = {(j.id or 0): (j.site, j.earliest_start + timedelta(seconds=rng.randrange(0, 3600)))
           for j in jobs if rng.random() < 0.3}
    opts = PlanOptions(slot_s=rng.choice([300, 900]), allow_overdue=rng.random() < 0.8,
                       enforce_capacity=rng.random() < 0.9, min_chunk_s=rng.choice([900, 3600]),
                       max_pauses=rng.choice([None, 1, 3]),
                       hysteresis_pct=rng.choice([0.0, 0.0, 5.0]), current=cur,
                       committed=frozenset(k for k in cur if rng.random() < 0.5),
                       pin_accepted=rng.random() < 0.1)
    return jobs, fcs, sites, opts

def run(n: int) -> list[object]:
    out: list[object] = []
    for seed in range(n):
        jobs, fcs, sites, opts = instance(seed)
        try:
            out.append(plan(jobs, fcs, sites, NOW, opts))
        except Exception as exc:
            out.append(("error", type(exc).__name__, str(exc)))
    return out

def main(argv: list[str]) -> int:
    mode, path = argv[0], Path(argv[1])
    n = int(argv[2]) if len(argv) > 2 else 300
    res = run(n)
    if mode == "save":
        path.write_bytes(pickle.dumps(res))
        print("saved", len(res), "errors", sum(isinstance(r, tuple) for r in res))
        return 0
    old = pickle.loads(path.read_bytes())
    bad = [i for i, (a, b) in enumerate(zip(old, res, strict=True))
           if pickle.dumps(a) != pickle.dumps(b) and a != b]
    print(f"{len(res) - len(bad)}/{len(res)} identical; differing seeds: {bad[:20]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
