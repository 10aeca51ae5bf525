"""Sweeps: a hyperparameter search submitted, budgeted and stopped as one unit.

The rules of a sweep live here, for the CLI, the Python API and the daemon alike:

- :func:`parse_array` reads ``--array`` (Slurm's syntax: ``0-99``, ``1,3,5-9``,
  ``0-20:5``, each optionally ``%N``, the cap on trials running at once);
  :func:`read_sweep_file` reads ``--sweep FILE`` (one line of extra arguments per trial);
  :func:`trial_argv` makes each trial's command (``{index}`` and ``{args}`` substituted).
- :func:`budget_use` is the sweep's carbon account while it runs: the measured grams of
  its finished trials, each running trial's measured grams so far (or its projected total,
  or its plan's expected grams, when larger: the rest of that run will be emitted too), and
  the expected grams of the trials not yet started. :func:`check_budget` stops the sweep
  when that total would exceed its budget: no trial is launched any more, and every
  waiting one becomes ``skipped`` with the note ``skipped: sweep budget``.
- :func:`launch_gate` is what the daemon asks before starting a claimed trial: a trial of
  a stopped sweep is skipped, one over the sweep's budget stops the sweep, and one that
  would run more than ``%N`` trials at once goes back to waiting for a slot. The daemon
  holds the sweep's launch lease (:func:`launch_lease`) from the gate to the run's row, so
  agents sharing a queue never count the same free slot twice.
- :func:`stop` is ``carbonshift sweep stop`` (running trials finish, waiting ones are
  skipped) and the first half of ``carbonshift cancel sN``.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from scheduler.domain.model import TERMINAL_STATES, WAITING_STATES, Job, JobState, Sweep, sweep_ref
from scheduler.errors import BadInput, CarbonshiftError
from scheduler.text.quantities import fmt_mass_g

if TYPE_CHECKING:
    from scheduler.app import App
    from scheduler.queue import SubmitRequest
    from scheduler.storage.base import JobStore

#: the most trials one sweep may hold (Slurm's default MaxArraySize is 1001)
MAX_TRIALS = 10_000
#: the largest array index (Slurm's limit is MaxArraySize - 1; ours is generous)
MAX_INDEX = 4_000_000
#: the note (and event) of a trial skipped because the sweep's budget is spent
BUDGET_NOTE = "skipped: sweep budget"
#: the note of a trial skipped by ``carbonshift sweep stop``
STOPPED_NOTE = "skipped: sweep stopped"
#: the note of a trial skipped by ``carbonshift cancel sN`` (running ones are cancelled)
CANCELLED_NOTE = "skipped: sweep cancelled"
#: a stand-in sweep id while a sweep is planned before it is stored
PROVISIONAL_ID = -1

_REF_RE = re.compile(r"[sS]([0-9]{1,18})")
_ITEM_RE = re.compile(r"([0-9]+)(?:-([0-9]+)(?::([0-9]+))?)?")
_HELP = "use a range like 0-99, a list like 1,3,5-9 or a stepped range like 0-20:5, optionally with %N"


@dataclass(frozen=True, slots=True)
class ArraySpec:
    """``--array``: the trials' indices in order, and the ``%N`` cap (``None``: no cap)."""

    indices: tuple[int, ...]
    limit: int | None = None


def parse_sweep_ref(text: str) -> int | None:
    """The sweep id of a reference like ``s3`` (see :func:`scheduler.model.sweep_ref`);
    ``None`` for anything else (a plain number is a job)."""
    m = _REF_RE.fullmatch(text.strip())
    return int(m.group(1)) if m else None


def parse_ref(text: str) -> tuple[str, int]:
    """A command-line reference: ``("sweep", 3)`` for ``s3``, ``("job", 3)`` for ``3``."""
    sweep_id = parse_sweep_ref(text)
    if sweep_id is not None:
        return "sweep", sweep_id
    t = text.strip()
    if t.isascii() and t.isdigit() and len(t) <= 18:
        return "job", int(t)
    raise BadInput(f"{text[:40]!r} is not a job or a sweep: give a job's number (3) or a sweep's (s3)")


