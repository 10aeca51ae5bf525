"""A sweep's ``%N`` cap in the planner: at most N trials of a sweep planned to run at once,
across sites, counting trials already running; every planned trial by its deadline; a
trial that cannot fit told the earliest finish that does; other jobs planned as before."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Job, JobState, Plan
from scheduler.planner import PlanOptions, plan
from tests.planner.helpers import T0, forecast, job, site

SLOT = 900
OPTS = PlanOptions(slot_s=SLOT, allow_overdue=False, min_chunk_s=SLOT)


def trial(jid: int, sweep: int | None, cap: int | None, d: int, e: int, latest: int, **kw: object) -> Job:
    kw.setdefault("site", "s0")
    return replace(job(jid, d, e, latest, **kw), sweep_id=sweep, sweep_limit=cap,  # type: ignore[arg-type]
                   array_index=jid if sweep is not None else None)


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The most of ``spans`` (half-open) covering one instant."""
    return max((sum(a <= t < b for a, b in spans) for t, _ in spans), default=0)


def running_spans(jobs: list[Job], now: datetime) -> dict[int, list[tuple[datetime, datetime]]]:
    out: dict[int, list[tuple[datetime, datetime]]] = {}
    for j in jobs:
        if j.state is JobState.RUNNING and j.sweep_id is not None and j.planned_start is not None:
            end = max(j.planned_start + timedelta(seconds=j.duration_s), now + timedelta(seconds=1))
            out.setdefault(j.sweep_id, []).append((now, end))
    return out


@st.composite
def sweeps(draw: st.DrawFn) -> tuple:
    n_sites = draw(st.integers(1, 2))
    fcs = {z: forecast(z, draw(st.lists(st.integers(10_000, 500_000), min_size=12, max_size=12)),
                       [SLOT] * 12) for z in ("Z1", "Z2")[:n_sites]}
    sites = {f"s{i}": site(f"s{i}", f"Z{i + 1}", gpus=draw(st.integers(1, 4))) for i in range(n_sites)}
    jobs: list[Job] = []
    jid = 0
    for sweep in range(1, draw(st.integers(1, 2)) + 1):
        cap = draw(st.integers(1, 3))
        window = SLOT * draw(st.integers(0, 8))
        relocate = draw(st.booleans())
        started = 0
        for _ in range(draw(st.integers(1, 6))):
            jid += 1
            d = SLOT * draw(st.integers(1, 3))
            e = SLOT * draw(st.integers(0, 2))
            j = trial(jid, sweep, cap, d, e, e + window, site=draw(st.sampled_from(sorted(sites))),
                      allowed=sorted(sites) if relocate else (), gpus=1,
                      interruptible=draw(st.booleans()))
            if started < cap and draw(st.integers(0, 5)) == 0:  # running, started before now
                started += 1
                j = replace(j, state=JobState.RUNNING, planned_start=T0 - timedelta(seconds=SLOT),
                            planned_site=j.site, interruptible=False)
            jobs.append(j)
    for _ in range(draw(st.integers(0, 3))):  # jobs outside any sweep share the sites
        jid += 1
        jobs.append(trial(jid, None, None, SLOT * draw(st.integers(1, 2)), 0, SLOT * 6,
                          site=draw(st.sampled_from(sorted(sites))), gpus=1))
    return fcs, sites, jobs


def check_caps(jobs: list[Job], result: Plan, sites: dict, fcs: dict) -> None:
    by_id = {j.id: j for j in jobs}
    spans = running_spans(jobs, T0)
    for jid, entry in result.entries.items():
        j = by_id[jid]
        assert entry.intervals[-1][1] <= j.deadline_at, (jid, entry.intervals, j.deadline_at)
        if j.sweep_id is not None:
            spans.setdefault(j.sweep_id, []).extend(entry.intervals)
    caps = {j.sweep_id: j.sweep_limit for j in jobs if j.sweep_id is not None}
    for sweep, sp in spans.items():
        assert most_at_once(sp) <= caps[sweep], (sweep, caps[sweep], sorted(sp))
    for jid, finish in result.earliest_finish.items():
        # the earliest finish that fits is past the deadline the trial asked for
        assert finish > by_id[jid].deadline_at


@settings(max_examples=150, deadline=None)
@given(sweeps())
def test_no_plan_runs_more_trials_of_a_sweep_at_once_than_its_cap(inst: tuple) -> None:
    fcs, sites, jobs = inst
    result = plan(jobs, fcs, sites, T0, OPTS)
    check_caps(jobs, result, sites, fcs)
    # trials running outside ``jobs`` (as the queue and simulate pass them) count the same
    running = [j for j in jobs if j.state is JobState.RUNNING]
    held = [(j.sweep_id, T0, max(j.planned_start + timedelta(seconds=j.duration_s),  # type: ignore[operator]
                                 T0 + timedelta(seconds=1))) for j in running]
    waiting = [j for j in jobs if j.state is not JobState.RUNNING]
    outside = plan(waiting, fcs, sites, T0, replace(OPTS, sweep_reserved=tuple(held), reserved=tuple(
        (j.site, T0, h[2], j.gpus, j.cpus) for j, h in zip(running, held, strict=True))))
    check_caps(jobs, outside, sites, fcs)


