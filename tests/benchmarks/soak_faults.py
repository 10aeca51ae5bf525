"""Rerun issue 16's faults against the real CLI and daemon, and print the figures.

A script, not a test (``PYTHONPATH=$PWD python tests/benchmarks/soak_faults.py``; ``--help``
for the sizes). It reuses the fault helpers of tests/reliability, tests/scaleout and the
bad-input tables rather than copying them:

1. **daemon kills**: ``--jobs`` short real jobs (a script that appends ``start``/``end``/
   ``term`` lines with its CARBONSHIFT_JOB_ID, CARBONSHIFT_RUN_ID, pid and the time to a
   ledger) are submitted with start times spread over the soak; a real ``carbonshift run``
   (:class:`tests.reliability.conftest.Sim`, accelerated clock) is SIGKILLed at random
   moments ``--kills`` times and restarted each time; ``--group-kills`` times the process
   group of a running job's supervisor (supervisor and job together, as a host losing that
   job) is SIGKILLed too. Then a last daemon drains the queue (``--exit-when-idle``).
   *lost*: a job not ``succeeded`` at the end (the job itself never fails).
   *double*: a job two of whose copies (runs) overlapped in time, or more than one copy of
   which completed; a copy's span is from its ``start`` line to its ``end``/``term`` line,
   to the group kill that ended it, or, with neither, to the end of the soak (so an
   unaccounted copy counts against us). A copy re-run after the previous one was recorded
   lost and had stopped is a *rerun*, reported apart, not a double.
2. **hung agent**: ``--rounds`` times, two real agents on a fresh PostgreSQL database serve
   one site; the one running a job is SIGSTOPped past its lease, the other reclaims the job,
   then SIGCONT (the scenario of tests/scaleout/test_hung_agent.py, run as is). *double*: the
   two copies' beats overlap.
3. **PID reuse**: ``--rounds`` times each, after a daemon crash the run's recorded pid is
   replaced by an unrelated live process (tests/reliability/test_pid_reuse.py): a restarted
   daemon must not adopt it, and ``cancel`` must not signal it. *adoptions*: the restarted
   daemon said it adopted the run, or the unrelated process was signalled.
4. **bad inputs**: every row of tests/security/test_bad_input_table.py and
   tests/cli/test_bad_input.py (submit and trace tables), each through the real CLI in a
   subprocess on a fresh home. *mishandled*: exit code not 2, not exactly one line on stderr,
   a traceback or "internal error", or a file created, changed or removed. The arguments go
   to ``scheduler.cli.main`` as JSON on stdin, since an argv cannot carry NUL bytes or the
   table's 200 000-character argument.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scheduler.executors.identity import split_identity
from scheduler.model import JobState
from tests.cli import test_bad_input as cli_table
from tests.cli.conftest import CS
from tests.reliability import test_pid_reuse
from tests.reliability.conftest import PY, Sim
from tests.scaleout import test_hung_agent
from tests.scaleout.conftest import Cluster
from tests.security.test_bad_input_table import BAD_TRACE, CASES, Case, _file, _files, _rows, submit

TERMINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST)

LEDGER_JOB = """\
import os, signal, sys, time
ledger, seconds = sys.argv[1], float(sys.argv[2])
job = os.environ["CARBONSHIFT_JOB_ID"]
me = f"{job} {os.environ['CARBONSHIFT_RUN_ID']} {os.getpid()}"
def mark(verb, extra=""):
    with open(ledger, "a") as f:
        f.write(f"{verb} {me} {time.time():.3f}{extra}\\n")
def term(*_):
    mark("term")
    sys.exit(143)
def alive(pid):  # a live (not zombie) copy of this script
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return state != "Z" and sys.argv[0].encode() in f.read()
    except OSError:
        return False
signal.signal(signal.SIGTERM, term)
open_pids = {}
if os.path.exists(ledger):
    for line in open(ledger).read().splitlines():
        verb, j, run, pid = line.split()[:4]
        if j == job:
            if verb == "start":
                open_pids[run] = int(pid)
            else:
                open_pids.pop(run, None)
