"""The simulation engine on hand-made traces: clock, commits, capacity, accounting."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intensity.model import IntensityPoint, Kind
from scheduler.errors import BadInput
from scheduler.model import Site
from scheduler.planner import PlanOptions
from scheduler.simulate import (
    Forecaster,
    SimJob,
    TraceIndex,
    compare,
    generate_workload,
    perfect_forecaster,
    read_workload,
    run_mode,
    seven_day_mean_forecast,
    vintage_forecaster,
)

T0 = datetime(2023, 1, 1, tzinfo=UTC)


def trace(zone: str, values: list[float], step_s: int = 3600) -> list[IntensityPoint]:
    return [
        IntensityPoint(zone, T0 + timedelta(seconds=i * step_s), T0 + timedelta(seconds=(i + 1) * step_s),
                       v, Kind.ACTUAL, "test")
        for i, v in enumerate(values)
    ]


def daily(zone: str, days: int, clean_hours: range = range(2, 6), dirty: float = 400.0,
          clean: float = 100.0) -> list[IntensityPoint]:
    return trace(zone, [clean if h % 24 in clean_hours else dirty for h in range(days * 24)])


def sj(i: int, submit_h: float, dur_h: float, due_h: float, **kw: object) -> SimJob:
    return SimJob(id=i, submit=T0 + timedelta(hours=submit_h), duration_s=int(dur_h * 3600),
                  deadline=T0 + timedelta(hours=due_h), site=kw.pop("site", "a"), **kw)  # type: ignore[arg-type]


def test_perfect_forecast_equals_the_oracle_and_accounting_is_exact() -> None:
    tr = {"Z": daily("Z", 3)}
    sites = {"a": Site("a", "Z")}
    jobs = [sj(1, 20, 2, 44, power_w=1000.0), sj(2, 30, 1, 40, power_w=500.0)]
    c = compare(jobs, sites, tr, forecast="perfect")
    ca, now = c.results["carbon-aware"], c.results["run-now"]
    assert c.summary()["carbon_aware_g"] == pytest.approx(c.summary()["oracle_g"])
    # job 1 runs 02:00-04:00 next day: 2 h x 1 kW x 100 g/kWh
    assert ca.outcomes[1].intervals[0][0] == T0 + timedelta(hours=26)
    assert ca.outcomes[1].emissions_g == pytest.approx(200.0)
    assert now.outcomes[1].emissions_g == pytest.approx(800.0)
    assert now.outcomes[1].delay_s == 0
    assert ca.outcomes[2].emissions_g == pytest.approx(0.5 * 400)  # no clean hour before 40 h
    assert c.summary()["deadline_misses"] == 0
    s = c.summary()
    assert s["savings_pct"] == pytest.approx(100 * (1000 - 400) / 1000)


def test_capacity_is_never_exceeded_and_run_now_waits_its_turn() -> None:
    tr = {"Z": daily("Z", 4)}
    sites = {"a": Site("a", "Z", gpus=2)}
    jobs = [sj(i, 1, 2, 30, gpus=1) for i in range(1, 6)]
    c = compare(jobs, sites, tr, forecast="perfect", options=PlanOptions(slot_s=3600))
    for mode, res in c.results.items():
        use: Counter[int] = Counter()
        for o in res.outcomes.values():
            for a, b in o.intervals:
                for h in range(int((a - T0).total_seconds()) // 3600, math.ceil((b - T0).total_seconds() / 3600)):
                    use[h] += 1
        assert max(use.values()) <= 2, mode
        assert res.misses() == 0, mode
    delays = sorted(o.delay_s / 3600 for o in c.results["run-now"].outcomes.values())
    assert delays == [0, 0, 2, 2, 4]
    # the carbon-aware plan puts everything in clean hours: 4 jobs of 2 h on 2 GPUs at
    # 02:00-06:00, the fifth at 26:00-28:00 (still before its 30 h deadline)
    ca = c.results["carbon-aware"]
    assert all(o.emissions_g == pytest.approx(0.3 * 2 * 100) for o in ca.outcomes.values())
    assert sorted(o.intervals[0][0].hour for o in ca.outcomes.values()) == [2, 2, 2, 4, 4]


def test_interruptible_jobs_run_their_whole_duration_in_pieces() -> None:
    values = [400.0] * 48
    for h in (3, 4, 9, 10):
        values[h] = 50.0
    tr = {"Z": trace("Z", values)}
    sites = {"a": Site("a", "Z")}
    jobs = [sj(1, 1, 4, 20, interruptible=True, power_w=1000.0)]
    res = run_mode("oracle", jobs, sites, {"Z": TraceIndex(tr["Z"])}, lambda *a: [],
                   options=PlanOptions(min_chunk_s=3600, max_pauses=1))
    o = res.outcomes[1]
    assert [(a.hour, b.hour) for a, b in o.intervals] == [(3, 5), (9, 11)]
    assert sum((b - a).total_seconds() for a, b in o.intervals) == 4 * 3600
    assert o.emissions_g == pytest.approx(4 * 50.0)


def test_a_job_that_cannot_fit_by_its_deadline_is_refused_and_resubmitted() -> None:
    """As the queue does: a submit with no capacity before its deadline is refused with the
    earliest finish that fits; the simulated user submits again with that deadline. It is
    counted as refused, and its lateness is not a miss of the scheduler's."""
    tr = {"Z": daily("Z", 3)}
    sites = {"a": Site("a", "Z", gpus=1)}
    jobs = [sj(1, 1, 3, 4, gpus=1), sj(2, 1, 3, 4, gpus=1)]
    res = compare(jobs, sites, tr, forecast="perfect", options=PlanOptions(slot_s=3600))
    s = res.summary()
    assert s["deadline_misses"] == s["run_now_deadline_misses"] == s["oracle_deadline_misses"] == 0
    assert s["refused"] == s["run_now_refused"] == s["oracle_refused"] == 1
    for mode in res.results.values():
        (late,) = [o for o in mode.outcomes.values() if o.refused]
        assert late.intervals[-1][1] == T0 + timedelta(hours=7)  # after the other one


