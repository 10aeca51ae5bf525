"""A small history with sweeps, written straight into a store (as report_seed.py does).

Shared by the CLI and dashboard sweep tests (imported by path: tests have no package).
Sweep s1 "lr-search" of five trials (budget 1 kg, at most 2 at once): two succeeded (1 kWh,
100 g, run-now 300 g; 2 kWh, 300 g, run-now 400 g), one failed (0.5 kWh, 50 g, run-now 50 g),
one running, one skipped by its budget. Sweep s2 "seeds" (owner bob) of three planned
trials. Two jobs of no sweep: "solo" planned, "eval" succeeded (1 kWh, 200 g, run-now 250 g).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.app import App
from scheduler.config import load_settings
from scheduler.model import Job, JobState, Run, RunAccounting, Sweep

H = timedelta(hours=1)


def _job(name: str, state: JobState, at: datetime, index: int | None = None, **kw: object) -> Job:
    fields: dict[str, object] = dict(
        name=name, argv=["python", "train.py"], duration_s=3600, zone="TRACE", submitted_at=at,
        earliest_start=at, latest_start=at + 20 * H, deadline_at=at + 24 * H, owner="alice",
        state=state, planned_start=at + 2 * H, planned_site="local", expected_g=60.0,
        run_now_g=100.0, array_index=index)
    return Job(**{**fields, **kw})  # type: ignore[arg-type]


def _acct(kwh: float, g: float, cf: float, kind: str) -> RunAccounting:
    return RunAccounting(energy_j=kwh * 3.6e6, facility_energy_j=kwh * 3.6e6, emissions_g=g,
                         counterfactual_g=cf, energy_method="nvml_energy_counter", intensity_kind=kind,
                         intensity_provider="replay", measured_share=1.0,
                         actual_share=1.0 if kind == "actual" else 0.0)


def seed_sweeps(db_path: Path) -> dict[str, int]:
    """Write the history above into the SQLite file ``db_path``; return some job ids."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    app = App(load_settings(env={}, overrides={"db": f"sqlite:///{db_path}"}))
    try:
        return _write(app)
    finally:
        app.close()


def _write(app: App) -> dict[str, int]:
    store = app.store
    t0 = datetime.now(UTC).replace(microsecond=0) - 6 * H
    states = [JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.FAILED, JobState.RUNNING, JobState.SKIPPED]
    sweep, trials = store.add_sweep_with_jobs(
        Sweep(name="lr-search", size=5, submitted_at=t0, deadline_at=t0 + 24 * H, max_concurrent=2,
              budget_g=1000.0, owner="alice"),
        [_job(f"lr-search[{i}]", s, t0, i, sweep_limit=2,
              note="skipped: sweep budget" if s is JobState.SKIPPED else "")
         for i, s in enumerate(states)])
    figures = {0: _acct(1.0, 100.0, 300.0, "actual"), 1: _acct(2.0, 300.0, 400.0, "forecast"),
               2: _acct(0.5, 50.0, 50.0, "actual"), 3: None}
    for i, acct in figures.items():
        job = trials[i]
        assert job.id is not None
        run = store.add_run(Run(job_id=job.id, site="local", executor="local", started_at=t0 + (i + 1) * H,
                                host="seed", state=JobState.RUNNING))
        assert run.id is not None
        if acct is not None:
            run.finished_at, run.exit_code, run.state = t0 + (i + 2) * H, 0 if i < 2 else 1, job.state
            store.update_run(run)
            store.set_accounting(run.id, acct)
    waiting, _ = store.add_sweep_with_jobs(
        Sweep(name="seeds", size=3, submitted_at=t0 + H, owner="bob"),
        [_job(f"seeds[{i}]", JobState.PLANNED, t0 + H, i, owner="bob") for i in range(3)])
    solo = store.add_job(_job("solo", JobState.PLANNED, t0 + 2 * H))
    ev = store.add_job(_job("eval", JobState.SUCCEEDED, t0))
    assert ev.id is not None
    run = store.add_run(Run(job_id=ev.id, site="local", executor="local", started_at=t0, host="seed",
                            state=JobState.SUCCEEDED, finished_at=t0 + H, exit_code=0))
    assert run.id is not None
    store.update_run(run)
    store.set_accounting(run.id, _acct(1.0, 200.0, 250.0, "actual"))
    assert sweep.id == 1 and waiting.id == 2
    return {"trial3": trials[3].id or 0, "solo": solo.id or 0, "eval": ev.id}