# earlier copies of this job with no end line that still run as this one starts
mark("start", f" {sum(alive(p) for p in open_pids.values())}")
time.sleep(seconds)
mark("end")
"""


class SoakSim(Sim):
    """A :class:`Sim` whose processes run under a lease of ``lease_s`` real seconds."""

    def __init__(self, tmp: Path, *, lease_s: float) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        super().__init__(tmp)
        self.lease_s = lease_s

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{"CARBONSHIFT_LEASE_S": f"{self.lease_s:g}", **extra})


# -- 1. daemon and process-group kills ----------------------------------------------------


@dataclass
class Copy:
    """One run of a job as its ledger lines tell it."""

    job: int
    run: int
    pid: int
    start: float
    stop: float | None = None
    completed: bool = False
    #: earlier copies without an end line still running when this one started
    others_alive: int = 0


@dataclass
class KillFigures:
    jobs: int = 0
    kills: int = 0
    daemon_exits: int = 0
    group_kills: int = 0
    lost: int = 0
    double: int = 0
    reruns: int = 0
    open_copies: int = 0
    notes: list[str] = field(default_factory=list)


def _copies(ledger: Path, killed_at: dict[int, float]) -> dict[int, list[Copy]]:
    """The copies of each job in the ledger; a copy without an end or term line stopped
    when we killed its group, else when is unknown (``stop`` None)."""
    copies: dict[tuple[int, int], Copy] = {}
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    for line in lines:
        verb, job, run, pid, stamp, *rest = line.split()
        key = (int(job), int(run))
        if verb == "start":
            copies[key] = Copy(int(job), int(run), int(pid), float(stamp),
                               others_alive=int(rest[0]) if rest else 0)
        elif key in copies:
            copies[key].stop = float(stamp)
            copies[key].completed = verb == "end"
    by_job: dict[int, list[Copy]] = {}
    for c in copies.values():
        if c.stop is None:
            c.stop = killed_at.get(c.run)
        by_job.setdefault(c.job, []).append(c)
    return by_job


def daemon_kills(root: Path, *, jobs: int, kills: int, group_kills: int, lease_s: float,
                 max_life_s: float, seed: int, supervisor_only: bool = False) -> KillFigures:
    rng = random.Random(seed)
    sim = SoakSim(root, lease_s=lease_s)
    fig = KillFigures(jobs=jobs)
    script = root / "ledger_job.py"
    script.write_text(LEDGER_JOB)
    ledger = root / "copies.txt"
    # start times spread over about the time the kills take (simulated seconds)
    spread_s = kills * (max_life_s / 2 + 0.3) * sim.factor * 1.4
    ids = [sim.submit(f"k{i}", 0.0, after_s=rng.uniform(0, spread_s), deadline="12h",
                      argv=[PY, str(script), str(ledger), f"{rng.uniform(0.2, 3.0):.2f}"])
           for i in range(jobs)]
    group_at = sorted(rng.sample(range(kills), min(group_kills, kills)))
    killed_at: dict[int, float] = {}

    def all_done() -> bool:
        return all(sim.state(j) in TERMINAL for j in ids)

    try:
        while fig.kills < kills and not all_done():
            proc = sim.start_daemon()
            time.sleep(rng.uniform(0.3, max_life_s))
            if fig.group_kills < len(group_at) and fig.kills >= group_at[fig.group_kills]:
                running = [r for r in sim.app.store.open_runs() if r.handle]
                if running:
                    run = rng.choice(running)
                    pid_text = split_identity(run.handle or "")[0].split(":", 1)[0]
                    with contextlib.suppress(OSError, ValueError):
                        if supervisor_only:  # its job lives on, reparented
                            os.kill(int(pid_text), signal.SIGKILL)
                        else:
                            os.killpg(int(pid_text), signal.SIGKILL)
                            killed_at[run.id or 0] = time.time()
                        fig.group_kills += 1
            if proc.poll() is None:
                sim.kill_daemon(proc)
                fig.kills += 1
            else:
                fig.daemon_exits += 1
                fig.notes.append(f"a daemon exited by itself ({proc.returncode})")
            time.sleep(rng.uniform(0.0, 0.5))
        final = sim.start_daemon("--exit-when-idle")
        try:
            final.wait(max(120.0, 6 * lease_s))
        except subprocess.TimeoutExpired:
            fig.notes.append("the last daemon did not drain the queue in time")
        states = {j: sim.state(j) for j in ids}
        fig.lost = sum(1 for s in states.values() if s is not JobState.SUCCEEDED)
        if fig.lost:
            fig.notes.append("not succeeded: " + ", ".join(
                f"job {j} {s.value}" for j, s in states.items() if s is not JobState.SUCCEEDED))
        for job, copies in _copies(ledger, killed_at).items():
            copies.sort(key=lambda c: c.start)
            # overlapping: a copy began before the previous one's end line, or while an
            # earlier copy without one was still alive (each copy looks as it starts)
            overlap = any(later.others_alive > 0 or (earlier.stop is not None and later.start < earlier.stop)
                          for earlier, later in itertools.pairwise(copies))
            completed = sum(c.completed for c in copies)
            fig.open_copies += sum(1 for c in copies if c.stop is None)
            if overlap or completed > 1:
                fig.double += 1
                fig.notes.append(f"job {job} ran twice: {copies}")
            elif len(copies) > 1:
                fig.reruns += len(copies) - 1
    finally:
        sim.close()
    return fig


# -- 2. the hung agent --------------------------------------------------------------------


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server (tests/conftest.py's admin URL)."""
    from sqlalchemy.engine import make_url

    from tests.conftest import PG_ADMIN_URL, _pg_admin_connect

    admin = _pg_admin_connect()
    name = f"cs_soak_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class RoundFigures:
    rounds: int = 0
    bad: int = 0  # double runs / adoptions
    failed: int = 0  # rounds whose scenario failed otherwise
    notes: list[str] = field(default_factory=list)