def test_a_replan_keeps_every_accepted_job_inside_its_deadline() -> None:
    """Jobs arriving one by one onto one GPU, with deadlines that leave little slack:
    whatever the re-plans move, no accepted job is planned past its deadline."""
    tr = {"Z": daily("Z", 6, clean_hours=range(1, 4))}
    sites = {"a": Site("a", "Z", gpus=1)}
    jobs = [sj(i, 0.25 * i, 1 + i % 2, 0.25 * i + 5 + (i % 3), gpus=1) for i in range(1, 30)]
    for replan_s in (0, 3600):
        res = compare(jobs, sites, tr, forecast="perfect",
                      options=PlanOptions(slot_s=900, exact_max_jobs=0), replan_s=replan_s)
        for mode in res.results.values():
            assert mode.misses() == 0, mode.mode


def test_relocation_moves_jobs_to_the_cleaner_zone_after_the_delay() -> None:
    tr = {"D": trace("D", [500.0] * 48), "C": trace("C", [100.0] * 48)}
    sites = {"home": Site("home", "D"), "green": Site("green", "C", transfer_delay_s=1800,
                                                       transfer_energy_j=3.6e6)}
    jobs = [sj(1, 2, 2, 20, site="home", allowed_sites=("home", "green"), power_w=1000.0)]
    c = compare(jobs, sites, tr, forecast="perfect")
    o = c.results["carbon-aware"].outcomes[1]
    assert o.site == "green"
    assert o.intervals[0][0] == T0 + timedelta(hours=2, minutes=30)
    assert o.emissions_g == pytest.approx(2 * 100 + 1 * 500)  # run + 1 kWh moved at home's 500
    assert c.per_site()["green"]["jobs"] == 1


