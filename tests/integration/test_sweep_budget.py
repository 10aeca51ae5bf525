"""A sweep's carbon account and budget stop (scheduler/sweeps.py) on a real store: finished
trials count what they measured, running ones at least their plan, waiting ones their
expected grams; over the budget the waiting trials are skipped at once, with why."""

from __future__ import annotations

from datetime import timedelta

from scheduler.app import App
from scheduler.model import Job, JobState, Run, RunAccounting, Sweep
from scheduler.sweeps import BUDGET_NOTE, budget_use, check_budget, launch_gate
from tests.integration.conftest import ORIGIN, app  # noqa: F401 (app: a fixture)


def _trial(i: int, state: JobState, expected_g: float, limit: int = 2) -> Job:
    return Job(name=f"t[{i}]", argv=["true"], duration_s=600, zone="TRACE", submitted_at=ORIGIN,
               earliest_start=ORIGIN, latest_start=ORIGIN + timedelta(hours=5),
               deadline_at=ORIGIN + timedelta(hours=6), state=state, expected_g=expected_g,
               planned_start=ORIGIN, array_index=i, sweep_limit=limit)


def _accounted(app: App, job_id: int, emissions_g: float, *, open_: bool = False) -> None:  # noqa: F811
    run = app.store.add_run(Run(job_id=job_id, site="local", executor="local", started_at=ORIGIN,
                                state=JobState.RUNNING if open_ else JobState.SUCCEEDED,
                                finished_at=None if open_ else ORIGIN + timedelta(minutes=10)))
    if not open_:
        assert run.id is not None
        app.store.set_accounting(run.id, RunAccounting(
            energy_j=1e6, facility_energy_j=1e6, emissions_g=emissions_g, counterfactual_g=emissions_g,
            energy_method="rapl", intensity_kind="actual", intensity_provider="replay"))


def test_the_account_and_the_stop(app: App) -> None:  # noqa: F811
    sweep, trials = app.store.add_sweep_with_jobs(
        Sweep(name="t", size=5, submitted_at=ORIGIN, max_concurrent=2, budget_g=100.0),
        [_trial(0, JobState.SUCCEEDED, 10.0), _trial(1, JobState.RUNNING, 20.0),
         _trial(2, JobState.PLANNED, 30.0), _trial(3, JobState.PLANNED, 30.0), _trial(4, JobState.PENDING, 5.0)])
    ids = [j.id or 0 for j in trials]
    _accounted(app, ids[0], 40.0)  # measured 4x its plan
    _accounted(app, ids[1], 0.0, open_=True)  # running, nothing measured yet: its plan counts
    use = budget_use(app, app.store.list_jobs(sweep_id=sweep.id), ORIGIN)
    assert (use.finished_g, use.running_g, use.waiting_g) == (40.0, 20.0, 65.0)
    assert check_budget(app, sweep, ORIGIN) is not None  # 125 g > 100 g
    states = [app.store.get_job(i).state for i in ids]
    assert states == [JobState.SUCCEEDED, JobState.RUNNING] + [JobState.SKIPPED] * 3
    assert {app.store.get_job(i).note for i in ids[2:]} == {BUDGET_NOTE}
    stopped = app.store.get_sweep(sweep.id or 0)
    assert stopped.stop_reason == "sweep budget" and stopped.stopped_at == ORIGIN
    assert check_budget(app, stopped, ORIGIN) is None  # once


def test_the_gate_defers_at_the_cap_and_skips_after_a_stop(app: App) -> None:  # noqa: F811
    sweep, trials = app.store.add_sweep_with_jobs(
        Sweep(name="g", size=3, submitted_at=ORIGIN, max_concurrent=1),
        [_trial(i, JobState.PLANNED, 1.0, limit=1) for i in range(3)])
    ids = [j.id or 0 for j in trials]
    claimed = app.store.claim_due(ORIGIN, limit=2)
    assert [j.id for j in claimed] == ids[:2]
    assert launch_gate(app, claimed[0], ORIGIN).launch
    _accounted(app, ids[0], 0.0, open_=True)  # launched: its run is open
    gate = launch_gate(app, claimed[1], ORIGIN)
    assert not gate.launch and gate.kind == "deferred" and "1 trials" in gate.message
    back = app.store.get_job(ids[1])
    assert back.state is JobState.PLANNED and back.attempts == 0  # the claim undone
    app.store.stop_sweep(sweep.id or 0, ORIGIN, "sweep stopped")  # no skipping here
    (again,) = [j for j in app.store.claim_due(ORIGIN, limit=5) if j.id == ids[1]]
    gate = launch_gate(app, again, ORIGIN)
    assert not gate.launch and gate.kind == "skipped"
    assert app.store.get_job(ids[1]).state is JobState.SKIPPED


def test_the_last_trial_is_not_launched_over_the_budget(app: App) -> None:  # noqa: F811
    sweep, trials = app.store.add_sweep_with_jobs(
        Sweep(name="last", size=2, submitted_at=ORIGIN, budget_g=50.0),
        [_trial(0, JobState.SUCCEEDED, 10.0), _trial(1, JobState.PLANNED, 20.0)])
    _accounted(app, trials[0].id or 0, 40.0)
    (claimed,) = app.store.claim_due(ORIGIN, limit=5)  # 40 measured + 20 expected > 50
    gate = launch_gate(app, claimed, ORIGIN)
    assert not gate.launch and gate.kind == "skipped" and "budget" in gate.message
    assert app.store.get_job(claimed.id or 0).note == BUDGET_NOTE
    assert app.store.get_sweep(sweep.id or 0).stop_reason == "sweep budget"
