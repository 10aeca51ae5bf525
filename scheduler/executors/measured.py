"""Measure a job where it runs and write its samples to the shared database.

``python -m scheduler.executors.measured --db URL --run-id N [--interval S] -- argv...``
(started isolated: :func:`scheduler.executors.helper.helper_argv`)

An engine-side job (a Slurm batch job on a compute node) cannot be sampled by the agent,
which runs on another host. When the cluster does not account energy itself (Slurm's
``AcctGatherEnergyType`` is ``none``, or there is no ``sacct``), the Slurm executor runs the
job's command under this wrapper instead: it starts the command as its child, measures its
process tree with the same probes and :class:`~probes.sampler.Sampler` as the local
executor (NVML, RAPL, the CPU-time estimate: whatever works on the node), and appends the
samples to run ``N`` in the database at ``URL``. The agent accounts the run from them once
Slurm says the job has ended.

Rules, as for any probe: measurement never fails the job. If the database cannot be
reached at start the job runs unmeasured; samples the database refuses later are kept and
offered again at the next flush and at exit; every problem is one line on the job's
stderr, prefixed ``carbonshift-measure:``. Signals the wrapper receives (Slurm's SIGTERM
on ``scancel`` or at the time limit) are passed to the job. The wrapper exits with the
job's exit code (128 + N for a job killed by signal N).

The database URL should carry no password: it is written into the batch script, which
Slurm stores and shows to administrators. Give the node's user a ``~/.pgpass`` (or
``PGPASSFILE``) instead; libpq reads it. :func:`url_for_node` strips the password.

``probes`` knows nothing of the database: this module, in ``scheduler``, is the bridge.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from scheduler.executors import contain

if TYPE_CHECKING:
    from probes.detect import ProbeConfig

PREFIX = "carbonshift-measure:"


def url_for_node(url: str) -> str:
    """``url`` without its password (the node authenticates with ``~/.pgpass``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.password is None:
        return url
    return parsed.set(password=None).render_as_string(hide_password=False)


def wrapper_argv(
    db_url: str, *, interval_s: float, probe: ProbeConfig | None = None, python: str | None = None
) -> list[str]:
    """The command prefix the Slurm executor puts before a job's argv (``{run_id}`` is
    replaced by the run's id at launch). The wrapper runs isolated from the job's folder
    and ``PYTHONPATH`` (:func:`~scheduler.executors.helper.helper_argv`). ``probe``: how
    to measure, from the agent's settings (:func:`scheduler.measuring.probe_config`), so a
    job on a node is measured as a local one is (no secret in it: it goes in the script)."""
    from scheduler.executors.helper import helper_argv

    extra = ["--probe-config", json.dumps(dataclasses.asdict(probe), sort_keys=True)] if probe else []
    return helper_argv(
        "scheduler.executors.measured",
        "--db", url_for_node(db_url), "--run-id", "{run_id}", "--interval", f"{interval_s:g}",
        *extra, python=python,
    )


def _probe_config(text: str | None) -> ProbeConfig:
    """The ``--probe-config`` JSON as a :class:`~probes.detect.ProbeConfig` (the defaults
    without one)."""
    from probes.detect import ProbeConfig

    return ProbeConfig(**json.loads(text)) if text else ProbeConfig()


def _say(text: str) -> None:
    print(f"{PREFIX} {text}", file=sys.stderr, flush=True)


def _open_sink(url: str, run_id: int) -> tuple[Any, Any]:
    """A store and a sink writing samples to run ``run_id``; ``(None, None)`` when the
    database cannot be used (the job then runs unmeasured)."""
    try:
        from scheduler.storage.sql.opening import open_store

        store = open_store(url, migrate=False)
        store.get_run(run_id)
    except Exception as exc:  # any failure: measure nothing, run the job anyway
        _say(f"no energy measurement for run {run_id}: {exc}")
        return None, None

    def sink(batch: list[Any]) -> None:
        store.add_samples(run_id, batch)

    return store, sink


#: signals that end the job: passed on to every process of it, not to its group alone
ENDING_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def _reap_orphans() -> None:
    """Reap every descendant that re-parented to us and has exited."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except InterruptedError:
            continue
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carbonshift-measure")
    parser.add_argument("--db", required=True, help="database URL (no password)")
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--interval", type=float, default=5.0, help="sampling interval, s")
    parser.add_argument("--probe-config", help="how to measure (JSON of probes.detect.ProbeConfig)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        _say("no command given")
        return 2
    store, sink = _open_sink(args.db, args.run_id)
    # contained as the local supervisor contains a job (scheduler/executors/contain.py): a
    # descendant that leaves the job's group and session (setsid) re-parents to us and
    # stays ours, in the run's own cgroup where cgroup v2 is writable; all of it is stopped
    # with the job, at its end and on scancel
    contain.set_subreaper()
    cgroup = contain.run_cgroup(f"slurm-run-{args.run_id}-{os.getpid()}")
    try:
        child = subprocess.Popen(cmd, start_new_session=True, preexec_fn=contain.entering(cgroup))
    except OSError as exc:
        if cgroup is not None:
            contain.remove_cgroup(cgroup)
        _say(f"cannot start {cmd[0]!r}: {exc.strerror}")
        return 127 if isinstance(exc, FileNotFoundError) else 126
    if cgroup is not None and not contain.in_cgroup(child.pid, cgroup):
        contain.remove_cgroup(cgroup)  # could not move it there: the subreaper alone
        cgroup = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        try:
            os.killpg(child.pid, signum)
        except OSError:
            pass
        if signum in ENDING_SIGNALS:  # and to what left the group: the whole job ends
            contain.kill_tree(os.getpid(), cgroup, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                signal.SIGCONT):
        signal.signal(sig, forward)

    sampler = None
    if sink is not None:
        try:
            from probes.detect import default_probes
            from probes.model import ProbeTarget
            from probes.sampler import Sampler

            sampler = Sampler(
                ProbeTarget(pid=child.pid, pgid=child.pid),
                now=lambda: datetime.now(UTC), sink=sink, interval_s=args.interval,
                probes=default_probes(_probe_config(args.probe_config)), on_note=_say,  # flushed every reading
            )
            sampler.start()
        except Exception as exc:
            _say(f"no energy measurement for run {args.run_id}: {exc}")
            sampler = None
    while True:
        try:
            _, status, usage = os.wait4(child.pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            status, usage = 0, None
            break
    code = os.waitstatus_to_exitcode(status) if usage is not None else 0
    if code < 0:
        code = 128 - code
    leftovers = contain.end_leftovers(os.getpid(), cgroup, _reap_orphans)
    if cgroup is not None:
        contain.remove_cgroup(cgroup)
    if leftovers:
        _say(f"stopped {leftovers} process{'es' if leftovers != 1 else ''} the job left running")
    if sampler is not None:
        try:
            cpu_s = usage.ru_utime + usage.ru_stime if usage is not None else None
            sampler.stop(final_cpu_s=cpu_s)
            left = list(sampler.unflushed)
            for _ in range(3):  # the database may be restarting: a few more tries
                if not left:
                    break
                time.sleep(1.0)
                try:
                    sink(left)
                    left = []
                except Exception as exc:
                    _say(f"could not store {len(left)} samples yet: {exc}")
            if left:
                _say(f"{len(left)} energy samples of run {args.run_id} were not stored")
        except Exception as exc:
            _say(f"measurement of run {args.run_id} ended badly: {exc}")
    if store is not None:
        try:
            store.close()
        except Exception:
            pass
    return code


if __name__ == "__main__":
    sys.exit(main())
