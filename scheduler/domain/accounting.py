"""Accounting, pure: energy and emissions of a run, and its run-now counterfactual.

For each energy sample, the intensity is the time-weighted mean over the sample's interval
of the best value known for each instant: an **actual** where one is known, else the most
recently issued **forecast**, else the static annual average (flagged). Emissions use the
facility energy (measured IT energy x the site's PUE, the PUE kept separately).

The counterfactual replays the *same measured power profile* as if the job had started at
its submission time on its home zone: each sample shifted by ``submitted_at - started_at``.
An interruptible run that was paused has samples only inside the intervals it ran (paused
time is never measured); its counterfactual lays those intervals end to end from the
submission, without the pauses, as the job would have run had it started at once.
Savings are counterfactual minus actual; they are never computed from an estimate.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from intensity.model import IntensityPoint, Kind, Source
from probes.model import Sample
from scheduler.domain.model import RunAccounting

J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class _Tier:
    starts: list[float]
    points: list[IntensityPoint]


def _tiers(points: Sequence[IntensityPoint]) -> list[tuple[str, list[IntensityPoint]]]:
    """Split points into actual / forecast / static tiers, best value per start in each."""
    actual: dict[datetime, IntensityPoint] = {}
    forecast: dict[datetime, IntensityPoint] = {}
    static: dict[datetime, IntensityPoint] = {}
    for p in points:
        if p.kind is Kind.ACTUAL:
            tier = actual
        elif p.source in (Source.STATIC, Source.FLAT):
            tier = static
        else:
            tier = forecast
        cur = tier.get(p.start)
        if cur is None or (p.issued_at or datetime.min.replace(tzinfo=p.start.tzinfo)) > (
            cur.issued_at or datetime.min.replace(tzinfo=p.start.tzinfo)
        ):
            tier[p.start] = p
    return [
        ("actual", sorted(actual.values(), key=lambda q: q.start)),
        ("forecast", sorted(forecast.values(), key=lambda q: q.start)),
        ("static", sorted(static.values(), key=lambda q: q.start)),
    ]


def _intensity_over(
    tiers: list[tuple[str, list[IntensityPoint]]], start: datetime, end: datetime
) -> tuple[float, dict[str, float], set[str]]:
    """Mean intensity over ``[start, end)`` and the share of time each tier supplied."""
    span = (end - start).total_seconds()
    if span <= 0:
        # an instantaneous sample: use the value at that instant
        end = start + timedelta(seconds=1)
        span = 1.0
    remaining = [(start, end)]
    acc = 0.0
    shares: dict[str, float] = defaultdict(float)
    providers: set[str] = set()
    for name, pts in tiers:
        if not remaining:
            break
        next_remaining: list[tuple[datetime, datetime]] = []
        for lo, hi in remaining:
            cursor = lo
            for p in pts:
                if p.end <= cursor or p.start >= hi:
                    continue
                a = max(p.start, cursor)
                b = min(p.end, hi)
                if a > cursor:
                    next_remaining.append((cursor, a))
                s = (b - a).total_seconds()
                acc += s * p.intensity_g_per_kwh
                shares[name] += s
                providers.add(p.provider)
                cursor = b
                if cursor >= hi:
                    break
            if cursor < hi:
                next_remaining.append((cursor, hi))
        remaining = next_remaining
    covered = sum(shares.values())
    if covered <= 0:
        return float("nan"), {}, set()
    # anything still uncovered counts at the mean of what was covered
    mean = acc / covered
    return mean, {k: v / span for k, v in shares.items()}, providers


Span = tuple[datetime, datetime]


class _RunNow:
    """Maps an instant of a run onto the run-now timeline: submission + active time so far."""

    def __init__(self, started_at: datetime, submitted_at: datetime,
                 intervals: Sequence[Span] | None) -> None:
        self.submitted_at = submitted_at
        spans = sorted(intervals or [])
        self.starts = [a for a, _ in spans] or [started_at]
        offsets, total = [], 0.0
        for a, b in spans:
            offsets.append(total)
            total += max(0.0, (b - a).total_seconds())
        self.offsets = offsets or [0.0]

    def __call__(self, t: datetime) -> datetime:
        k = max(0, bisect_right(self.starts, t) - 1)
        return self.submitted_at + timedelta(seconds=self.offsets[k]) + (t - self.starts[k])


def counterfactual_window(
    samples: Sequence[Sample], *, started_at: datetime, submitted_at: datetime,
    intervals: Sequence[Span] | None = None,
) -> tuple[datetime, datetime]:
    """The span of the run-now counterfactual (for fetching its intensity points)."""
    to = _RunNow(started_at, submitted_at, intervals)
    first = min(s.start for s in samples)
    last = max(s.end for s in samples)
    return to(first), to(last)


@dataclass(frozen=True)
class SampleEmission:
    sample: Sample
    intensity_g_per_kwh: float
    emissions_g: float
    kind: str


def account(
    samples: Sequence[Sample],
    points: Sequence[IntensityPoint],
    *,
    started_at: datetime,
    submitted_at: datetime,
    pue: float = 1.0,
    counterfactual_points: Sequence[IntensityPoint] | None = None,
    transfer_energy_j: float = 0.0,
    intervals: Sequence[Span] | None = None,
) -> RunAccounting:
    """Energy, emissions and the run-now counterfactual of a run's samples.

    ``points`` cover the run's own interval; ``counterfactual_points`` (default: the same
    list) cover ``[submitted_at, submitted_at + run length)`` in the home zone. For a run
    that was paused, ``intervals`` are the stretches it really ran: each sample then moves
    to submission + the active time before it (see :func:`counterfactual_window`).
    """
    tiers = _tiers(points)
    cf_tiers = _tiers(counterfactual_points) if counterfactual_points is not None else tiers
    to_run_now = _RunNow(started_at, submitted_at, intervals)
    energy_j = 0.0
    measured_j = 0.0
    emissions_g = 0.0
    actual_g = 0.0
    cf_g = 0.0
    by_method: dict[str, float] = defaultdict(float)
    providers: set[str] = set()
    kinds: set[str] = set()
    for s in samples:
        e = max(0.0, s.energy_j)
        energy_j += e
        if not s.estimated:
            measured_j += e
        by_method[str(s.method)] += e
        kwh = e * pue / J_PER_KWH
        mean, shares, provs = _intensity_over(tiers, s.start, s.end)
        if mean == mean:  # not NaN
            g = kwh * mean
            emissions_g += g
            actual_g += g * shares.get("actual", 0.0)
            providers |= provs
            kinds |= {k for k, v in shares.items() if v > 0}
        cf_start = to_run_now(s.start)
        cf_mean, _, _ = _intensity_over(cf_tiers, cf_start, cf_start + (s.end - s.start))
        if cf_mean == cf_mean:
            cf_g += kwh * cf_mean
    if transfer_energy_j > 0 and samples:
        # moving the job cost energy too; charged at the run's mean intensity
        mean_run = emissions_g / (energy_j * pue / J_PER_KWH) if energy_j > 0 else 0.0
        emissions_g += transfer_energy_j * pue / J_PER_KWH * mean_run
        energy_j += transfer_energy_j
    kind = intensity_kind_of(kinds)
    methods = "+".join(m for m, _ in sorted(by_method.items(), key=lambda kv: -kv[1])) or "none"
    return RunAccounting(
        energy_j=energy_j,
        facility_energy_j=energy_j * pue,
        emissions_g=emissions_g,
        counterfactual_g=cf_g,
        energy_method=methods,
        intensity_kind=kind,
        intensity_provider="+".join(sorted(providers)) or "none",
        pue=pue,
        measured_share=(measured_j / energy_j) if energy_j > 0 else 0.0,
        actual_share=(actual_g / emissions_g) if emissions_g > 0 else 0.0,
    )


def intensity_kind_of(kinds: Iterable[str]) -> str:
    """The ``intensity_kind`` label of figures computed on intensities of these kinds
    (tiers ``actual``/``forecast``/``static``, or the labels of the figures summed, which
    may be ``mixed`` or ``none``): ``actual`` when every one is, ``mixed`` when some are,
    ``static`` when all are annual averages, ``forecast`` otherwise, ``none`` for no data."""
    known = set(kinds) - {"none"}
    if not known:
        return "none"
    if known == {"actual"}:
        return "actual"
    if known & {"actual", "mixed"}:
        return "mixed"
    if known == {"static"}:
        return "static"
    return "forecast"


def mean_power_w(samples: Sequence[Sample]) -> float | None:
    """Mean power of a run over its sampled span (for projections and estimates)."""
    if not samples:
        return None
    start = min(s.start for s in samples)
    end = max(s.end for s in samples)
    span = (end - start).total_seconds()
    if span <= 0:
        return None
    return sum(s.energy_j for s in samples) / span
