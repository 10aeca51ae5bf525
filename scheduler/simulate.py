"""Simulation: what would carbon-aware scheduling have saved on a real intensity history?

A simulated clock walks through a workload (generated, or read from a cluster log). At
every submission time the queue is re-planned with :func:`scheduler.planner.plan`, the
same code path the daemon uses, on the forecast a scheduler would have had *at that
moment*; jobs whose planned start has come are committed (they start, and hold their
site's capacity for their run intervals). Afterwards every job is charged the *actual*
intensity of the zone it ran in:

    emissions_g = power_w x PUE x integral of actual intensity over its run intervals
                  (+ transfer energy x the home zone's actual intensity at its start)

Three policies run over the same workload:

* ``run-now``: every job starts as soon as capacity allows on its home site;
* ``carbon-aware``: the planner fed the chosen forecaster (``local``: the local
  forecaster trained only on data before each decision; ``seven-day-mean``: the mean of
  the same hour over the last seven days; ``perfect``: the trace itself);
* ``oracle``: the planner fed the actual future (perfect knowledge).

Sweeps: jobs of a workload may be trials of one sweep (``SimJob.sweep_id``, with the
sweep's ``%N`` cap as ``sweep_limit``), planned together under the cap by the same planner
as the daemon's. To price planning them together, :func:`as_independent` makes the same
trials separate jobs without a cap, and ``run_mode(..., one_at_a_time=True)`` plans each
arrival in its own :func:`plan` call, in submission order, seeing only the jobs already
accepted (as separate submissions would be).

Nothing here reads the clock, the environment or a database: traces and the workload are
passed in, so a simulation is reproducible from its seed.
"""

from __future__ import annotations

import csv
import functools
import itertools
import math
import os
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from intensity.model import Forecast, IntensityPoint, Kind, Source
from intensity.series import Series as Profile
from scheduler.domain.acceptance import finish_of, finishes_late, refused_with, resubmitted
from scheduler.domain.holds import Hold, holds, sweep_holds
from scheduler.domain.model import (
    MAX_CPUS,
    MAX_GPUS,
    Job,
    JobState,
    Site,
    check_count,
    check_power_w,
)
from scheduler.errors import BadInput
from scheduler.planning import PlanOptions, expected_grams, plan

#: ``(zone, history, now, horizon_s) -> forecast points`` (the local forecaster's signature)
Forecaster = Callable[[str, Sequence[IntensityPoint], datetime, int], list[IntensityPoint]]

MODES = ("run-now", "carbon-aware", "oracle")
#: with sweeps: the carbon-aware planner on the same trials submitted as separate jobs, no
#: cap, each planned on its own at its submission (:func:`as_independent`, ``one_at_a_time``)
INDEPENDENT = "independent"
#: The seven-day-profile planner :func:`compare` also runs: the gap closed is measured from it.
PROFILE_MODE = "seven-day-mean"
#: the most jobs one simulation replays (generated or read from a workload file)
MAX_SIM_JOBS = 1_000_000
HISTORY_S = 190 * 86400  # what the local forecaster looks at (its fit window plus margin)


@dataclass(frozen=True)
class SimJob:
    """One job of a workload: when it arrives, how long it runs, when it is due."""

    id: int
    submit: datetime
    duration_s: int
    deadline: datetime
    site: str
    gpus: int = 1
    cpus: int = 0
    power_w: float = 300.0
    interruptible: bool = False
    allowed_sites: tuple[str, ...] = ()
    priority: int = 0
    #: a trial of a sweep: the sweep's number, and its cap on trials running at once
    sweep_id: int | None = None
    sweep_limit: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one job under one policy."""

    job_id: int
    site: str
    home_zone: str
    intervals: tuple[tuple[datetime, datetime], ...]
    emissions_g: float
    delay_s: float
    missed: bool
    #: refused at submission (no capacity before its deadline) and submitted again with
    #: the earliest finish that fits as its deadline, as the refusal tells the user to
    refused: bool = False
    #: the earliest finish that fits, as the refusal named it (``None`` when not refused)
    refused_with: datetime | None = None


@dataclass
class ModeResult:
    """One policy's outcomes over the workload."""

    mode: str
    outcomes: dict[int, Outcome] = field(default_factory=dict)

    def total_g(self, zone: str | None = None) -> float:
        return math.fsum(o.emissions_g for o in self._of(zone))

    def misses(self, zone: str | None = None) -> int:
        return sum(o.missed for o in self._of(zone))

    def refusals(self, zone: str | None = None) -> int:
        return sum(o.refused for o in self._of(zone))

    def mean_delay_s(self, zone: str | None = None) -> float:
        outs = self._of(zone)
        return math.fsum(o.delay_s for o in outs) / len(outs) if outs else 0.0

    def _of(self, zone: str | None) -> list[Outcome]:
        return [o for o in self.outcomes.values() if zone is None or o.home_zone == zone]