def parse_array(text: str, *, what: str = "--array") -> ArraySpec:
    """Slurm's array syntax: ``LIST[%N]``, LIST being comma-separated ``I``, ``A-B`` or
    ``A-B:STEP`` (non-negative, ranges ascending, no index twice); LIST may be left out
    (``%4``) only for a caller that has its trials from elsewhere (``--sweep FILE``)."""
    raw = text.strip()
    body, sep, cap = raw.partition("%")
    limit: int | None = None
    if sep:
        if not (cap.isascii() and cap.isdigit()) or int(cap) < 1:
            raise BadInput(f"{what} {text!r}: the cap after % must be a whole number of at least 1, like %4")
        limit = int(cap)
    indices: list[int] = []
    if body or not sep:
        for item in body.split(","):
            m = _ITEM_RE.fullmatch(item.strip())
            if m is None:
                raise BadInput(f"{what} {text!r}: {item.strip()!r} is not an index or a range: {_HELP}")
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) is not None else a
            step = int(m.group(3)) if m.group(3) is not None else 1
            if b < a:
                raise BadInput(f"{what} {text!r}: the range {item.strip()!r} runs backwards: write {b}-{a}")
            if step < 1:
                raise BadInput(f"{what} {text!r}: the step of {item.strip()!r} must be at least 1")
            if b > MAX_INDEX:
                raise BadInput(f"{what} {text!r}: index {b} is over the largest, {MAX_INDEX}")
            if len(indices) + (b - a) // step + 1 > MAX_TRIALS:
                raise BadInput(f"{what} {text!r} makes more than {MAX_TRIALS} trials: split the sweep")
            indices.extend(range(a, b + 1, step))
        seen: set[int] = set()
        for i in indices:
            if i in seen:
                raise BadInput(f"{what} {text!r}: index {i} appears twice: give each index once")
            seen.add(i)
    return ArraySpec(tuple(indices), limit)


def read_sweep_file(path: str | Path) -> list[list[str]]:
    """``--sweep FILE``: each line that is not blank or a ``#`` comment is one trial's
    extra arguments, split like a shell splits them."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--sweep {str(path)!r} cannot be read ({exc.__class__.__name__}): give a text "
                       "file with one line of arguments per trial") from None
    trials: list[list[str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            trials.append(shlex.split(line))
        except ValueError as exc:
            raise BadInput(f"--sweep {str(path)!r} line {n}: {exc} in {line.strip()[:60]!r}: "
                           "close the quote or escape it") from None
        if len(trials) > MAX_TRIALS:
            raise BadInput(f"--sweep {str(path)!r} holds more than {MAX_TRIALS} trials: split the sweep")
    if not trials:
        raise BadInput(f"--sweep {str(path)!r} holds no trial: write one line of arguments per trial")
    return trials


def trial_argv(argv: Sequence[str], index: int, extra: Sequence[str] | None = None) -> list[str]:
    """A trial's command: ``{index}`` replaced by its index in every argument; with
    ``extra`` (its line of ``--sweep FILE``), an argument that is exactly ``{args}`` is
    replaced by those arguments, ``{args}`` inside an argument (a ``--shell`` command) by
    them quoted for a shell, and without any ``{args}`` they are appended."""
    out: list[str] = []
    placed = False
    for a in argv:
        if extra is not None and a == "{args}":
            out.extend(extra)
            placed = True
            continue
        if extra is not None and "{args}" in a:
            a = a.replace("{args}", shlex.join(extra))
            placed = True
        out.append(a.replace("{index}", str(index)))
    if extra is not None and not placed:
        out.extend(extra)
    return out


def expand(
    req: SubmitRequest, indices: Sequence[int], lines: Sequence[Sequence[str]] | None = None,
) -> tuple[str, list[SubmitRequest]]:
    """A sweep's name (``--name``, else the command's) and one request per trial: named
    ``NAME[INDEX]``, its command from :func:`trial_argv`."""
    name = req.name if req.name is not None else (os.path.basename(req.argv[0]) if req.argv else "") or "sweep"
    return name, [
        replace(req, name=f"{name}[{index}]",
                argv=trial_argv(req.argv, index, lines[k] if lines is not None else None))
        for k, index in enumerate(indices)
    ]


# -- the budget while a sweep runs ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """A sweep's grams: finished trials (measured), running trials (measured so far, or
    their projected or expected total when larger), waiting trials (expected)."""

    finished_g: float = 0.0
    running_g: float = 0.0
    waiting_g: float = 0.0

    @property
    def total_g(self) -> float:
        return self.finished_g + self.running_g + self.waiting_g

    def text(self) -> str:
        return (f"{fmt_mass_g(self.finished_g)} measured, {fmt_mass_g(self.running_g)} running, "
                f"{fmt_mass_g(self.waiting_g)} expected of the trials not started")


def _finite(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else 0.0


def budget_use(app: App, trials: Sequence[Job], now: datetime) -> BudgetUse:
    """The carbon account of a sweep's ``trials`` at ``now`` (see :class:`BudgetUse`)."""
    from scheduler.progress import live_projection

    store = app.store
    ids = [j.id for j in trials if j.id is not None]
    last = store.last_runs(ids) if ids else {}
    finished = running = waiting = 0.0
    for job in trials:
        assert job.id is not None
        if job.state in WAITING_STATES:
            waiting += _finite(job.expected_g)
            continue
        runs = store.runs_for_job(job.id) if job.attempts > 1 else [last[job.id]] if job.id in last else []
        done = [r for r in runs if r.finished_at is not None]
        finished += sum(_finite(r.accounting.emissions_g) for r in done if r.accounting is not None)
        if job.state in TERMINAL_STATES:
            continue
        live = [r for r in runs if r.finished_at is None]
        proj = live_projection(app, job, live[-1], now) if live else None  # none: claimed, not started
        so_far = _finite(proj.emissions_g) if proj is not None else 0.0
        whole = _finite(proj.total_emissions_g) if proj is not None else 0.0
        running += max(so_far, whole, _finite(job.expected_g))
    return BudgetUse(finished, running, waiting)


