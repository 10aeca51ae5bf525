"""Overhead of ``carbonshift.measure()`` on a CPU loop: the same fixed work timed bare and
inside a measured block, alternately, in fresh processes.

Run ``python tests/benchmarks/bench_measure.py [--seconds 60] [--pairs 5] [--interval 5]``
from the repository root. ``--seconds`` sizes the loop (calibrated once so the bare run
takes about that long); each pair runs it bare and measured (order alternating), each in a
new interpreter on a temporary database with the static provider. It prints each pair's
wall and CPU times and the median ratio measured/bare of each (1.00 = no overhead), with
the load average seen, so a figure from a shared machine says how shared it was.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = """
import json, os, sys, time
n, measured = int(sys.argv[1]), sys.argv[2] == "1"
def loop():
    x = 0
    for i in range(n):
        x += i * i % 7
    return x
t0, c0 = time.perf_counter(), time.process_time()
if measured:
    import carbonshift
    with carbonshift.measure(name="bench"):
        loop()
else:
    loop()
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}))
"""


def _run(env: dict[str, str], n: int, measured: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", WORK, str(n), "1" if measured else "0"], env=env,
                         capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--interval", type=float, default=5.0, help="sampling interval, seconds")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(f'default_zone = "DE"\nsampling_interval_s = {args.interval}\n'
                          '[intensity]\nproviders = ["static"]\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
        env.update(HOME=tmp, CARBONSHIFT_CONFIG=str(config), CARBONSHIFT_DB=f"{tmp}/cs.db",
                   PYTHONPATH=str(REPO))
        probe = 2_000_000
        per_iter = _run(env, probe, False)["cpu_s"] / probe
        n = max(1, int(args.seconds / per_iter))
        wall, cpu = [], []
        for k in range(args.pairs):
            order = [False, True] if k % 2 == 0 else [True, False]
            got = {m: _run(env, n, m) for m in order}
            wall.append(got[True]["wall_s"] / got[False]["wall_s"])
            cpu.append(got[True]["cpu_s"] / got[False]["cpu_s"])
            print(f"pair {k + 1}: bare {got[False]['wall_s']:.2f} s wall / {got[False]['cpu_s']:.2f} s CPU, "
                  f"measured {got[True]['wall_s']:.2f} s / {got[True]['cpu_s']:.2f} s", flush=True)
    print(f"loop of {n} iterations (~{args.seconds:g} s), {args.pairs} pairs, sampling every "
          f"{args.interval:g} s, load average {os.getloadavg()[0]:.2f}")
    print(f"median ratio measured/bare: wall {statistics.median(wall):.3f}, "
          f"CPU {statistics.median(cpu):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
