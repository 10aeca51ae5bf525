#!/usr/bin/env python3
"""carbonshift from Python: submit, plan, run, wait, look at history and a report.

Against your own queue, the API needs nothing but::

    from carbonshift import Client
    with Client() as cs:              # the CLI's database, config and environment
        job = cs.submit("python train.py", duration="2h", deadline="12h")

This script runs on its own, offline, in about ten seconds: like ``carbonshift demo`` it
uses a temporary database, the shipped Great Britain trace (Electricity Maps, March 2023)
in replay, and a clock that runs 3600 times faster than real time (1 s = 1 h). It
submits two short CPU jobs, one at once and one with a 10-hour deadline, runs the daemon
until both are done, and prints what each emitted against running at submission.

    python examples/api.py [--keep] [--factor 3600]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from carbonshift import AcceleratedClock, Client

START = datetime(2023, 3, 15, 17, 0, tzinfo=UTC)  # a Wednesday evening peak in the trace
BURN = "import time\nend = time.time() + float(__import__('sys').argv[1])\nwhile time.time() < end: pass\nprint('done')"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="carbonshift's Python API, offline")
    p.add_argument("--keep", action="store_true", help="keep the temporary database and logs")
    p.add_argument("--factor", type=float, default=3600.0, help="simulated seconds per real second")
    args = p.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="carbonshift-api-"))
    config = base / "config.toml"
    config.write_text('default_zone = "GB"\n[intensity]\nproviders = ["replay"]\n')
    env = {"HOME": str(base), "PATH": "/usr/bin:/bin", "CARBONSHIFT_CONFIG": str(config),
           "CARBONSHIFT_DATA_DIR": str(base)}
    clock = AcceleratedClock(START, args.factor)
    try:
        with Client(str(base / "api.db"), env=env, clock=clock) as cs:
            # 1. what does the grid look like? (the forecast comes through the provider chain)
            fc = cs.forecast("GB", hours=24).forecast
            best = min(fc.points, key=lambda q: q.intensity_g_per_kwh)
            print(f"GB forecast: {fc.points[0].intensity_g_per_kwh:.0f} gCO2/kWh now, "
                  f"lowest {best.intensity_g_per_kwh:.0f} at {best.start:%a %H:%M} UTC")
            # 2. submit: argv lists run without a shell; durations and deadlines like the CLI
            urgent = cs.submit([sys.executable, "-c", BURN, "0.5"], duration="1h", run_now=True,
                               name="eval-now", cwd=str(base))
            flexible = cs.submit([sys.executable, "-c", BURN, "1"], duration="2h", deadline="10h",
                                 name="finetune-flex", cwd=str(base))
            for job in (urgent, flexible):
                print(f"job {job.id} {job.name}: planned {job.planned_start:%a %H:%M} UTC, "
                      f"expected {job.expected_g:.3f} g vs {job.run_now_g:.3f} g if run now")
            print(f"queue: {[(j.id, str(j.state)) for j in cs.queue()]}")
            # 3. run the daemon here until the queue is empty (normally: `carbonshift run`)
            for line in cs.run(sample_interval_s=0.2, tick_s=0.1):
                print(f"  daemon: {line}")
            codes = {j.id: cs.wait(j.id) for j in (urgent, flexible)}  # type: ignore[misc]
            print(f"exit codes: {codes}")
            # 4. history rows carry energy, emissions, the run-now counterfactual and provenance
            for r in cs.history(since=None):
                print(f"job {r.id} {r.name}: {r.state}, {r.energy_kwh * 3.6e6:.1f} J "
                      f"({r.energy_method}), {r.emissions_g * 1000:.3f} mg on {r.intensity_kind} "
                      f"intensity; run-now {r.counterfactual_g * 1000:.3f} mg; "
                      f"saved {r.saved_pct:.1f}%")
            # 5. a report with an internal carbon price
            rep = cs.report(since=None, by="job", carbon_price="80EUR/t")
            t = rep.total
            print(f"report: {t.jobs} jobs, {t.emissions_kg * 1e6:.1f} mg emitted, "
                  f"{t.saved_pct:.1f}% saved vs run-now, deadlines met {t.deadline_hits}/{t.deadline_jobs}")
            return 0 if all(c == 0 for c in codes.values()) else 1
    finally:
        if args.keep:
            print(f"kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
