"""`carbonshift queue` wall time with 10,000 jobs waiting, quiet and under 20 submitters.

Run ``python tests/benchmarks/bench_queue_load.py [--calls 15] [--jobs 10000] [--cli
PATH]`` from the repository root (``--cli``: the ``carbonshift`` script to time, e.g. one
that ``pip install .`` put in a fresh virtual environment, as users have it; an editable
install's import hook and this sandbox's site-wide ``.pth`` files cost every start-up tens of
milliseconds of CPU). It fills a temporary SQLite queue, then runs the real command (a new
process each time, start-up included: the installed console script if there is one) as
``queue`` and ``queue --json``, first on a quiet queue, then while 20 processes submit one
job after another without pause (each through the Python API, as in
``tests/load/test_concurrent_submit.py``). It prints medians and the load average seen, so
a figure taken on a shared machine says how shared it was.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUBMITTER = """
import json, sys, time
from pathlib import Path
from scheduler.errors import CarbonshiftError
from tests.integration.conftest import request
from tests.load.conftest import open_app
tmp, k = Path(sys.argv[1]), int(sys.argv[2])
app = open_app(tmp)
_ = app.queue.sites(), app.intensity
(tmp / f"ready{k}").touch()
while not (tmp / "go").exists():
    time.sleep(0.01)
ok = failed = i = 0
while not (tmp / "stop").exists():
    i += 1
    req = request(["python", "train.py", f"--worker={k}", f"--i={i}"], duration="1h", deadline_s=24 * 3600)
    req.name = f"w{k}-{i}"
    try:
        app.queue.submit(req)
        ok += 1
    except CarbonshiftError:
        failed += 1
print(json.dumps([ok, failed]))
"""


CLI: str | None = None


def _cli() -> list[str]:
    exe = CLI or shutil.which("carbonshift")
    return [exe] if exe else [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())"]


def _time(db: Path, args: list[str], calls: int) -> tuple[list[float], list[float]]:
    times, loads = [], []
    for _ in range(calls):
        t = time.perf_counter()
        r = subprocess.run([*_cli(), "--db", str(db), "queue", *args], cwd=str(REPO),
                           capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        loads.append(os.getloadavg()[0])
        if r.returncode != 0:
            raise SystemExit(r.stderr)
    return times, loads


def _line(what: str, times: list[float], loads: list[float]) -> str:
    return (f"{what:<36} median {statistics.median(times):.3f} s (min {min(times):.3f}, "
            f"max {max(times):.3f}, {len(times)} calls; load average "
            f"{min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} CPUs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=15, help="runs of each command in each phase")
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs waiting in the queue")
    ap.add_argument("--submitters", type=int, default=20)
    ap.add_argument("--cli", help="the carbonshift script to time (default: the one on PATH)")
    opts = ap.parse_args()
    global CLI
    CLI = opts.cli
    sys.path.insert(0, str(REPO))
    from tests.cli.conftest import write_retimed_trace
    from tests.integration.conftest import ORIGIN
    from tests.load.conftest import fill, open_app

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        write_retimed_trace(tmp / "trace.csv", ORIGIN - timedelta(days=2))
        app = open_app(tmp)
        fill(app, opts.jobs)
        app.close()
        db = tmp / "cs.db"
        print(f"{opts.jobs:,} jobs waiting; command: {' '.join(_cli())} --db DB queue ...")
        for args in ([], ["--json"]):
            print(_line(f"quiet: queue {' '.join(args)}", *_time(db, args, opts.calls)))
        procs = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(tmp), str(k)], cwd=str(REPO),
                                  stdout=subprocess.PIPE, text=True) for k in range(opts.submitters)]
        try:
            while not all((tmp / f"ready{k}").exists() for k in range(opts.submitters)):
                if any(p.poll() is not None for p in procs):
                    raise SystemExit("a submitter died")
                time.sleep(0.1)
            (tmp / "go").touch()
            t0 = time.monotonic()
            time.sleep(1.0)
            loaded = {" ".join(args): _time(db, args, opts.calls) for args in ([], ["--json"])}
        finally:
            (tmp / "stop").touch()
        counts = [json.loads(p.communicate()[0]) for p in procs]
        wall = time.monotonic() - t0
        for args, (times, loads) in loaded.items():
            print(_line(f"{opts.submitters} submitting: queue {args}", times, loads))
        ok, failed = sum(c[0] for c in counts), sum(c[1] for c in counts)
        print(f"meanwhile {ok:,} submits succeeded and {failed} failed ({ok / wall:,.0f}/s)")


if __name__ == "__main__":
    main()