@settings(max_examples=100, deadline=None)
@given(sweeps())
def test_a_cap_that_cannot_bind_changes_nothing(inst: tuple) -> None:
    """Without a cap, or with one no smaller than the sweep, trials plan exactly as jobs
    outside any sweep: the rule touches nothing else."""
    fcs, sites, jobs = inst
    bare = plan([replace(j, sweep_id=None, sweep_limit=None) for j in jobs], fcs, sites, T0, OPTS)
    for cap in (None, len(jobs)):
        assert plan([replace(j, sweep_limit=cap if j.sweep_id else None) for j in jobs],
                    fcs, sites, T0, OPTS) == bare


def test_the_cap_spreads_a_sweep_and_counts_across_sites() -> None:
    # one clean slot on each of two sites with room for all: with %2 only two trials may
    # take the clean slots (across both sites), the rest wait
    fcs = {"Z1": forecast("Z1", [50_000, 400_000, 400_000, 400_000], [SLOT] * 4),
           "Z2": forecast("Z2", [60_000, 400_000, 400_000, 400_000], [SLOT] * 4)}
    sites = {"s0": site("s0", "Z1", gpus=8), "s1": site("s1", "Z2", gpus=8)}
    jobs = [trial(i, 7, 2, SLOT, 0, 3 * SLOT, allowed=["s0", "s1"], gpus=1) for i in range(1, 7)]
    result = plan(jobs, fcs, sites, T0, OPTS)
    assert len(result.entries) == 6
    starts = sorted(e.start for e in result.entries.values())
    assert starts == [T0 + timedelta(seconds=k * SLOT) for k in (0, 0, 1, 1, 2, 2)]
    # without the cap all six take the clean first slot
    free = plan([replace(j, sweep_limit=None) for j in jobs], fcs, sites, T0, OPTS)
    assert {e.start for e in free.entries.values()} == {T0}


def test_a_trial_that_cannot_fit_gets_the_earliest_finish_under_the_cap() -> None:
    fcs = {"Z1": forecast("Z1", [100_000] * 8, [SLOT] * 8)}
    sites = {"s0": site("s0", "Z1", gpus=8)}
    # %1, three one-slot trials that must all finish within two slots, one already running
    running = replace(trial(1, 3, 1, SLOT, 0, SLOT, gpus=1), state=JobState.RUNNING,
                      planned_start=T0, planned_site="s0")
    jobs = [running, *(trial(i, 3, 1, SLOT, 0, SLOT, gpus=1) for i in (2, 3))]
    result = plan(jobs, fcs, sites, T0, OPTS)
    assert [e.start for e in result.entries.values()] == [T0 + timedelta(seconds=SLOT)]
    (late,) = result.unplanned
    assert result.earliest_finish[late] == T0 + timedelta(seconds=3 * SLOT)
    # submitted again with that as its deadline, it fits
    again = [j if j.id != late else replace(j, latest_start=T0 + timedelta(seconds=2 * SLOT),
                                            deadline_at=T0 + timedelta(seconds=3 * SLOT))
             for j in jobs]
    assert plan(again, fcs, sites, T0, OPTS).entries[late].intervals[-1][1] == T0 + timedelta(seconds=3 * SLOT)


def test_a_split_trial_counts_only_while_it_runs() -> None:
    # %1: an interruptible trial split around a dirty slot leaves that slot to its sibling
    fcs = {"Z1": forecast("Z1", [50_000, 500_000, 50_000, 500_000], [SLOT] * 4)}
    sites = {"s0": site("s0", "Z1", gpus=4)}
    split = trial(1, 5, 1, 2 * SLOT, 0, 2 * SLOT, gpus=1, interruptible=True, priority=1)
    other = trial(2, 5, 1, SLOT, 0, 3 * SLOT, gpus=1)
    result = plan([split, other], fcs, sites, T0, OPTS)
    assert result.entries[1].intervals == (
        (T0, T0 + timedelta(seconds=SLOT)), (T0 + timedelta(seconds=2 * SLOT), T0 + timedelta(seconds=3 * SLOT)))
    assert result.entries[2].intervals == ((T0 + timedelta(seconds=SLOT), T0 + timedelta(seconds=2 * SLOT)),)
