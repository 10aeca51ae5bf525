"""A small, hand-computed history written straight into a store.

Shared by the report, CLI, API and dashboard tests (imported by path: tests have no
package). Times are fixed in March 2026 (UTC); every figure below is chosen so the
expected report totals can be worked out by hand:

====  =====  =======  =====  ====  ===========  ====  ======  =====  ========  ======
job   owner  policy   site   GPUs  state        kWh   g       run-   measured  actual
                                                              now g  share     share
====  =====  =======  =====  ====  ===========  ====  ======  =====  ========  ======
1     alice  nightly  local  2     succeeded    3.0   300     900    1.0       1.0
2     bob    default  hpc    8     succeeded    10.0  4000    5000   0.5       0.0
3     alice  now      local  0     failed (1)   0.5   100     100    0.0       1.0
4     carol  default  local  1     planned      -     -       -      -         -
5     bob    default  local  0     cancelled    -     -       -      -         -
====  =====  =======  =====  ====  ===========  ====  ======  =====  ========  ======

Job 1: submitted Mon 2 Mar 10:00, ran 22:00-01:00 (3 h, deadline Tue 06:00: hit).
Job 2: submitted Tue 3 Mar 09:00, ran 13:00-15:00 (2 h, deadline 14:00: missed).
Job 3: submitted Thu 5 Mar 12:00, ran 12:00-12:30, exit 1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from intensity.model import IntensityPoint, Kind
from probes.model import Method, Sample
from scheduler.model import Job, JobState, Run, RunAccounting, Site

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)


def _job(name: str, owner: str, policy: str, site: str, gpus: int, submitted: datetime,
         state: JobState, deadline: datetime | None, duration_h: float = 2.0,
         zone: str = "GB", expected_g: float | None = None, run_now_g: float | None = None,
         planned: datetime | None = None) -> Job:
    return Job(
        name=name, argv=["python", "train.py"], duration_s=int(duration_h * 3600), zone=zone,
        submitted_at=submitted, earliest_start=submitted,
        latest_start=(deadline - timedelta(hours=duration_h)) if deadline else submitted + 48 * H,
        deadline_at=deadline, owner=owner, policy_name=policy, site=site, gpus=gpus,
        state=state, planned_start=planned, planned_site=site, expected_g=expected_g,
        run_now_g=run_now_g, plan_source="replay:provider", power_w=1000.0,
    )


def _acct(kwh: float, g: float, cf: float, measured: float, actual: float) -> RunAccounting:
    return RunAccounting(
        energy_j=kwh * 3.6e6, facility_energy_j=kwh * 3.6e6, emissions_g=g, counterfactual_g=cf,
        energy_method="nvml_energy_counter", intensity_kind="actual" if actual else "forecast",
        intensity_provider="replay", pue=1.0, measured_share=measured, actual_share=actual,
    )


def seed_store(store: object) -> dict[str, int]:
    """Write the table above into ``store``; return ``{name: job id}``."""
    from scheduler.storage.base import JobStore

    assert isinstance(store, JobStore)
    store.put_site(Site(name="hpc", zone="DE", executor="slurm", gpus=8, cpus=64, pue=1.0))
    ids: dict[str, int] = {}

    def add(job: Job, run: tuple[datetime, datetime, int | None, JobState, RunAccounting] | None,
            samples: list[Sample] | None = None) -> int:
        stored = store.add_job(job)
        assert stored.id is not None
        if run is not None:
            start, end, code, state, acct = run
            r = store.add_run(Run(job_id=stored.id, site=job.site, executor="local",
                                  started_at=start, host="seed", state=state))
            assert r.id is not None
            r.finished_at, r.exit_code, r.state = end, code, state
            store.update_run(r)
            if samples:
                store.add_samples(r.id, samples)
            store.set_accounting(r.id, acct)
        ids[job.name] = stored.id
        return stored.id

    d0 = T0 + 10 * H
    s1 = T0 + 22 * H
    samples = [
        Sample(s1 + timedelta(minutes=10 * i), s1 + timedelta(minutes=10 * (i + 1)), "gpu:0",
               1000.0 * 600 * (1.0 if i % 2 else 0.8), Method.NVML_ENERGY_COUNTER)
        for i in range(18)
    ]
    add(_job("bert-ft", "alice", "nightly", "local", 2, d0, JobState.SUCCEEDED, T0 + 30 * H,
             duration_h=3, expected_g=330.0, run_now_g=880.0, planned=s1),
        (s1, s1 + 3 * H, 0, JobState.SUCCEEDED, _acct(3.0, 300.0, 900.0, 1.0, 1.0)), samples)
    add(_job("llama-sweep", "bob", "default", "hpc", 8, T0 + 33 * H, JobState.SUCCEEDED,
             T0 + 38 * H, zone="DE", expected_g=3500.0, run_now_g=5200.0, planned=T0 + 37 * H),
        (T0 + 37 * H, T0 + 39 * H, 0, JobState.SUCCEEDED, _acct(10.0, 4000.0, 5000.0, 0.5, 0.0)))
    t3 = T0 + 3 * 24 * H + 12 * H
    add(_job("eval", "alice", "now", "local", 0, t3, JobState.FAILED, None, duration_h=0.5,
             expected_g=90.0, run_now_g=90.0, planned=t3),
        (t3, t3 + 0.5 * H, 1, JobState.FAILED, _acct(0.5, 100.0, 100.0, 0.0, 1.0)))
    add(_job("waiting", "carol", "default", "local", 1, t3 + H, JobState.PLANNED, t3 + 30 * H,
             expected_g=50.0, run_now_g=80.0, planned=t3 + 20 * H), None)
    add(_job("dropped", "bob", "default", "local", 0, t3 + 2 * H, JobState.CANCELLED, None), None)
    # the grid around job 1: 300 g/kWh in the day, 100 at night (actuals)
    pts = [
        IntensityPoint("GB", T0 + i * H, T0 + (i + 1) * H, 100.0 if (i % 24) >= 21 or (i % 24) < 6 else 300.0,
                       Kind.ACTUAL, "replay")
        for i in range(0, 36)
    ]
    store.add_points(pts)
    return ids
