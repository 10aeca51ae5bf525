"""A sweep as one row: its trials counted by state, their energy, emissions, savings and
the sweep's carbon budget used.

Shared by ``show s3``, ``queue``, ``history``, ``report --by sweep`` and the dashboard, so
every view of a sweep says the same numbers with the same provenance as a job's:

- **trials** by state: ``done`` (succeeded), ``failed`` (failed or lost), ``running``
  (running or paused), ``waiting`` (pending or planned), ``skipped`` (never launched: the
  sweep's budget ran out or it was stopped; each trial's note says why), ``cancelled``.
- **energy**, **emissions**, **run-now** and **saved**: the sums over the trials' history
  rows (:mod:`scheduler.history`: each trial's last run), totalled by
  :func:`scheduler.reporting.aggregate` as any report group is, so ``saved`` is the sum of
  the trials' run-now counterfactuals minus their emissions. ``energy_method``,
  ``intensity_kind`` and ``intensity_provider`` label the sum as a job's figures are
  labelled (:func:`scheduler.accounting.intensity_kind_of`), with the measured and the
  actual shares weighted by energy and by emissions.
- **budget used**: what the daemon counts against the sweep's budget
  (:func:`scheduler.sweeps.budget_use`): the measured grams of the finished trials plus
  the running ones' (measured so far, or their projected or expected total when larger),
  and that as a share of ``budget_g``; ``budget_waiting_g`` is what the trials not started
  are expected to add (the daemon stops the sweep when the three would exceed the budget).

:func:`summarize` is pure; :func:`load_summaries` reads what it needs in a bounded number
of queries (the sweeps in one, each sweep's trials in one, the trials' last runs in one
per 500 trials), never one per trial.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.domain.accounting import intensity_kind_of
from scheduler.domain.model import Job, JobState, Sweep, sweep_ref
from scheduler.history import HistoryRow, row_for
from scheduler.reporting import aggregate
from scheduler.sweeps import BudgetUse

if TYPE_CHECKING:
    from scheduler.app import App
    from scheduler.storage.base import JobStore

#: the trial counts of a summary, in the order views show them
TRIAL_COUNTS = ("done", "failed", "running", "waiting", "skipped", "cancelled")
_COUNT_OF = {
    JobState.SUCCEEDED: "done", JobState.FAILED: "failed", JobState.LOST: "failed",
    JobState.RUNNING: "running", JobState.SUSPENDED: "running", JobState.PENDING: "waiting",
    JobState.PLANNED: "waiting", JobState.SKIPPED: "skipped", JobState.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class SweepSummary:
    """One sweep's row (see the module docstring). ``None``: no data (not zero)."""

    id: int
    ref: str
    name: str
    owner: str
    #: ``waiting`` (no trial started), ``running``, ``stopping`` (stopped, trials still
    #: running), ``stopped``, ``cancelled`` (every trial), ``finished``
    state: str
    size: int
    trials: int
    done: int
    failed: int
    running: int
    waiting: int
    skipped: int
    cancelled: int
    submitted_at: datetime
    deadline_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    max_concurrent: int | None
    stopped_at: datetime | None
    stop_reason: str
    accounted: int
    energy_kwh: float | None
    energy_method: str | None
    measured_share: float | None
    emissions_g: float | None
    intensity_kind: str | None
    intensity_provider: str | None
    actual_share: float | None
    counterfactual_g: float | None
    saved_g: float | None
    saved_pct: float | None
    #: the planner's figures of the trials that ran or will run (not skipped or cancelled)
    expected_g: float | None
    run_now_g: float | None
    budget_g: float | None
    #: ``None`` when the budget's account was not read (:func:`summarize` without ``budget``)
    running_g: float | None
    budget_used_g: float | None
    budget_used_pct: float | None
    budget_waiting_g: float | None

    def as_dict(self) -> dict[str, object]:
        # shallow: every field is a scalar or a datetime (no deep copy, unlike asdict)
        return self.__dict__.copy()

    def trials_text(self) -> str:
        """``12 done, 2 failed, 4 running, 2 waiting`` (counts that are 0 left out)."""
        parts = [f"{getattr(self, k)} {k}" for k in TRIAL_COUNTS if getattr(self, k)]
        return ", ".join(parts) or "no trials"


SWEEP_FIELDS = tuple(SweepSummary.__dataclass_fields__)


def _labels(rows: Sequence[HistoryRow], label: str, weight: str) -> str | None:
    """The ``+``-joined labels of ``rows`` (each maybe ``a+b`` itself), the heaviest first
    (ties in the order met)."""
    by: dict[str, float] = defaultdict(float)
    for r in rows:
        for part in str(getattr(r, label) or "").split("+"):
            if part and part != "none":
                by[part] += getattr(r, weight) or 0.0
    return "+".join(k for k, _ in sorted(by.items(), key=lambda kv: -kv[1])) or None


