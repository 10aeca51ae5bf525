"""A sweep's summary from hand-built trials: counts by state, sums, labels and budget used."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.accounting import intensity_kind_of
from scheduler.history import row_for
from scheduler.model import Job, JobState, Run, RunAccounting, Sweep
from scheduler.sweep_summary import summarize
from scheduler.sweeps import BudgetUse

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
SWEEP = Sweep(name="lr-search", size=8, submitted_at=T0, id=3, deadline_at=T0 + 24 * H,
              max_concurrent=2, budget_g=1000.0, owner="alice")


def _trial(index: int, state: JobState, expected_g: float = 60.0) -> Job:
    return Job(name=f"lr-search[{index}]", argv=["python", "train.py", str(index)], duration_s=3600,
               zone="GB", submitted_at=T0, earliest_start=T0, latest_start=T0 + 23 * H,
               deadline_at=T0 + 24 * H, id=40 + index, owner="alice", state=state,
               expected_g=expected_g, run_now_g=100.0, sweep_id=3, array_index=index, sweep_limit=2)


def _run(job: Job, start_h: float, acct: RunAccounting | None) -> Run:
    start = T0 + start_h * H
    done = job.state not in (JobState.RUNNING, JobState.SUSPENDED)
    return Run(job_id=job.id or 0, site="local", executor="local", started_at=start, id=job.id,
               finished_at=start + H if done else None, exit_code=0 if done else None,
               state=job.state, accounting=acct)


def _acct(kwh: float, g: float, cf: float, method: str, kind: str, provider: str,
          measured: float, actual: float) -> RunAccounting:
    return RunAccounting(energy_j=kwh * 3.6e6, facility_energy_j=kwh * 3.6e6, emissions_g=g,
                         counterfactual_g=cf, energy_method=method, intensity_kind=kind,
                         intensity_provider=provider, measured_share=measured, actual_share=actual)


def _rows():  # type: ignore[no-untyped-def]
    nvml = _acct(1.0, 100.0, 300.0, "nvml_energy_counter", "actual", "replay", 1.0, 1.0)
    rapl = _acct(2.0, 300.0, 400.0, "rapl+cpu_time", "forecast", "ukgrid", 0.5, 0.0)
    bad = _acct(0.5, 50.0, 50.0, "nvml_energy_counter", "actual", "replay", 1.0, 1.0)
    plan = [
        (_trial(0, JobState.SUCCEEDED), 1.0, nvml),
        (_trial(1, JobState.SUCCEEDED), 2.0, rapl),
        (_trial(2, JobState.FAILED), 3.0, bad),
        (_trial(3, JobState.RUNNING), 4.0, None),
        (_trial(4, JobState.PLANNED), None, None),
        (_trial(5, JobState.SKIPPED), None, None),
        (_trial(6, JobState.LOST), 3.5, None),
        (_trial(7, JobState.CANCELLED), None, None),
    ]
    return [row_for(job, _run(job, h, a) if h is not None else None) for job, h, a in plan]


def test_trials_are_counted_by_state_and_their_figures_summed_with_provenance() -> None:
    # the daemon's account (scheduler.sweeps.budget_use): 450 g measured, the running trial
    # 40 g, the waiting one expected to add 60 g
    s = summarize(SWEEP, _rows(), budget=BudgetUse(450.0, 40.0, 60.0))
    assert (s.ref, s.state, s.trials, s.size) == ("s3", "running", 8, 8)
    # lost counts as failed, suspended would count as running
    assert (s.done, s.failed, s.running, s.waiting, s.skipped, s.cancelled) == (2, 2, 1, 1, 1, 1)
    assert s.trials_text() == "2 done, 2 failed, 1 running, 1 waiting, 1 skipped, 1 cancelled"
    assert s.accounted == 3
    assert s.energy_kwh == pytest.approx(3.5)
    assert s.emissions_g == pytest.approx(450.0)
    assert s.counterfactual_g == pytest.approx(750.0)
    # saved against run-now: the sum of the trials' counterfactuals minus their emissions
    assert s.saved_g == pytest.approx(300.0) and s.saved_pct == pytest.approx(40.0)
    # labels as a job's: heaviest first; actual and forecast together are mixed
    assert s.energy_method == "rapl+cpu_time+nvml_energy_counter"
    assert s.intensity_kind == "mixed"
    assert s.intensity_provider == "ukgrid+replay"
    assert s.measured_share == pytest.approx((1.0 + 1.0 + 0.5) / 3.5)
    assert s.actual_share == pytest.approx(150.0 / 450.0)
    # budget used: the finished trials' grams and the running one's, as the daemon counts
    assert s.running_g == pytest.approx(40.0) and s.budget_waiting_g == pytest.approx(60.0)
    assert s.budget_used_g == pytest.approx(490.0) and s.budget_used_pct == pytest.approx(49.0)
    # the planner's figures of the trials that ran or will run: not skipped or cancelled
    assert s.expected_g == pytest.approx(6 * 60.0) and s.run_now_g == pytest.approx(600.0)
    assert s.started_at == T0 + H and s.finished_at is None
    assert s.as_dict()["ref"] == "s3"


def test_a_sweep_not_started_has_no_figures_and_nothing_used() -> None:
    rows = [row_for(_trial(i, JobState.PLANNED), None) for i in range(3)]
    s = summarize(replace(SWEEP, size=3), rows, budget=BudgetUse(0.0, 0.0, 180.0))
    assert (s.state, s.waiting, s.accounted) == ("waiting", 3, 0)
    assert s.energy_kwh is None and s.emissions_g is None and s.saved_g is None
    assert s.intensity_kind is None and s.energy_method is None
    assert s.budget_used_g == 0.0 and s.budget_used_pct == 0.0 and s.budget_waiting_g == 180.0
    unread = summarize(replace(SWEEP, size=3), rows)  # no account given: no figure made up
    assert unread.budget_used_g is None and unread.budget_used_pct is None
    assert s.started_at is None and s.finished_at is None


def test_stopped_stopping_cancelled_and_finished_sweeps() -> None:
    rows = _rows()
    stopped = replace(SWEEP, stopped_at=T0 + 5 * H, stop_reason="sweep budget")
    assert summarize(stopped, rows).state == "stopping"  # its running trial finishes
    done = [r for r in rows if r.state not in ("running", "planned")]
    s = summarize(stopped, done)
    assert (s.state, s.stop_reason) == ("stopped", "sweep budget")
    assert s.finished_at == T0 + 4.5 * H  # the lost trial's end once none is left to run
    assert summarize(SWEEP, done).state == "finished"
    cancelled = [row_for(_trial(i, JobState.CANCELLED), None) for i in range(2)]
    assert summarize(stopped, cancelled).state == "cancelled"
    no_budget = summarize(replace(SWEEP, budget_g=None), rows, budget=BudgetUse(450.0, 0.0, 0.0))
    assert no_budget.budget_used_pct is None and no_budget.budget_used_g == pytest.approx(450.0)


@pytest.mark.parametrize(("kinds", "label"), [
    ([], "none"), (["none"], "none"), (["actual"], "actual"), (["actual", "none"], "actual"),
    (["actual", "forecast"], "mixed"), (["mixed", "forecast"], "mixed"),
    (["static", "actual"], "mixed"), (["static"], "static"), (["static", "forecast"], "forecast"),
    (["forecast"], "forecast"),
])
def test_intensity_kind_of_labels_a_sum_as_a_run_is_labelled(kinds: list[str], label: str) -> None:
    assert intensity_kind_of(kinds) == label