def test_seven_day_mean_forecast_is_the_same_hour_mean() -> None:
    values = [float(h % 24 + 10 * (h // 24)) for h in range(24 * 9)]
    pts = trace("Z", values)
    now = T0 + timedelta(days=8)
    fc = seven_day_mean_forecast("Z", [p for p in pts if p.end <= now], now, 6 * 3600)
    assert len(fc) == 6
    for k, p in enumerate(fc):
        same = [values[8 * 24 + k - 24 * d] for d in range(1, 8)]
        assert p.intensity_g_per_kwh == pytest.approx(sum(same) / 7)
        assert p.start == now + timedelta(hours=k)


def test_the_local_forecaster_only_sees_the_past() -> None:
    seen: list[datetime] = []

    def spy(zone: str, history, now: datetime, horizon_s: int) -> list[IntensityPoint]:  # type: ignore[no-untyped-def]
        assert all(p.end <= now for p in history)
        seen.append(now)
        # ever cleaner: waiting to the latest start always looks best
        return [IntensityPoint(zone, now + timedelta(hours=k), now + timedelta(hours=k + 1),
                               1000.0 - (now - T0).total_seconds() / 3600 - k, Kind.FORECAST, "spy")
                for k in range(horizon_s // 3600)]

    tr = {"Z": daily("Z", 4)}
    jobs = [sj(1, 30.5, 1, 50), sj(2, 40, 1, 60)]
    compare(jobs, {"a": Site("a", "Z")}, tr, forecaster=spy, replan_s=3600)
    assert seen[0] == T0 + timedelta(hours=30)  # the forecast issued at the hour
    # re-planned every hour while a job waits (job 1 until its latest start, 49 h)
    assert [int((t - T0).total_seconds()) // 3600 for t in seen] == list(range(30, 59))


def test_vintages_pick_the_latest_issue_and_fall_back_beyond_it(tmp_path: Path) -> None:
    f = tmp_path / "v.csv"
    rows = ["request_time,forecast_time,X"]
    for issue, val in ((0, 100.0), (1, 200.0)):
        for lead in range(3):
            rows.append(f"2023-01-01 0{issue}:00:00,2023-01-01 0{issue + lead}:00:00,{val}")
    f.write_text("\n".join(rows) + "\n")
    calls: list[datetime] = []

    def fallback(zone: str, history, now: datetime, horizon_s: int) -> list[IntensityPoint]:  # type: ignore[no-untyped-def]
        calls.append(now)
        return trace("Z", [999.0] * 10)

    fc = vintage_forecaster(f, "Z", fallback=fallback)
    pts = fc("Z", [], T0 + timedelta(minutes=90), 4 * 3600)
    assert [p.intensity_g_per_kwh for p in pts[:3]] == [200.0, 200.0, 200.0]
    assert pts[0].issued_at == T0 + timedelta(hours=1)
    assert calls and pts[3:] and all(p.intensity_g_per_kwh == 999.0 for p in pts[3:])
    with pytest.raises(BadInput):
        vintage_forecaster(tmp_path / "missing.csv", "Z")


def test_generated_workloads_are_reproducible_and_feasible() -> None:
    a = generate_workload(50, ["x", "y"], T0, T0 + timedelta(days=30), seed=5, interruptible_share=0.5)
    b = generate_workload(50, ["x", "y"], T0, T0 + timedelta(days=30), seed=5, interruptible_share=0.5)
    assert a == b and len(a) == 50
    assert all(j.deadline >= j.submit + timedelta(seconds=j.duration_s) for j in a)
    assert all(3600 <= j.duration_s <= 8 * 3600 for j in a)
    assert {j.site for j in a} == {"x", "y"}
    assert 0 < sum(j.interruptible for j in a) < 50
    assert all(x.submit <= y.submit for x, y in itertools.pairwise(a))
    with pytest.raises(BadInput):
        generate_workload(5, ["x"], T0, T0 + timedelta(hours=12))


def test_read_workload(tmp_path: Path) -> None:
    f = tmp_path / "w.csv"
    f.write_text("submit,duration,deadline,gpus,interruptible,site\n"
                 "2023-01-01T05:00:00Z,2h,12h,2,true,b\n2023-01-01T01:00:00Z,3600,,1,false,\n")
    jobs = read_workload(f, "a")
    assert [j.id for j in jobs] == [2, 1]
    assert jobs[1].deadline == T0 + timedelta(hours=17) and jobs[1].gpus == 2 and jobs[1].interruptible
    assert jobs[0].site == "a" and jobs[0].deadline == T0 + timedelta(hours=25)


def test_a_split_stop_mode_job_keeps_its_gpu_through_its_pause_in_simulate_too() -> None:
    # clean 00-02 and 04-06, dirty between: job 1 runs 00-02 and 04-06, frozen (SIGSTOP)
    # with its GPU memory between, as the planner and the queue hold it (scheduler.holds)
    tr = {"Z": trace("Z", [100, 100, 400, 400, 100, 100] + [400] * 30)}
    sites = {"a": Site("a", "Z", gpus=1)}
    jobs = [sj(1, 0, 4, 6, interruptible=True), sj(2, 1, 1, 4)]
    res = run_mode("carbon-aware", jobs, sites, {z: TraceIndex(p) for z, p in tr.items()},
                   perfect_forecaster_for(tr), options=PlanOptions(min_chunk_s=3600, slot_s=3600))
    one, two = res.outcomes[1], res.outcomes[2]
    assert [(a.hour, b.hour) for a, b in one.intervals] == [(0, 2), (4, 6)]
    # the GPU is not free in the gap: job 2 cannot run 02-04 and is refused, then runs after
    assert two.refused and two.intervals[0][0] >= T0 + timedelta(hours=6)


def perfect_forecaster_for(tr: dict[str, list[IntensityPoint]]) -> Forecaster:
    return perfect_forecaster({z: TraceIndex(p) for z, p in tr.items()})