@dataclass
class Comparison:
    """Run-now, carbon-aware and oracle over the same workload (and, when run, the
    seven-day-profile planner, ``seven-day-mean``, that the gap closed is measured from).

    Shares of the oracle's savings are in grams: over several zones (``summary()``,
    :meth:`kg_weighted_share_of_oracle`) they are grams saved over grams the oracle saves,
    so a zone whose oracle saves little weighs little.
    """

    results: dict[str, ModeResult]
    zones: list[str]
    sites: list[str]
    forecast: str
    jobs: int

    def summary(self, zone: str | None = None) -> dict[str, float | int | None]:
        """``run_now_g, carbon_aware_g, oracle_g``, savings, ``deadline_misses``, delays,
        and with the profile planner run ``profile_g`` and ``gap_closed``."""
        now_g = self.results["run-now"].total_g(zone)
        ca = self.results["carbon-aware"]
        or_ = self.results["oracle"]
        ca_g, or_g = ca.total_g(zone), or_.total_g(zone)
        save = _pct(now_g - ca_g, now_g)
        save_or = _pct(now_g - or_g, now_g)
        out: dict[str, float | int | None] = {
            "jobs": len(ca._of(zone)),
            "run_now_g": now_g,
            "carbon_aware_g": ca_g,
            "oracle_g": or_g,
            "saved_g": now_g - ca_g,
            "oracle_saved_g": now_g - or_g,
            "savings_pct": save,
            "oracle_savings_pct": save_or,
            "share_of_oracle": (save / save_or) if save is not None and save_or else None,
            "deadline_misses": ca.misses(zone),
            "oracle_deadline_misses": or_.misses(zone),
            "run_now_deadline_misses": self.results["run-now"].misses(zone),
            "refused": ca.refusals(zone),
            "oracle_refused": or_.refusals(zone),
            "run_now_refused": self.results["run-now"].refusals(zone),
            "mean_delay_s": ca.mean_delay_s(zone),
            "oracle_mean_delay_s": or_.mean_delay_s(zone),
            **self.independent(zone),
        }
        prof = self.results.get(PROFILE_MODE)
        if prof is not None:
            prof_g = prof.total_g(zone)
            out["profile_g"] = prof_g
            out["profile_savings_pct"] = _pct(now_g - prof_g, now_g)
            out["gap_closed"] = gap_closed(now_g - ca_g, now_g - prof_g, now_g - or_g)
        return out

    def independent(self, zone: str | None = None) -> dict[str, float | int | None]:
        """With sweeps in the workload: the carbon-aware grams and misses of the same trials
        as independent jobs (``INDEPENDENT``), and what planning them together saves."""
        ind = self.results.get(INDEPENDENT)
        if ind is None:
            return {}
        ind_g, ca_g = ind.total_g(zone), self.results["carbon-aware"].total_g(zone)
        return {
            "independent_g": ind_g,
            "independent_savings_pct": _pct(self.results["run-now"].total_g(zone) - ind_g,
                                            self.results["run-now"].total_g(zone)),
            "together_vs_independent_g": ind_g - ca_g,
            "independent_deadline_misses": ind.misses(zone),
            "independent_refused": ind.refusals(zone),
        }

    def kg_weighted_share_of_oracle(self) -> float | None:
        """Grams saved over grams the oracle saves, summed over the zones."""
        return weighted_share_of_oracle(
            (float(s["saved_g"] or 0.0), float(s["oracle_saved_g"] or 0.0))
            for s in (self.summary(z) for z in self.zones)
        )

    def per_site(self) -> dict[str, dict[str, float | int]]:
        """Where the carbon-aware jobs ran: job count and grams per site."""
        out: dict[str, dict[str, float | int]] = {
            s: {"jobs": 0, "carbon_aware_g": 0.0} for s in self.sites
        }
        for o in self.results["carbon-aware"].outcomes.values():
            row = out.setdefault(o.site, {"jobs": 0, "carbon_aware_g": 0.0})
            row["jobs"] += 1
            row["carbon_aware_g"] += o.emissions_g
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "forecast": self.forecast,
            "jobs": self.jobs,
            "overall": self.summary(),
            "kg_weighted_share_of_oracle": self.kg_weighted_share_of_oracle(),
            "zones": {z: self.summary(z) for z in self.zones},
            "sites": self.per_site(),
            # where and when each job ran under the carbon-aware policy
            "carbon_aware_jobs": [
                {"id": o.job_id, "site": o.site, "intervals": [[a, b] for a, b in o.intervals]}
                for o in sorted(self.results["carbon-aware"].outcomes.values(), key=lambda o: o.job_id)
            ],
        }


