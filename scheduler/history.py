"""History rows: one per job, with its last run's energy, emissions and savings.

Shared by ``carbonshift history``, ``report``, the Python API and the dashboard, so every
view reports the same numbers with the same provenance fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime

from scheduler.model import Job, JobState, Run
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
        # a shallow dict: every field is a scalar or a datetime, no deep copy needed
        return {name: getattr(self, name) for name in _FIELD_NAMES}


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