def summarize(
    sweep: Sweep,
    trials: Sequence[HistoryRow],
    *,
    budget: BudgetUse | None = None,
    now: datetime | None = None,
) -> SweepSummary:
    """The summary of ``sweep`` from its trials' history rows and its budget's account
    (:func:`scheduler.sweeps.budget_use` of the same trials)."""
    assert sweep.id is not None
    counts = dict.fromkeys(TRIAL_COUNTS, 0)
    for r in trials:
        counts[_COUNT_OF[JobState(r.state)]] += 1
    total = aggregate(sweep_ref(sweep.id), trials, now=now)
    acct = [r for r in trials if r.emissions_g is not None]
    emitted_g = total.emissions_kg * 1000.0
    used_g = None if budget is None else budget.finished_g + budget.running_g
    planned = [r for r in trials if JobState(r.state) not in (JobState.SKIPPED, JobState.CANCELLED)]
    expected = [r.expected_g for r in planned if r.expected_g is not None]
    run_now = [r.run_now_g for r in planned if r.run_now_g is not None]
    starts = [r.started_at for r in trials if r.started_at is not None]
    ends = [r.finished_at for r in trials if r.finished_at is not None]
    in_flight = counts["running"] + counts["waiting"]
    if counts["cancelled"] == len(trials) and trials:
        state = "cancelled"
    elif sweep.stopped_at is not None:
        state = "stopping" if counts["running"] else "stopped"
    elif counts["running"] or (counts["waiting"] and starts):
        state = "running"
    elif counts["waiting"]:
        state = "waiting"
    else:
        state = "finished"
    return SweepSummary(
        id=sweep.id, ref=sweep_ref(sweep.id), name=sweep.name, owner=sweep.owner, state=state,
        size=sweep.size, trials=len(trials), **counts,
        submitted_at=sweep.submitted_at, deadline_at=sweep.deadline_at,
        started_at=min(starts) if starts else None,
        finished_at=max(ends) if ends and not in_flight else None,
        max_concurrent=sweep.max_concurrent, stopped_at=sweep.stopped_at,
        stop_reason=sweep.stop_reason, accounted=total.accounted,
        energy_kwh=total.energy_kwh if acct else None,
        energy_method=_labels(acct, "energy_method", "energy_kwh") if acct else None,
        measured_share=total.measured_share,
        emissions_g=emitted_g if acct else None,
        intensity_kind=intensity_kind_of(r.intensity_kind or "none" for r in acct) if acct else None,
        intensity_provider=_labels(acct, "intensity_provider", "emissions_g") if acct else None,
        actual_share=total.actual_share,
        counterfactual_g=total.run_now_kg * 1000.0 if acct else None,
        saved_g=total.saved_kg * 1000.0 if acct else None,
        saved_pct=total.saved_pct,
        expected_g=sum(expected) if expected else None,
        run_now_g=sum(run_now) if run_now else None,
        budget_g=sweep.budget_g, running_g=None if budget is None else budget.running_g,
        budget_used_g=used_g,
        budget_used_pct=(100.0 * used_g / sweep.budget_g) if sweep.budget_g and used_g is not None else None,
        budget_waiting_g=None if budget is None else budget.waiting_g,
    )


#: a sweep's budget account from its trials (:func:`scheduler.sweeps.budget_use` at a time)
BudgetOf = Callable[[Sequence[Job]], BudgetUse]


def trial_rows(store: JobStore, sweep_ids: Iterable[int]) -> dict[int, tuple[list[Job], list[HistoryRow]]]:
    """Each sweep's trials, by array index, and their history rows: one query per sweep
    for the trials and one per 500 trials for their last runs."""
    jobs = [j for sid in dict.fromkeys(sweep_ids) for j in store.list_jobs(sweep_id=sid)]
    last = store.last_runs(j.id for j in jobs if j.id is not None)
    out: dict[int, tuple[list[Job], list[HistoryRow]]] = {}
    for j in sorted(jobs, key=lambda j: (j.array_index if j.array_index is not None else -1, j.id or 0)):
        assert j.sweep_id is not None
        trials, rows = out.setdefault(j.sweep_id, ([], []))
        trials.append(j)
        rows.append(row_for(j, last.get(j.id or 0)))
    return out


def load_summaries(
    store: JobStore,
    sweep_ids: Iterable[int],
    *,
    budget_of: BudgetOf | None = None,
    now: datetime | None = None,
) -> dict[int, tuple[SweepSummary, list[HistoryRow]]]:
    """The summary and the trials' rows of each sweep of ``sweep_ids`` that exists;
    ``budget_of`` gives each sweep's budget account (``None``: not read)."""
    ids = list(dict.fromkeys(sweep_ids))
    if not ids:
        return {}
    sweeps = store.list_sweeps(ids)
    found = trial_rows(store, [s.id for s in sweeps if s.id is not None])
    out: dict[int, tuple[SweepSummary, list[HistoryRow]]] = {}
    for s in sweeps:
        assert s.id is not None
        trials, rows = found.get(s.id, ([], []))
        budget = budget_of(trials) if budget_of is not None else None
        out[s.id] = (summarize(s, rows, budget=budget, now=now), rows)
    return out


def summaries(app: App, sweep_ids: Sequence[int]) -> dict[int, tuple[SweepSummary, list[HistoryRow]]]:
    """:func:`scheduler.sweep_summary.load_summaries` with each sweep's budget account as
    the daemon keeps it (:func:`scheduler.sweeps.budget_use`)."""
    from scheduler.sweeps import budget_use

    now = app.clock.now()

    def budget_of(trials: Sequence[Job]) -> BudgetUse:
        return budget_use(app, trials, now)

    return load_summaries(app.store, sweep_ids, budget_of=budget_of, now=now)


def report_sweeps(app: object, rows: Sequence[object]) -> dict[str, SweepSummary]:
    """The summary of each sweep a ``--by sweep`` report has a row for, by its key (``s3``)."""
    from scheduler.app import App
    from scheduler.reporting import ReportRow
    from scheduler.sweeps import parse_sweep_ref

    assert isinstance(app, App)
    ids = [parse_sweep_ref(r.key) for r in rows if isinstance(r, ReportRow)]
    found = summaries(app, [i for i in ids if i is not None])
    return {s.ref: s for s, _ in found.values()}


__all__ = ["SWEEP_FIELDS", "TRIAL_COUNTS", "BudgetOf", "SweepSummary", "load_summaries", "report_sweeps",
           "summaries", "summarize", "trial_rows"]