def _scenario(fig: RoundFigures, run: Callable[[], None]) -> None:
    """Run one round of a test scenario; an assertion it makes is noted, not raised."""
    fig.rounds += 1
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            run()
    except Exception as exc:  # a round's failure is a figure
        fig.failed += 1
        fig.notes.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")


def hung_agent(root: Path, *, rounds: int) -> RoundFigures:
    fig = RoundFigures()
    for i in range(rounds):
        with pg_database() as url:
            cluster = Cluster(url, root / f"hung-{i}", lease_s=test_hung_agent.LEASE_S)
            try:
                _scenario(fig, functools.partial(
                    test_hung_agent.test_a_stopped_agent_never_runs_its_job_beside_the_reclaimed_copy,
                    cluster))
                spans = sorted(cluster.beats("hung").values())
                if any(b[0] < a[1] for a, b in itertools.pairwise(spans)):
                    fig.bad += 1
                    fig.notes.append(f"round {i}: copies overlapped: {spans}")
            finally:
                for agent in cluster.agents:  # a round that failed half-way: no agent stays stopped
                    with contextlib.suppress(OSError):
                        os.kill(agent.proc.pid, signal.SIGCONT)
                cluster.close()
    return fig


# -- 3. PID reuse -------------------------------------------------------------------------


def pid_reuse(root: Path, *, rounds: int, lease_s: float) -> RoundFigures:
    fig = RoundFigures()
    tests = (test_pid_reuse.test_a_restarted_daemon_does_not_adopt_a_reused_pid,
             test_pid_reuse.test_cancel_does_not_kill_a_reused_pid)
    for i in range(rounds):
        for test in tests:
            folder = root / f"pid-{i}-{test.__name__[5:20]}"
            sim = SoakSim(folder, lease_s=lease_s)
            stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
            try:
                _scenario(fig, functools.partial(test, sim, stranger))
                restarted = sim.daemon_log().split("daemon     started")[2:]
                if stranger.poll() is not None or any("adopted" in log for log in restarted):
                    fig.bad += 1
                    fig.notes.append(f"round {i} ({test.__name__}): the unrelated process was "
                                     f"{'signalled' if stranger.poll() is not None else 'adopted'}")
            finally:
                stranger.kill()
                stranger.wait(10)
                sim.close()
    return fig


# -- 4. bad inputs ------------------------------------------------------------------------

CLI_JSON = [PY, "-c", "import json, sys; from scheduler.cli import main; "
            "sys.exit(main(json.loads(sys.stdin.read())))"]


def bad_input_rows() -> dict[str, Case]:
    rows = {f"table: {name}": case for name, case in CASES.items()}
    for name, (args, needle) in cli_table.SUBMIT_CASES.items():
        full = args if "--" in args else [*args, "--", "true"]
        rows[f"submit: {name}"] = Case(("submit", *full), needle)
    for name, (text, needle) in cli_table.TRACE_CASES.items():
        rows[f"trace: {name}"] = Case(submit(), needle, config=BAD_TRACE, setup=_file("bad.csv", text.encode()))
    return rows


@dataclass
class BadInputFigures:
    tried: int = 0
    mishandled: int = 0
    unnamed: int = 0  # refused rightly, but the line does not name the value
    notes: list[str] = field(default_factory=list)


def bad_inputs(root: Path) -> BadInputFigures:
    fig = BadInputFigures()
    repo = str(Path(__file__).resolve().parents[2])
    for i, (name, case) in enumerate(bad_input_rows().items()):
        tmp = root / f"bad-{i}"
        tmp.mkdir(parents=True)
        with pytest.MonkeyPatch.context() as mp:
            cs = CS(tmp, mp, None)  # type: ignore[arg-type]  # capsys: only for in-process calls
            case.prepare(cs, mp)
            env = {**os.environ, "PYTHONPATH": repo}
        args = [a.replace("{tmp}", str(tmp)) for a in case.args]
        before = _files(tmp)
        fig.tried += 1
        try:
            done = subprocess.run(CLI_JSON, input=json.dumps(args), env=env, cwd=tmp,
                                  capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            fig.mishandled += 1
            fig.notes.append(f"{name}: hung (over 60 s)")
            continue
        err_lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        after = _files(tmp)
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p, 0) != after.get(p, 0))
        why = []
        if done.returncode != 2:
            why.append(f"exit {done.returncode}")
        if len(err_lines) != 1:
            why.append(f"{len(err_lines)} lines on stderr")
        if "Traceback" in done.stderr or "internal error" in done.stderr:
            why.append("a traceback")
        if changed or _rows(cs.db_path):
            why.append(f"wrote {[os.path.relpath(p, tmp) for p in changed]}")
        if why:
            fig.mishandled += 1
            fig.notes.append(f"{name}: {'; '.join(why)}: {done.stderr.strip()[:200]!r}")
        elif case.needle.lower() not in err_lines[0].lower():
            fig.unnamed += 1
            fig.notes.append(f"{name}: message lacks {case.needle!r}: {err_lines[0][:200]!r}")
    return fig


