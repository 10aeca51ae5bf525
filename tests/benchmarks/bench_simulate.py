"""`carbonshift simulate` with the default local forecaster against its floor: the same run
with ``--forecast perfect`` (the trace itself as the forecast: no forecasting at all).

Run ``python tests/benchmarks/bench_simulate.py [--jobs 1000] [--pairs 5] [--zone GB]
[--repo PATH]`` from the repository root (``--repo``: another checkout to measure, e.g. a
worktree at an older commit). One year of the Electricity Maps 2023 hourly file of the zone
(``../shared/data`` or ``$CARBONSHIFT_SHARED_DATA``); each run is a new process of the real
CLI with its own empty data directory, so every fit is computed (cold: no fit kept from an
earlier run); the two commands alternate, and the script prints each pair's CPU seconds
(user + system of the child) and the median ratio. ``--warm`` also times the local run
once more on the data directory a first run filled (the fits read back, not refitted).

Measured here (2 shared cores, GB 2023, 1,000 jobs, 5 pairs): 23.6x (23.6 s vs 1.0 s CPU)
with the pure-Python fit, 2.6x (3.0 s vs 1.2 s) with the numpy fit and the timestamp memo;
5,000 jobs, one pair: 8.0x before, 2.3x after (18.5 s vs 8.2 s).
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shared_data() -> Path:
    env = os.environ.get("CARBONSHIFT_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def cpu_of(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, check=True, timeout=3600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--zone", default="GB")
    p.add_argument("--repo", type=Path, default=REPO, help="the checkout whose CLI is measured")
    p.add_argument("--warm", action="store_true", help="also time a run reusing kept fits")
    args = p.parse_args(argv)
    trace = shared_data() / "electricitymaps-portal" / f"{args.zone}_2023_hourly.csv"
    if not trace.is_file():
        print(f"no trace at {trace}: set CARBONSHIFT_SHARED_DATA", file=sys.stderr)
        return 2
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CARBONSHIFT_", "XDG_"))}
    repo = args.repo.resolve()  # also the working directory: `-c` puts it first on sys.path
    base.update(PYTHONPATH=str(repo))
    cli = [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
           "simulate", "--trace", str(trace), "--jobs", str(args.jobs), "--json", "--forecast"]

    def run(forecast: str, home: str | None = None) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            return cpu_of([*cli, forecast], {**base, "HOME": home or tmp}, repo)

    ratios, local_s, perfect_s = [], [], []
    for k in range(args.pairs):
        order = ("local", "perfect") if k % 2 == 0 else ("perfect", "local")
        got = {f: run(f) for f in order}
        ratios.append(got["local"] / got["perfect"])
        local_s.append(got["local"])
        perfect_s.append(got["perfect"])
        print(f"pair {k + 1}: local {got['local']:.2f} s CPU, perfect {got['perfect']:.2f} s CPU",
              flush=True)
    out: dict[str, object] = {"jobs": args.jobs, "zone": args.zone, "ratio": statistics.median(ratios),
                              "local_s": statistics.median(local_s),
                              "perfect_s": statistics.median(perfect_s)}
    print(f"{args.jobs} jobs, {args.zone} 2023: median ratio local/perfect "
          f"{statistics.median(ratios):.2f}x (load average {os.getloadavg()[0]:.2f})")
    if args.warm:
        with tempfile.TemporaryDirectory() as home:
            run("local", home)
            out["warm_local_s"] = run("local", home)
        print(f"local again on the kept fits: {out['warm_local_s']:.2f} s CPU")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
