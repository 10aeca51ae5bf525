"""Issue 21's figure: grams saved by planning sweeps together vs as independent jobs vs run-now.

Run: ``PYTHONPATH=. python tests/benchmarks/bench_sweeps.py [--sweeps 50] [--trials 20] [--cap 4]
[--gpus 8] [--zones GB,DE-LU] [--forecast perfect|seven-day-mean|local] [--breakdown]
[--json out.json]`` (about 3 minutes by default on two busy cores; ``--breakdown`` doubles it).
Needs the shared data folder (``<repo>/../shared/data`` or ``CARBONSHIFT_SHARED_DATA``):
the Electricity Maps 2023 hourly files.

Per zone, one site with ``--gpus`` GPUs; ``--sweeps`` sweeps submitted at random times over
the year (after 28 days of history for the forecaster), each of ``--trials`` one-GPU
trials of 1-4 h (whole hours, 300 W) sharing one deadline 24-48 h after submission and
the cap ``%--cap``. Every mode is the same engine (:func:`scheduler.simulate.run_mode`)
and the real planner, re-planning waiting jobs every ``--replan`` on the forecast issued
at the last hour:

* run-now: each sweep as ``sbatch --array ...%N`` would run it: trials start as soon as
  the cap and the GPUs allow;
* together: the sweep planned as one unit under its cap (what carbonshift does);
* together, no cap (``--breakdown``): the same without the cap (what the cap costs);
* independent: the same trials submitted as separate jobs, no cap, each planned on its own
  at its submission, seeing only the jobs already accepted (``one_at_a_time``);
* one at a time, capped (``--breakdown``): the trials planned one per submission like independent ones, but
  still under the sweep's cap (what planning a sweep's trials in one go adds).

Emissions are charged on the actual trace. "most at once" is the most trials of one sweep
that ran at the same time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from intensity.providers.replay import read_trace
from scheduler.model import Site
from scheduler.planner import PlanOptions
from scheduler.simulate import (
    INDEPENDENT,
    ModeResult,
    SimJob,
    TraceIndex,
    compare,
    local_forecaster,
    perfect_forecaster,
    run_mode,
    seven_day_mean_forecast,
)
from tests.benchmarks.bench_savings import memo, shared_data


def sweep_workload(n_sweeps: int, trials: int, cap: int, start, end, seed: int) -> list[SimJob]:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    span_h = int((end - start).total_seconds() // 3600) - 48 - 4
    jobs: list[SimJob] = []
    for s in range(1, n_sweeps + 1):
        submit = start + timedelta(hours=rng.randrange(span_h))
        deadline = submit + timedelta(hours=rng.randint(24, 48))
        for _ in range(trials):
            jobs.append(SimJob(id=len(jobs) + 1, submit=submit, duration_s=3600 * rng.randint(1, 4),
                               deadline=deadline, site="site", gpus=1, power_w=300.0,
                               sweep_id=s, sweep_limit=cap))
    return sorted(jobs, key=lambda j: (j.submit, j.id))


def most_at_once(res: ModeResult, workload: list[SimJob]) -> int:
    by_sweep: dict[int, list[tuple]] = {}
    for j in workload:
        o = res.outcomes.get(j.id)
        if o is not None and j.sweep_id is not None:
            by_sweep.setdefault(j.sweep_id, []).extend(o.intervals)
    return max((max(sum(a <= t < b for a, b in sp) for t, _ in sp) for sp in by_sweep.values()), default=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=50)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--cap", type=int, default=4)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--zones", default="GB,DE-LU")
    ap.add_argument("--forecast", choices=("perfect", "seven-day-mean", "local"), default="perfect")
    ap.add_argument("--replan", type=int, default=3600, help="re-plan waiting jobs every N s (0: arrivals only)")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--breakdown", action="store_true",
                    help="also: together without the cap, and one at a time under the cap")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    data = shared_data()
    if data is None:
        sys.exit("bench_sweeps: no shared data folder (set CARBONSHIFT_SHARED_DATA)")
    out: dict[str, object] = {"args": {k: str(v) for k, v in vars(args).items()}, "zones": {}}
    print(f"\n{args.sweeps} sweeps of {args.trials} one-GPU trials (1-4 h, %{args.cap}, deadline 24-48 h) "
          f"per zone, one site of {args.gpus} GPUs, 2023, forecast: {args.forecast}, re-plan every "
          f"{args.replan} s\n")
    print("| zone | mode | total kg | saved vs run-now kg | saved % | deadline misses | most at once | s |")
    print("|---|---|---|---|---|---|---|---|")
    for zone in args.zones.split(","):
        tr = read_trace(data / "electricitymaps-portal" / f"{zone}_2023_hourly.csv")
        idx = {tr.zone: TraceIndex(tr.points)}
        sites = {"site": Site("site", tr.zone, gpus=args.gpus)}
        wl = sweep_workload(args.sweeps, args.trials, args.cap, tr.start + timedelta(days=28), tr.end, args.seed)
        fc = {"perfect": perfect_forecaster(idx), "seven-day-mean": seven_day_mean_forecast}.get(args.forecast)
        fc = memo(fc or local_forecaster())
        opts = PlanOptions(slot_s=900)
        t0 = time.perf_counter()
        c = compare(wl, sites, idx, forecast=args.forecast, forecaster=fc, options=opts, replan_s=args.replan)
        t1 = time.perf_counter()
        rows = [("run-now", c.results["run-now"]), ("together", c.results["carbon-aware"]),
                ("independent", c.results[INDEPENDENT])]
        if args.breakdown:
            rows.insert(2, ("together, no cap", run_mode(
                "carbon-aware", [replace(j, sweep_limit=None) for j in wl], sites, idx, fc,
                options=opts, replan_s=args.replan, horizon_s=48 * 3600)))
            rows.append(("one at a time, capped", run_mode(
                "carbon-aware", wl, sites, idx, fc, options=opts, replan_s=args.replan,
                horizon_s=48 * 3600, one_at_a_time=True)))
        t2 = time.perf_counter()
        now_g = c.results["run-now"].total_g()
        zone_out = []
        for mode, res in rows:
            g = res.total_g()
            row = {"mode": mode, "total_g": g, "saved_g": now_g - g, "saved_pct": 100 * (now_g - g) / now_g,
                   "deadline_misses": res.misses(), "refused": res.refusals(),
                   "most_at_once": most_at_once(res, wl)}
            zone_out.append(row)
            print(f"| {zone} | {mode} | {g / 1000:.1f} | {(now_g - g) / 1000:.1f} | {row['saved_pct']:.1f}% | "
                  f"{row['deadline_misses']} | {row['most_at_once']} | "
                  f"{(t1 - t0) if mode in ('run-now', 'together', 'independent') else (t2 - t1):.0f} |",
                  flush=True)
        out["zones"][zone] = zone_out  # type: ignore[index]
    print("\nindependent: the same trials submitted as separate jobs, no cap, each planned on its own at "
          "its submission (seeing only the jobs already accepted); run-now keeps the cap, as "
          "sbatch --array %N would. s: seconds for the four compare() modes together, and for the "
          "--breakdown runs together.")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