# -- the table ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=60, help="jobs in the kill loop (default 60)")
    p.add_argument("--kills", type=int, default=40, help="daemon SIGKILLs (default 40)")
    p.add_argument("--group-kills", type=int, default=5,
                   help="SIGKILLs of a running job's supervisor and job together (default 5)")
    p.add_argument("--supervisor-only", action="store_true",
                   help="the group kills SIGKILL the supervisor alone, its job living on")
    p.add_argument("--max-life", type=float, default=5.0,
                   help="a daemon lives 0.3 s to this many seconds before its kill (default 5)")
    p.add_argument("--lease", type=float, default=10.0, help="lease_s of the kill loop and PID reuse (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the hung agent and of PID reuse (default 3)")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--only", choices=["kills", "hung", "pid", "bad"], action="append",
                   help="run only these parts (repeatable)")
    p.add_argument("--keep", action="store_true", help="keep the working folder and print it")
    a = p.parse_args(argv)
    parts = set(a.only or ["kills", "hung", "pid", "bad"])
    rows: list[tuple[str, str, str]] = []
    notes: list[str] = []
    t0 = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="cs-soak-"))
    if "kills" in parts:
        t = time.monotonic()
        k = daemon_kills(root / "kills", jobs=a.jobs, kills=a.kills, group_kills=a.group_kills,
                         lease_s=a.lease, max_life_s=a.max_life, seed=a.seed,
                         supervisor_only=a.supervisor_only)
        rows += [
            ("daemon kills", f"{k.kills} tried, {k.jobs} jobs", f"{k.lost} lost, {k.double} double"),
            ("supervisor kills (its job lives on)" if a.supervisor_only else "supervisor+job group kills",
             f"{k.group_kills} tried", "(within the figures above)"),
            ("legitimate reruns", f"{k.reruns}", f"{k.open_copies} copies killed without an end line"),
        ]
        notes += [f"kills: {n}" for n in k.notes]
        rows.append(("", "", f"({time.monotonic() - t:.0f} s, lease {a.lease:g} s)"))
    if "hung" in parts:
        t = time.monotonic()
        try:
            h = hung_agent(root / "hung", rounds=a.rounds)
            rows.append(("hung agent (PostgreSQL)", f"{h.rounds} rounds",
                         f"{h.bad} double runs, {h.failed} rounds failed ({time.monotonic() - t:.0f} s)"))
            notes += [f"hung: {n}" for n in h.notes]
        except pytest.skip.Exception as exc:
            rows.append(("hung agent (PostgreSQL)", "not run", str(exc)))
    if "pid" in parts:
        t = time.monotonic()
        pr = pid_reuse(root / "pid", rounds=a.rounds, lease_s=a.lease)
        rows.append(("PID reuse (restart + cancel)", f"{pr.rounds} rounds",
                     f"{pr.bad} adoptions/signals, {pr.failed} rounds failed ({time.monotonic() - t:.0f} s)"))
        notes += [f"pid: {n}" for n in pr.notes]
    if "bad" in parts:
        t = time.monotonic()
        b = bad_inputs(root / "bad")
        rows.append((f"bad inputs ({len(CASES)} + {len(cli_table.SUBMIT_CASES)} + "
                     f"{len(cli_table.TRACE_CASES)} rows)", f"{b.tried} tried",
                     f"{b.mishandled} mishandled, {b.unnamed} not naming the value ({time.monotonic() - t:.0f} s)"))
        notes += [f"bad: {n}" for n in b.notes]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"\nsoak of issue 16's faults ({time.monotonic() - t0:.0f} s, seed {a.seed})")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip())
    print("lost: a job not succeeded at the end; double: two copies of a job overlapping in time "
          "(a copy with no end line: if a later copy found it alive at its start), or more than one completing; "
          "rerun: a copy started after the previous one was recorded lost and had stopped; "
          "mishandled: exit code not 2, not one line on stderr, a traceback, or a file made or "
          "changed (an empty new database counts)")
    for n in notes:
        print("  note:", n[:600])
    if a.keep:
        print("working folder:", root)
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