def stop(store: JobStore, sweep_id: int, now: datetime, reason: str, note: str) -> list[int]:
    """Stop launching a sweep's trials: the sweep records when and why, its waiting trials
    become ``skipped`` with ``note`` (one transaction). Returns the trials skipped."""
    return store.stop_sweep(sweep_id, now, reason, skip_note=note)


def stop_by_user(app: App, sweep_id: int, now: datetime) -> tuple[Sweep, list[int], list[int]]:
    """``carbonshift sweep stop``: launch no more trials; the waiting ones become
    ``skipped`` (``skipped: sweep stopped``), the running ones finish. Returns the sweep,
    the trials skipped and those still running. Only the trials' owner (or an admin) may;
    a sweep with nothing left to launch is refused."""
    sweep = app.store.get_sweep(sweep_id)
    trials = app.store.list_jobs(sweep_id=sweep_id)
    for j in trials:
        app.queue.check_owner(j)
    if not any(j.state in WAITING_STATES for j in trials):
        over = sweep.stop_reason or "every trial was launched"
        raise BadInput(f"sweep {sweep_ref(sweep_id)} has no trial left to launch ({over}): nothing to "
                       f"stop; `carbonshift cancel {sweep_ref(sweep_id)}` also stops running ones")
    skipped = stop(app.store, sweep_id, now, "sweep stopped", STOPPED_NOTE)
    running = [j.id for j in app.store.list_jobs([JobState.RUNNING, JobState.SUSPENDED], sweep_id=sweep_id)
               if j.id is not None]
    return app.store.get_sweep(sweep_id), skipped, running