def _pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole > 0 else None


def weighted_share_of_oracle(rows: Iterable[tuple[float, float]]) -> float | None:
    """The kg-weighted share of the oracle's savings over ``(saved_g, oracle_saved_g)``
    rows (zones, runs): grams saved over grams the oracle saves, so a zone whose oracle
    saves little weighs little; ``None`` when the oracle saves nothing."""
    pairs = list(rows)
    oracle = math.fsum(o for _, o in pairs)
    return math.fsum(s for s, _ in pairs) / oracle if oracle > 0 else None


def gap_closed(saved_g: float, profile_saved_g: float, oracle_saved_g: float) -> float | None:
    """The share of the gap between the seven-day-profile planner and the oracle that a
    planner closes: ``(saved - profile_saved) / (oracle_saved - profile_saved)`` (negative
    when it does worse than the profile; ``None`` when the profile already matches the
    oracle)."""
    gap = oracle_saved_g - profile_saved_g
    return (saved_g - profile_saved_g) / gap if gap > 0 else None


# -- forecasters ---------------------------------------------------------------------------
class TraceIndex:
    """A zone's actual series with a start-time index, for slicing history and future."""

    def __init__(self, points: Sequence[IntensityPoint]) -> None:
        self.points = tuple(sorted(points, key=lambda p: p.start))
        self.starts = [p.start.timestamp() for p in self.points]
        self.profile = Profile(Forecast(self.points[0].zone, self.points)) if self.points else None
        self.by_start = {p.start.timestamp(): p.intensity_g_per_kwh for p in self.points}
        if len(self.points) >= 2:
            steps = sorted(
                (b.start - a.start).total_seconds() for a, b in zip(self.points, self.points[1:], strict=False)
            )
            self.resolution_s = int(steps[len(steps) // 2])
        else:
            self.resolution_s = 3600

    def history(self, now: datetime, span_s: int = HISTORY_S) -> list[IntensityPoint]:
        """Points that ended by ``now``, at most ``span_s`` back."""
        hi = bisect_right(self.starts, now.timestamp())
        lo = bisect_left(self.starts, now.timestamp() - span_s)
        return [p for p in self.points[lo:hi] if p.end <= now]

    def future(self, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        """Actual points overlapping ``[now, now + horizon_s)``."""
        lo = max(0, bisect_right(self.starts, now.timestamp()) - 1)
        hi = bisect_left(self.starts, now.timestamp() + horizon_s)
        return [p for p in self.points[lo:hi] if p.end > now]


def perfect_forecaster(traces: Mapping[str, TraceIndex]) -> Forecaster:
    """The trace itself as the forecast (the oracle's knowledge)."""

    def forecast(zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int) -> list[IntensityPoint]:
        return [
            replace(p, kind=Kind.FORECAST, provider="perfect", issued_at=now)
            for p in traces[zone].future(now, horizon_s)
        ]

    return forecast


def seven_day_mean_forecast(
    zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int
) -> list[IntensityPoint]:
    """Each future step is the mean of the same time of day over the last seven days."""
    if not history:
        return []
    values = {p.start.timestamp(): p.intensity_g_per_kwh for p in history}
    step = int((history[-1].end - history[-1].start).total_seconds()) or 3600
    t = math.floor(now.timestamp() / step) * step
    end = now.timestamp() + horizon_s
    last = history[-1].end.timestamp()
    out: list[IntensityPoint] = []
    while t < end:
        same = [values[x] for x in (t - k * 86400 for k in range(1, 15)) if x < last and x in values][:7]
        if same:
            start = datetime.fromtimestamp(t, tz=UTC)
            out.append(IntensityPoint(
                zone, start, start + timedelta(seconds=step), sum(same) / len(same),
                Kind.FORECAST, "seven-day-mean", issued_at=now, source=Source.LOCAL,
            ))
        t += step
    return out


def local_forecaster(fit_dir: str | os.PathLike[str] | None = None) -> Forecaster:
    """The package's local forecaster, as the scheduler plans on it
    (:func:`intensity.forecast.planning_forecast`).

    Its weights are refitted once per block, as in the daemon: every decision of a run
    inside the same block reuses the same fit (kept in this process), and with
    ``fit_dir`` (the app's :attr:`~scheduler.config.Settings.forecast_fits_dir`) later
    runs and the daemon reuse what this run fitted on the same data.
    """
    try:
        from intensity.forecast import planning_forecast
    except ImportError as exc:  # pragma: no cover - the forecaster ships with the package
        raise BadInput(f"the local forecaster is not available: {exc}") from None
    if fit_dir is None:
        return planning_forecast
    return functools.partial(planning_forecast, fit_dir=fit_dir)


class Vintages:
    """Recorded forecasts as issued: for each issue time, the points it predicted.

    Reads a long CSV with an issue-time column (``capture_from_utc`` or ``request_time``),
    a target-time column (``window_from_utc`` or ``forecast_time``) and one value column
    (gCO2/kWh); zone-less times are UTC (both shipped files are).
    """

    ISSUE = ("capture_from_utc", "request_time", "issued_at")
    TARGET = ("window_from_utc", "forecast_time", "time")

    def __init__(self, path: str | Path, zone: str) -> None:
        from intensity.timeparse import parse_trace_time

        p = Path(path)
        try:
            with p.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                header = reader.fieldnames or []
                rows = list(reader)
        except OSError as exc:
            raise BadInput(f"vintage file {str(p)!r} cannot be read: {exc.strerror}") from None
        issue = next((c for c in self.ISSUE if c in header), None)
        target = next((c for c in self.TARGET if c in header), None)
        values = [c for c in header if c not in (issue, target, "lead_minutes")]
        if issue is None or target is None or len(values) != 1:
            raise BadInput(
                f"vintage file {str(p)!r} has columns {header!r}: it needs an issue time "
                f"({'/'.join(self.ISSUE)}), a target time ({'/'.join(self.TARGET)}) and one value"
            )
        by_issue: dict[float, list[tuple[float, float]]] = {}
        try:
            for row in rows:
                t_issue = parse_trace_time(row[issue], naive_is_utc=True).timestamp()
                t_target = parse_trace_time(row[target], naive_is_utc=True).timestamp()
                by_issue.setdefault(t_issue, []).append((t_target, float(row[values[0]])))
        except ValueError as exc:
            raise BadInput(f"vintage file {str(p)!r}: {exc}") from None
        self.zone = zone
        self.issues = sorted(by_issue)
        self.series = {k: sorted(v) for k, v in by_issue.items()}
        steps = [b[0] - a[0] for v in self.series.values() for a, b in itertools.pairwise(v)]
        self.resolution_s = int(sorted(steps)[len(steps) // 2]) if steps else 3600

    def at(self, now: datetime) -> list[IntensityPoint]:
        """The latest vintage issued at or before ``now`` (empty if none)."""
        i = bisect_right(self.issues, now.timestamp()) - 1
        if i < 0:
            return []
        issued = self.issues[i]
        out = []
        for t, v in self.series[issued]:
            start = datetime.fromtimestamp(t, tz=UTC)
            end = start + timedelta(seconds=self.resolution_s)
            if end > now:
                out.append(IntensityPoint(
                    self.zone, start, end, max(0.0, v), Kind.FORECAST, "vintage",
                    issued_at=datetime.fromtimestamp(issued, tz=UTC),
                ))
        return out


def vintage_forecaster(path: str | Path, zone: str, fallback: Forecaster | None = None) -> Forecaster:
    """Recorded forecasts for ``zone``; past their horizon, or before the first vintage,
    the ``fallback`` (default: the local forecaster) fills in."""
    vint = Vintages(path, zone)
    fb = fallback

    def forecast(z: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int) -> list[IntensityPoint]:
        nonlocal fb
        pts = vint.at(now) if z == zone else []
        end = now + timedelta(seconds=horizon_s)
        if pts and pts[-1].end >= end:
            return pts
        if fb is None:
            fb = local_forecaster()
        extra = fb(z, history, now, horizon_s)
        cut = pts[-1].end if pts else now
        return pts + [p for p in extra if p.start >= cut]

    return forecast


# -- workloads -----------------------------------------------------------------------------
def generate_workload(
    n: int,
    sites: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    seed: int = 0,
    duration_s: tuple[int, int] = (3600, 8 * 3600),
    step_s: int = 900,
    deadline_s: int = 24 * 3600,
    gpus: int = 1,
    power_w: float = 300.0,
    interruptible_share: float = 0.0,
    relocatable: bool = False,
) -> list[SimJob]:
    """``n`` jobs submitted uniformly in ``[start, end - deadline)``, durations uniform on a
    ``step_s`` grid, each due ``deadline_s`` after submission (never before it could end)."""
    rng = random.Random(seed)
    lo, hi = duration_s
    if lo <= 0 or hi < lo:
        raise BadInput(f"durations {lo}-{hi} s are not a valid range")
    span = (end - start).total_seconds() - max(deadline_s, hi)
    if span <= 0:
        raise BadInput("the trace is shorter than one deadline: give a longer trace or a shorter --deadline")
    durations = list(range(lo, hi + 1, step_s)) or [lo]
    jobs = []
    for i in range(n):
        submit = start + timedelta(seconds=int(rng.random() * span) // 60 * 60)
        d = rng.choice(durations)
        home = rng.choice(list(sites))
        jobs.append(SimJob(
            id=i + 1, submit=submit, duration_s=d,
            deadline=submit + timedelta(seconds=max(deadline_s, d)), site=home, gpus=gpus,
            power_w=power_w, interruptible=rng.random() < interruptible_share,
            allowed_sites=tuple(sites) if relocatable else (),
        ))
    return sorted(jobs, key=lambda j: (j.submit, j.id))


def read_workload(path: str | Path, default_site: str) -> list[SimJob]:
    """Jobs from a CSV cluster log: ``submit`` (ISO time with zone), ``duration`` (seconds or
    3h/90m), ``deadline`` (ISO time, or a duration after submit), optional ``gpus``,
    ``cpus``, ``interruptible`` (true/false), ``site``, ``power_w``, ``priority``.

    Sweeps, optional: ``sweep`` names the sweep a row's trial belongs to (rows with the same
    name are one sweep), ``max_concurrent`` its ``%N`` cap (a whole number >= 1, the same on
    every row of the sweep that gives one; blank: no cap), and ``array`` makes the row that
    many trials (one sweep by itself unless ``sweep`` names one)."""
    from scheduler.text.times import parse_duration_s, parse_time, parse_when

    p = Path(path)
    try:
        with p.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(itertools.islice(csv.DictReader(fh), MAX_SIM_JOBS + 1))
    except OSError as exc:
        raise BadInput(f"workload file {str(p)!r} cannot be read: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"workload file {str(p)!r} is not a UTF-8 CSV ({exc}): give a CSV of jobs with "
                       "the columns submit, duration, deadline") from None
    if len(rows) > MAX_SIM_JOBS:
        raise BadInput(f"workload file {str(p)!r} has more than {MAX_SIM_JOBS:,} jobs: give fewer")
    jobs: list[SimJob] = []
    sweeps: dict[str, int] = {}  # sweep name -> its number
    caps: dict[int, int | None] = {}
    for n, row in enumerate(rows, start=2):
        try:
            if None in row or None in row.values():
                raise BadInput("the row does not have one value per column")
            count = _whole(row.get("array"), "array", 1)
            name = (row.get("sweep") or "").strip() or (f"line {n}" if count else "")
            cap = _whole(row.get("max_concurrent"), "max_concurrent", 1)
            if cap is not None and not name:
                raise BadInput(f"max_concurrent {cap} needs a sweep: give the row a sweep name or an array count")
            sweep_id = sweeps.setdefault(name, len(sweeps) + 1) if name else None
            if sweep_id is not None and cap is not None and caps.setdefault(sweep_id, cap) != cap:
                raise BadInput(f"max_concurrent {cap} differs from {caps[sweep_id]} given before "
                               f"for sweep {name!r}: give one cap per sweep")
            submit = parse_time(row["submit"], what="submit")
            dur = row["duration"].strip()
            d = parse_duration_s(dur + "s" if dur.isdigit() else dur)
            dl = (row.get("deadline") or "").strip()
            if not dl:
                deadline = submit + timedelta(seconds=max(24 * 3600, d))
            else:  # an ISO time, or a duration after the submission (the CLI's --deadline)
                deadline = parse_when(dl, submit, what="deadline")
            one = SimJob(
                id=len(jobs) + 1, submit=submit, duration_s=d, deadline=deadline,
                site=(row.get("site") or "").strip() or default_site,
                gpus=check_count(int(row.get("gpus") or 1), "gpus", MAX_GPUS),
                cpus=check_count(int(row.get("cpus") or 0), "cpus", MAX_CPUS),
                power_w=check_power_w(float(row.get("power_w") or 300.0), "power_w"),
                interruptible=(row.get("interruptible") or "").strip().lower() in ("1", "true", "yes"),
                priority=int(row.get("priority") or 0), sweep_id=sweep_id,
            )
            if len(jobs) + (count or 1) > MAX_SIM_JOBS:
                raise BadInput(f"array {count} takes the workload past {MAX_SIM_JOBS:,} jobs: give fewer")
            jobs += [replace(one, id=one.id + k) for k in range(count or 1)]
        except (KeyError, ValueError, BadInput) as exc:
            raise BadInput(f"workload file {str(p)!r} line {n}: {exc}") from None
    if not jobs:
        raise BadInput(f"workload file {str(p)!r} has no jobs")
    jobs = [replace(j, sweep_limit=caps.get(j.sweep_id)) if j.sweep_id is not None else j for j in jobs]
    return sorted(jobs, key=lambda j: (j.submit, j.id))


def _whole(text: str | None, what: str, least: int) -> int | None:
    """An optional whole-number column (blank: ``None``), at least ``least``."""
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < least:
        raise BadInput(f"{what} {text!r} is not a whole number >= {least}: give one like {least + 3}")
    return int(text)


def as_independent(workload: Sequence[SimJob]) -> list[SimJob]:
    """The same jobs with no sweep: every trial a separate job, with no cap."""
    return [replace(j, sweep_id=None, sweep_limit=None) for j in workload]


# -- the engine ----------------------------------------------------------------------------
def _job(sj: SimJob, run_now: bool) -> Job:
    return Job(
        name=f"sim-{sj.id}", argv=["sim"], duration_s=sj.duration_s, zone="", submitted_at=sj.submit,
        earliest_start=sj.submit, latest_start=sj.deadline - timedelta(seconds=sj.duration_s),
        deadline_at=sj.deadline, id=sj.id, power_w=sj.power_w, gpus=sj.gpus, cpus=sj.cpus,
        site=sj.site, allowed_sites=list(sj.allowed_sites), run_now=run_now,
        interruptible=sj.interruptible and not run_now, priority=sj.priority,
        sweep_id=sj.sweep_id, sweep_limit=sj.sweep_limit,
    )


def started_holds(job: Job, site: str, intervals: Sequence[tuple[datetime, datetime]]) -> list[Hold]:
    """What ``job``, started on ``site`` in ``intervals``, holds from its start on: exactly
    what :func:`scheduler.holds.holds` says the live queue holds for a job running there
    (no copy of the rule here); the planner clips each hold to its ``now``."""
    running = replace(job, state=JobState.RUNNING, planned_site=site, planned_start=intervals[0][0])
    return holds(running, intervals, intervals[0][0])


def run_mode(
    mode: str,
    workload: Sequence[SimJob],
    sites: Mapping[str, Site],
    traces: Mapping[str, TraceIndex],
    forecaster: Forecaster,
    *,
    options: PlanOptions | None = None,
    horizon_s: int = 48 * 3600,
    refresh_s: int = 3600,
    replan_s: int = 0,
    one_at_a_time: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ModeResult:
    """Replay ``workload`` under one policy with a simulated clock (see the module doc).

    The queue is re-planned at every submission and, while jobs wait, every ``replan_s``
    (the daemon's re-plan interval; 0: only at submissions), each time on the forecast
    issued at the last ``refresh_s`` boundary. Jobs submitted at the same time are planned
    together, unless ``one_at_a_time``: then each in its own re-plan, in submission order.
    ``progress(done, total)`` is called as the decision points pass.
    """
    options = options or PlanOptions()
    run_now = mode == "run-now"
    oracle = mode == "oracle"
    by_time: dict[datetime, list[SimJob]] = {}
    for sj in workload:
        by_time.setdefault(sj.submit, []).append(sj)
    waiting: dict[int, Job] = {}
    placed: dict[int, tuple[str, tuple[tuple[datetime, datetime], ...]]] = {}
    started: dict[int, tuple[str, tuple[tuple[datetime, datetime], ...]]] = {}
    reserved: list[tuple[str, datetime, datetime, int, int]] = []
    sweep_reserved: list[tuple[int, datetime, datetime]] = []
    accepted: set[int] = set()
    deadlines: dict[int, datetime] = {}  # the deadline each job was accepted with
    fc_memo: dict[tuple[str, float], Forecast] = {}

    def forecast_for(zone: str, now: datetime, need_s: int) -> Forecast:
        if oracle or run_now:
            pts = traces[zone].future(now, max(need_s, 3600))
            return Forecast(zone, tuple(pts))
        issued = datetime.fromtimestamp(math.floor(now.timestamp() / refresh_s) * refresh_s, tz=UTC)
        key = (zone, issued.timestamp())
        fc = fc_memo.get(key)
        if fc is None:
            pts = forecaster(zone, traces[zone].history(issued), issued, horizon_s + refresh_s)
            fc = fc_memo[key] = Forecast(zone, tuple(_non_overlapping(pts)))
            if len(fc_memo) > 64:
                fc_memo.pop(next(iter(fc_memo)))
        return fc

    epochs = sorted(by_time)
    if replan_s > 0 and not run_now:
        epochs = _with_replans(epochs, workload, replan_s)

    def replan(now: datetime) -> None:
        if not waiting:
            return
        jobs = list(waiting.values())
        zones = {sites[s].zone for j in jobs for s in [j.site, *j.allowed_sites] if s in sites}
        need = max(int((j.deadline_at - now).total_seconds()) for j in jobs if j.deadline_at)
        forecasts = {z: forecast_for(z, now, need) for z in zones}
        opts = replace(
            options, reserved=tuple(reserved), committed=frozenset(accepted),
            current={jid: (s, iv[0][0]) for jid, (s, iv) in placed.items()},
            sweep_reserved=tuple(sweep_reserved),
        )
        result = plan(jobs, forecasts, sites, now, opts)
        for j in jobs:
            assert j.id is not None
            entry = result.entries.get(j.id)
            if entry is None:  # no site can ever hold it: it would be refused at submit
                waiting.pop(j.id)
                continue
            fits = None if j.id in accepted else refused_with(j, finish_of(entry.intervals))
            if fits is not None:
                # the queue refuses this submit with the earliest finish that fits
                # (scheduler.domain.acceptance, the one rule); the user submits again
                # with that as the deadline
                deadlines[j.id] = fits
                waiting[j.id] = resubmitted(j, fits)
            placed[j.id] = (entry.site, entry.intervals)
            accepted.add(j.id)

    n_epochs = len(epochs)
    for i_epoch, now in enumerate(epochs):
        if progress is not None:
            progress(i_epoch, n_epochs)
        # commit jobs whose planned start has come
        for jid in [j for j, (_, iv) in placed.items() if iv[0][0] <= now]:
            site, iv = placed.pop(jid)
            job = waiting.pop(jid)
            started[jid] = (site, iv)
            # what the live queue holds for it the moment it starts (scheduler.holds, the one
            # rule: a stop-mode job keeps its GPUs through its pauses), kept until it ends
            reserved.extend(started_holds(job, site, iv))
            sweep_reserved.extend(sweep_holds(job, iv, now))
        reserved = [r for r in reserved if r[2] > now]
        sweep_reserved = [r for r in sweep_reserved if r[2] > now]
        arrivals = by_time.get(now, ())
        if one_at_a_time and arrivals:
            for sj in arrivals:
                waiting[sj.id] = _job(sj, run_now)
                replan(now)
            continue
        for sj in arrivals:
            waiting[sj.id] = _job(sj, run_now)
        replan(now)
    for jid, (site, iv) in placed.items():
        started[jid] = (site, iv)
    return _account(mode, workload, started, sites, traces, deadlines)


def _with_replans(epochs: list[datetime], workload: Sequence[SimJob], replan_s: int) -> list[datetime]:
    """Submission times plus every ``replan_s`` boundary while some job may still wait."""
    out = set(epochs)
    spans = sorted((j.submit.timestamp(), (j.deadline - timedelta(seconds=j.duration_s)).timestamp())
                   for j in workload)
    t_end = -math.inf
    cur = -math.inf
    for a, b in spans:
        if b <= a:
            continue
        t = max(cur, math.floor(a / replan_s) * replan_s + replan_s)
        t_end = max(t_end, b)
        while t <= min(b, t_end):
            out.add(datetime.fromtimestamp(t, tz=UTC))
            t += replan_s
        cur = max(cur, t)
    return sorted(out)


def _non_overlapping(points: Sequence[IntensityPoint]) -> list[IntensityPoint]:
    out: list[IntensityPoint] = []
    for p in sorted(points, key=lambda p: p.start):
        if out and p.start < out[-1].end:
            continue
        out.append(p)
    return out


def _account(
    mode: str,
    workload: Sequence[SimJob],
    started: Mapping[int, tuple[str, tuple[tuple[datetime, datetime], ...]]],
    sites: Mapping[str, Site],
    traces: Mapping[str, TraceIndex],
    refused: Mapping[int, datetime] | None = None,
) -> ModeResult:
    res = ModeResult(mode)
    refused = refused or {}
    for sj in workload:
        if sj.id not in started:
            continue
        site_name, iv = started[sj.id]
        site = sites[site_name]
        home = sites[sj.site]
        prof = traces[site.zone].profile
        assert prof is not None
        cost = sum(prof.cost(int(a.timestamp()), int((b - a).total_seconds())) for a, b in iv)
        grams = expected_grams(cost, sj.power_w, site.pue)
        if site_name != sj.site and site.transfer_energy_j > 0:
            hp = traces[home.zone].profile
            assert hp is not None
            t = int(iv[0][0].timestamp())
            grams += site.transfer_energy_j / 3.6e6 * hp.cost(t, 1) / 1000
        end = iv[-1][1]
        res.outcomes[sj.id] = Outcome(
            job_id=sj.id, site=site_name, home_zone=home.zone, intervals=iv, emissions_g=grams,
            delay_s=(iv[0][0] - sj.submit).total_seconds(),
            missed=finishes_late(end, refused.get(sj.id, sj.deadline)),
            refused=sj.id in refused,
            refused_with=refused.get(sj.id),
        )
    return res


def compare(
    workload: Sequence[SimJob],
    sites: Mapping[str, Site],
    traces: Mapping[str, Sequence[IntensityPoint]] | Mapping[str, TraceIndex],
    *,
    forecast: str = "local",
    forecaster: Forecaster | None = None,
    options: PlanOptions | None = None,
    horizon_s: int = 48 * 3600,
    replan_s: int = 0,
    progress: Callable[[float, float, str], None] | None = None,
    profile: bool = True,
) -> Comparison:
    """Run-now, carbon-aware (with ``forecast``) and oracle over ``workload``, and with
    ``profile`` the same planner on the seven-day profile (:data:`PROFILE_MODE`);
    ``progress(done, total, mode)`` as the replays go (``total`` is their number: 3, one
    more with ``profile``, one more with sweeps, whose trials are also replayed as
    independent jobs)."""
    idx = {z: t if isinstance(t, TraceIndex) else TraceIndex(t) for z, t in traces.items()}
    for s in sites.values():
        if s.zone not in idx:
            raise BadInput(f"site {s.name!r} is in zone {s.zone!r}, which no trace covers")
    perfect = perfect_forecaster(idx)
    if forecaster is None:
        forecaster = {
            "perfect": perfect,
            "seven-day-mean": seven_day_mean_forecast,
        }.get(forecast) or local_forecaster()
    sweeps = any(j.sweep_id is not None for j in workload)
    own_profile = profile and forecaster is not seven_day_mean_forecast
    n_runs = 3 + int(sweeps) + int(own_profile)

    def step(i: int, mode: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        report = progress
        return lambda done, total: report(i + done / max(total, 1), n_runs, mode)

    results = {
        "run-now": run_mode("run-now", workload, sites, idx, perfect, options=options,
                            progress=step(0, "run-now")),
        "carbon-aware": run_mode("carbon-aware", workload, sites, idx, forecaster, options=options,
                                 horizon_s=horizon_s, replan_s=replan_s, progress=step(1, "carbon-aware")),
        "oracle": run_mode("oracle", workload, sites, idx, perfect, options=options,
                           progress=step(2, "oracle")),
    }
    if sweeps:
        results[INDEPENDENT] = run_mode(
            "carbon-aware", as_independent(workload), sites, idx, forecaster, options=options,
            horizon_s=horizon_s, replan_s=replan_s, one_at_a_time=True, progress=step(3, INDEPENDENT))
        results[INDEPENDENT].mode = INDEPENDENT
    if profile:
        results[PROFILE_MODE] = (
            run_mode(PROFILE_MODE, workload, sites, idx, seven_day_mean_forecast, options=options,
                     horizon_s=horizon_s, replan_s=replan_s, progress=step(n_runs - 1, PROFILE_MODE))
            if own_profile else results["carbon-aware"])
    if progress is not None:
        progress(n_runs, n_runs, "done")
    zones = sorted({sites[j.site].zone for j in workload})
    return Comparison(results, zones, sorted(sites), forecast, len(workload))


__all__ = [
    "INDEPENDENT",
    "MODES",
    "PROFILE_MODE",
    "Comparison",
    "Forecaster",
    "ModeResult",
    "Outcome",
    "SimJob",
    "TraceIndex",
    "as_independent",
    "compare",
    "gap_closed",
    "generate_workload",
    "local_forecaster",
    "perfect_forecaster",
    "read_workload",
    "run_mode",
    "seven_day_mean_forecast",
    "weighted_share_of_oracle",
]
