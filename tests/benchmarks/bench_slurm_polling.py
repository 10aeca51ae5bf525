"""Slurm commands a minute that the daemon runs to follow 100 running Slurm jobs.

Run ``python tests/benchmarks/bench_slurm_polling.py [--jobs 100] [--seconds 60] [--code DIR]``
from the repository root. ``--code``: the source tree whose daemon is measured (default this
one); for the commit before the batch poll: ``git archive COMMIT | tar -x -C /tmp/old``, then
``--code /tmp/old``.

It submits ``--jobs`` jobs to a Slurm site of a temporary SQLite queue and runs the real
daemon (``Daemon.run_forever``, default tick) with its own Slurm executor pointed at a bin
dir of shell shims named like Slurm's commands. The shims count their calls and answer for
fake jobs: ``sbatch`` hands out job ids, ``squeue`` says every job it is asked about is
RUNNING (in the output format the code asks for), ``scontrol show config`` says there is no
accounting. Once every job is launched it counts each command's calls for ``--seconds``
real seconds and prints them per minute, with the load average (the machine is shared).
No Slurm is needed; the real Slurm's commands are never run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

COMMANDS = ("sbatch", "squeue", "sacct", "scontrol", "scancel")

SHIMS = {
    "sbatch": 'cat >/dev/null\nn=$(($(cat "$STATE/next" 2>/dev/null || echo 1000) + 1))\n'
              'echo "$n" > "$STATE/next"\necho "$n"\n',
    # the batch query asks "%A|%T|%r" (id first), the old per-job one "%T|%r"
    "squeue": 'ids=""; fmt=""\nwhile [ $# -gt 0 ]; do\n  case "$1" in -j) ids=$2; shift;; '
              '-o) fmt=$2; shift;; esac\n  shift\ndone\nIFS=,\nfor id in $ids; do\n'
              '  case "$fmt" in %A*) echo "$id|RUNNING|None";; *) echo "RUNNING|None";; esac\n'
              'done\n',
    "scontrol": 'if [ "$1" = show ] && [ "$2" = config ]; then\n'
                '  echo "AccountingStorageType = accounting_storage/none"\n'
                '  echo "AcctGatherEnergyType = acct_gather_energy/none"\n'
                '  echo "JobCompType = jobcomp/none"\n  exit 0\nfi\n'
                'echo "slurm_load_jobs error: Invalid job id specified" >&2\nexit 1\n',
    "sacct": 'echo "Slurm accounting storage is disabled" >&2\nexit 1\n',
    "scancel": "exit 0\n",
}


def write_shims(bin_dir: Path, state: Path) -> None:
    bin_dir.mkdir()
    for name in COMMANDS:
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\nSTATE={state}\necho {name} >> "$STATE/calls"\n{SHIMS[name]}')
        path.chmod(0o755)


def counts(state: Path) -> Counter[str]:
    path = state / "calls"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--code", default=str(Path(__file__).resolve().parents[2]))
    args = parser.parse_args()
    sys.path.insert(0, args.code)

    import scheduler
    from scheduler.app import App
    from scheduler.config import load_settings
    from scheduler.dispatch import Daemon
    from scheduler.model import Policy, Site
    from scheduler.queue import SubmitRequest

    tmp = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    state = tmp / "state"
    state.mkdir()
    write_shims(tmp / "bin", state)
    config = tmp / "config.toml"
    config.write_text('[intensity]\nproviders = ["static"]\n')
    env = {"HOME": str(tmp), "PATH": "/usr/bin:/bin"}
    settings = load_settings(env=env, config_path=str(config),
                             overrides={"db": f"sqlite:///{tmp / 'cs.db'}", "data_dir": str(tmp)})
    app = App(settings, env=env)
    app.store.put_site(Site(name="hpc", zone="GB", executor="slurm", cpus=0))
    for i in range(args.jobs):
        app.queue.submit(SubmitRequest(
            argv=["/bin/sleep", "3600"], duration_s=3600, name=f"bench-{i}", site="hpc",
            cwd=str(tmp), submitter_env={"PATH": "/usr/bin:/bin"},
            overrides=Policy(name="(flags)", run_now=True, deadline_s=6 * 3600),
        ))

    daemon = Daemon(app, sites=["hpc"], on_event=lambda line: None, agent="bench")
    executor = daemon.executor_for("slurm")
    executor.bin_dir = str(tmp / "bin")  # type: ignore[attr-defined]
    thread = threading.Thread(target=daemon.run_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while counts(state)["sbatch"] < args.jobs:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {counts(state)['sbatch']} of {args.jobs} jobs launched in 300 s")
        time.sleep(0.2)
    time.sleep(2.0)  # the launching tick's polls are not the steady state
    before, t0 = counts(state), time.monotonic()
    time.sleep(args.seconds)
    after, t1 = counts(state), time.monotonic()
    load = os.getloadavg()
    daemon.stop()
    thread.join(60)
    app.close()

    per_min = {name: (after[name] - before[name]) * 60.0 / (t1 - t0) for name in COMMANDS}
    code = Path(scheduler.__file__).resolve().parents[1]
    poll = getattr(settings, "slurm_poll_s", None)
    print(f"code: {code}  slurm_poll_s: {poll if poll is not None else '(none: every tick)'}  "
          f"tick: {daemon.tick_s:g} s")
    print(f"{args.jobs} running Slurm jobs, counted over {t1 - t0:.0f} s; load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    for name in COMMANDS:
        print(f"  {name:<9} {per_min[name]:8.1f} calls/min")
    print(f"  {'all':<9} {sum(per_min.values()):8.1f} calls/min")


if __name__ == "__main__":
    main()
