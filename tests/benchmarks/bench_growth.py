"""Growth: planning and ``simulate`` at 1k, 10k and 100k jobs: time and peak memory.

Run ``python tests/benchmarks/bench_growth.py [--sizes 1000,10000,100000] [--skip-simulate]``
from the repository root. Each measurement is a new process (so its peak resident memory is
its own): planning calls :func:`scheduler.planner.plan` once on N jobs of 1-8 h on one GB
site (no capacity limit) over the 48 h of a real Electricity Maps trace at 5-minute steps,
deadlines 12-48 h; ``simulate`` is the real CLI (``--jobs N --forecast perfect``, and
``--forecast local`` up to ``--local-max``) over GB's 2023 year. Printed per size: seconds,
peak RSS (MiB), and the growth factor of each against the size before it (1.0 per 10x
would be... 10x for linear: the column says ``x10 -> time xT, memory xM``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_PLAN_CHILD = r"""
import json, random, resource, sys, time
from datetime import UTC, datetime, timedelta
sys.path.insert(0, sys.argv[3])
from intensity.model import IntensityPoint, Kind
from intensity.providers.replay import read_trace
from scheduler.model import Job, Site
from scheduler.planner import Forecast, PlanOptions, plan

n = int(sys.argv[1])
trace = read_trace(sys.argv[2])
start = trace.points[24 * 180].start  # mid-year
pts = [p for p in trace.points if start <= p.start < start + timedelta(hours=60)]
# 5-minute steps: each hour's value repeated (the planner's slot is 5 min)
five = []
for p in pts:
    for k in range(12):
        t = p.start + timedelta(minutes=5 * k)
        five.append(IntensityPoint(p.zone, t, t + timedelta(minutes=5), p.intensity_g_per_kwh, Kind.FORECAST, p.provider))
fc = Forecast("GB", tuple(five))
rng = random.Random(7)
now = start
jobs = []
for i in range(n):
    d = rng.randint(1, 8) * 3600
    dl = now + timedelta(hours=rng.randint(12, 48))
    jobs.append(Job(name=f"j{i}", argv=["true"], duration_s=d, zone="GB", submitted_at=now,
                    earliest_start=now, latest_start=dl - timedelta(seconds=d), deadline_at=dl,
                    id=i + 1, gpus=0, cpus=0, site="local"))
sites = {"local": Site(name="local", zone="GB")}
t0 = time.perf_counter()
result = plan(jobs, {"GB": fc}, sites, now, PlanOptions(slot_s=300))
wall = time.perf_counter() - t0
assert len(result.entries) == n, (len(result.entries), n)
print(json.dumps({"s": wall, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def shared_data() -> Path:
    env = os.environ.get("CARBONSHIFT_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def plan_once(n: int, trace: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-I", "-c", _PLAN_CHILD, str(n), str(trace), str(REPO)],
                         capture_output=True, text=True, timeout=7200)
    if out.returncode:
        raise SystemExit(f"planning child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def simulate_once(n: int, trace: Path, forecast: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBONSHIFT_", "XDG_"))}
    env["PYTHONPATH"] = str(REPO)
    with tempfile.TemporaryDirectory() as tmp:
        env.update(HOME=tmp, XDG_DATA_HOME=tmp)
        cmd = [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
               "simulate", "--trace", str(trace), "--jobs", str(n), "--forecast", forecast, "--json"]
        # through a fresh parent, so the peak RSS is this run's alone
        probe = ("import json, resource, subprocess, sys, time; t0 = time.perf_counter(); "
                 "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
                 "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
                 "print(json.dumps({'s': time.perf_counter() - t0, 'cpu_s': u.ru_utime + u.ru_stime, "
                 "'rss_mib': u.ru_maxrss / 1024}))")
        out = subprocess.run([sys.executable, "-I", "-c", probe, *cmd], env=env, cwd=tmp,
                             capture_output=True, text=True, check=True, timeout=7200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--zone", default="GB")
    p.add_argument("--skip-simulate", action="store_true")
    p.add_argument("--local-max", type=int, default=10000,
                   help="largest size simulated with the local forecaster too")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    trace = shared_data() / "electricitymaps-portal" / f"{args.zone}_2023_hourly.csv"
    if not trace.is_file():
        print(f"no trace at {trace}: set CARBONSHIFT_SHARED_DATA", file=sys.stderr)
        return 2
    rows: list[tuple[str, int, dict[str, float]]] = []
    for n in sizes:
        rows.append(("plan", n, plan_once(n, trace)))
        print(f"plan      {n:>7,} jobs: {rows[-1][2]['s']:8.2f} s  {rows[-1][2]['rss_mib']:7.0f} MiB", flush=True)
    if not args.skip_simulate:
        for forecast in ("perfect", "local"):
            for n in sizes:
                if forecast == "local" and n > args.local_max:
                    continue
                rows.append((f"simulate {forecast}", n, simulate_once(n, trace, forecast)))
                r = rows[-1][2]
                print(f"simulate {forecast:<7} {n:>7,} jobs: {r['s']:8.2f} s  {r['rss_mib']:7.0f} MiB", flush=True)
    print()
    print("| what | jobs | seconds | peak RSS MiB | x10 jobs -> time x | memory x |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    prev: dict[str, dict[str, float]] = {}
    for what, n, r in rows:
        grow = prev.get(what)
        tx = f"{r['s'] / grow['s']:.1f}" if grow else "-"
        mx = f"{r['rss_mib'] / grow['rss_mib']:.1f}" if grow else "-"
        print(f"| {what} | {n:,} | {r['s']:.2f} | {r['rss_mib']:.0f} | {tx} | {mx} |")
        prev[what] = r
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