def check_budget(app: App, sweep: Sweep, now: datetime, *, launching: Job | None = None) -> str | None:
    """Stop ``sweep`` if launching the rest (``launching``, a claimed trial, among them)
    would exceed its budget. Returns a line saying so (for the daemon's log) when this call
    stopped it, else ``None``."""
    if sweep.id is None or sweep.budget_g is None or sweep.stopped_at is not None:
        return None
    trials = app.store.list_jobs(sweep_id=sweep.id)
    if launching is None and not any(j.state in WAITING_STATES for j in trials):
        return None
    use = budget_use(app, trials, now)
    if use.total_g <= sweep.budget_g:
        return None
    skipped = stop(app.store, sweep.id, now, "sweep budget", BUDGET_NOTE)
    return (f"sweep {sweep_ref(sweep.id)} {sweep.name!r}: budget {fmt_mass_g(sweep.budget_g)} would be "
            f"exceeded ({use.text()}: {fmt_mass_g(use.total_g)}); no more trials are launched, "
            f"{len(skipped)} waiting trial{'s' if len(skipped) != 1 else ''} skipped")


def _launched(app: App, trials: Sequence[Job]) -> int:
    """How many of a sweep's trials have a process started (an open run)."""
    running = [j.id for j in trials if j.id is not None and j.state in (JobState.RUNNING, JobState.SUSPENDED)]
    last = app.store.last_runs(running) if running else {}
    return sum(r.finished_at is None for r in last.values())


@dataclass(frozen=True, slots=True)
class Gate:
    """The daemon's answer for a claimed trial: launch it, or why not (already handled:
    the trial was skipped or put back to wait), and a line for the log."""

    launch: bool
    kind: str = ""
    message: str = ""


def launch_gate(app: App, job: Job, now: datetime) -> Gate:
    """Whether the daemon may start ``job`` (claimed: ``running``, no run yet). A trial of
    a stopped sweep is skipped; if launching would break the sweep's budget the sweep is
    stopped and the trial skipped; if ``%N`` trials already run it goes back to
    ``planned`` (its claim undone) and is launched when a slot frees."""
    if job.sweep_id is None or job.id is None:
        return Gate(True)
    store = app.store
    try:
        sweep = store.get_sweep(job.sweep_id)
    except CarbonshiftError:
        return Gate(True)  # a trial whose sweep row is unreadable runs as a plain job
    why = check_budget(app, sweep, now, launching=job)
    if why is not None:
        sweep = store.get_sweep(job.sweep_id)
    if sweep.stopped_at is not None:
        note = BUDGET_NOTE if sweep.stop_reason == "sweep budget" else (
            CANCELLED_NOTE if sweep.stop_reason == "sweep cancelled" else STOPPED_NOTE)
        store.transition(job.id, JobState.SKIPPED, expected={JobState.RUNNING}, note=note)
        return Gate(False, "skipped", why or f"{note} (sweep {sweep_ref(sweep.id or 0)} stopped: {sweep.stop_reason})")
    limit = job.sweep_limit or sweep.max_concurrent
    if limit is not None and _launched(app, store.list_jobs(sweep_id=sweep.id)) >= limit:
        return put_back(app, job, f"waiting for a slot: {limit} trials of sweep "
                                  f"{sweep_ref(sweep.id or 0)} run at once")
    return Gate(True)


def launch_lease(sweep_id: int) -> str:
    """The name of the lease an agent holds while it gates and launches a trial."""
    return f"sweep-launch:{sweep_ref(sweep_id)}"


def put_back(app: App, job: Job, note: str) -> Gate:
    """Undo the claim of a trial that may not start yet: back to ``planned`` (still due),
    its attempt uncounted, ``note`` saying why; the daemon's answer."""
    back = replace(job, state=JobState.PLANNED, attempts=max(0, job.attempts - 1), note=note)
    app.store.update_job(back, expected={JobState.RUNNING})
    return Gate(False, "deferred", note)


__all__ = [
    "BUDGET_NOTE",
    "CANCELLED_NOTE",
    "MAX_TRIALS",
    "STOPPED_NOTE",
    "ArraySpec",
    "BudgetUse",
    "Gate",
    "budget_use",
    "check_budget",
    "expand",
    "launch_gate",
    "launch_lease",
    "parse_array",
    "parse_ref",
    "parse_sweep_ref",
    "put_back",
    "read_sweep_file",
    "stop",
    "stop_by_user",
    "trial_argv",
]
