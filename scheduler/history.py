"""History rows: one per job, with its last run's energy, emissions and savings.

Shared by ``carbonshift history``, ``report``, the Python API and the dashboard, so every
view reports the same numbers with the same provenance fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from scheduler.domain.model import Job, JobState, Run
from scheduler.storage.base import JobStore

HISTORY_FIELDS = (
    "id", "name", "state", "owner", "policy", "submitted_at", "planned_start", "started_at",
    "finished_at", "site", "zone", "energy_kwh", "emissions_g", "counterfactual_g", "saved_g",
    "saved_pct", "exit_code", "energy_method", "measured_share", "intensity_kind",
    "intensity_provider", "actual_share", "pue", "expected_g", "run_now_g", "plan_source",
    "duration_s", "gpus", "deadline_at", "note", "run_id", "sweep_id", "array_index",
)


@dataclass(frozen=True)
class HistoryRow:
    id: int
    name: str
    state: str
    owner: str
    policy: str | None
    submitted_at: datetime
    planned_start: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    site: str
    zone: str
    energy_kwh: float | None
    emissions_g: float | None
    counterfactual_g: float | None
    saved_g: float | None
    saved_pct: float | None
    exit_code: int | None
    energy_method: str | None
    measured_share: float | None
    intensity_kind: str | None
    intensity_provider: str | None
    actual_share: float | None
    pue: float | None
    expected_g: float | None
    run_now_g: float | None
    plan_source: str | None
    duration_s: int
    gpus: int
    deadline_at: datetime | None
    note: str
    #: the run the figures are from (``None`` before a first run)
    run_id: int | None = None
    #: a sweep's trial: the sweep's id (written ``s3``) and the trial's index in it
    sweep_id: int | None = None
    array_index: int | None = None

    def as_dict(self) -> dict[str, object]:
        # a shallow dict: every field is a scalar or a datetime, no deep copy needed; a
        # frozen dataclass's __dict__ holds exactly its fields, in their order
        return self.__dict__.copy()


_FIELD_NAMES = tuple(f.name for f in fields(HistoryRow))


def row_for(job: Job, run: Run | None) -> HistoryRow:
    assert job.id is not None
    acct = run.accounting if run is not None else None
    saved = acct.saved_g if acct is not None else None
    saved_pct = (
        100.0 * acct.saved_g / acct.counterfactual_g
        if acct is not None and acct.counterfactual_g > 0
        else None
    )
    return HistoryRow(
        id=job.id,
        name=job.name,
        state=str(job.state),
        owner=job.owner,
        policy=job.policy_name,
        submitted_at=job.submitted_at,
        planned_start=job.planned_start,
        started_at=run.started_at if run else None,
        finished_at=run.finished_at if run else None,
        site=(run.site if run else job.planned_site or job.site),
        zone=job.zone,
        energy_kwh=acct.energy_kwh if acct else None,
        emissions_g=acct.emissions_g if acct else None,
        counterfactual_g=acct.counterfactual_g if acct else None,
        saved_g=saved,
        saved_pct=saved_pct,
        exit_code=run.exit_code if run else None,
        energy_method=acct.energy_method if acct else None,
        measured_share=acct.measured_share if acct else None,
        intensity_kind=acct.intensity_kind if acct else None,
        intensity_provider=acct.intensity_provider if acct else None,
        actual_share=acct.actual_share if acct else None,
        pue=acct.pue if acct else None,
        expected_g=job.expected_g,
        run_now_g=job.run_now_g,
        plan_source=job.plan_source,
        duration_s=job.duration_s,
        gpus=job.gpus,
        deadline_at=job.deadline_at,
        note=job.note,
        run_id=run.id if run else None,
        sweep_id=job.sweep_id,
        array_index=job.array_index,
    )


def history_rows(
    store: JobStore,
    *,
    states: Iterable[JobState] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[HistoryRow]:
    """Jobs submitted in ``[since, until)``, with their last run's figures, oldest first;
    ``limit``: the newest ``limit`` of them."""
    jobs = store.list_jobs(states, since=since, until=until, limit=limit, newest=True)
    last = store.last_runs(job.id for job in jobs if job.id is not None)  # one query, not one per job
    return [row_for(job, last.get(job.id or 0)) for job in jobs]


def _row_from_view(values: Sequence[Any]) -> HistoryRow:
    # one row of lite.history_view: the job's columns, then its last run's; what row_for
    # reads from a Job and its Run, read from those columns
    (job_id, name, state, owner, policy, submitted_at, planned_start, planned_site, job_site, zone,
     expected_g, run_now_g, plan_source, duration_s, gpus, deadline_at, note, sweep_id, array_index,
     run_id, run_site, started_at, finished_at, exit_code, energy_j, facility_energy_j, emissions_g,
     counterfactual_g, energy_method, intensity_kind, intensity_provider, pue, measured_share,
     actual_share) = values
    accounted = energy_j is not None  # the store's test for a run's accounting
    return HistoryRow(
        id=job_id, name=name, state=str(JobState(state)), owner=owner, policy=policy,
        submitted_at=submitted_at, planned_start=planned_start, started_at=started_at,
        finished_at=finished_at, site=run_site if run_id is not None else planned_site or job_site,
        zone=zone,
        energy_kwh=facility_energy_j / 3.6e6 if accounted else None,
        emissions_g=emissions_g if accounted else None,
        counterfactual_g=counterfactual_g if accounted else None,
        saved_g=counterfactual_g - emissions_g if accounted else None,
        saved_pct=(100.0 * (counterfactual_g - emissions_g) / counterfactual_g
                   if accounted and counterfactual_g > 0 else None),
        exit_code=exit_code,
        energy_method=energy_method if accounted else None,
        measured_share=measured_share if accounted else None,
        intensity_kind=intensity_kind if accounted else None,
        intensity_provider=intensity_provider if accounted else None,
        actual_share=actual_share if accounted else None,
        pue=pue if accounted else None,
        expected_g=expected_g, run_now_g=run_now_g, plan_source=plan_source, duration_s=duration_s,
        gpus=gpus, deadline_at=deadline_at, note=note, run_id=run_id, sweep_id=sweep_id,
        array_index=array_index,
    )


def read_history_rows(
    url: str | None,
    store: Callable[[], JobStore],
    *,
    states: Iterable[JobState] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[HistoryRow]:
    """:func:`history_rows` of the database at ``url``: an SQLite file this code knows is
    read in one query through the standard library (:func:`scheduler.storage.lite.history_view`,
    no SQLAlchemy, no Job or Run objects); anything else (``url`` ``None``: the store is
    open) through ``store()``, as before."""
    wanted = list(states) if states is not None else None
    view = None
    if url is not None:
        from scheduler.storage import lite

        view = lite.history_view(url, wanted, since=since, until=until, limit=limit)
    if view is None:
        return history_rows(store(), states=wanted, since=since, until=until, limit=limit)
    return [_row_from_view(values) for values in view]
