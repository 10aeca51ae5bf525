"""Builders and an independent brute force for the planner tests.

The brute force does not use :class:`scheduler.planner.Profile`: it expands a forecast
into one integer (milli-g/kWh) per whole second and sums those, so it checks the planner's
breakpoint arithmetic rather than repeating it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from intensity.model import Forecast, IntensityPoint, Kind
from scheduler.model import Job, Site

T0 = datetime(2024, 3, 1, tzinfo=UTC)
T0_S = int(T0.timestamp())


def forecast(zone: str, values_milli: Sequence[int], lengths_s: Sequence[int], offset_s: int = 0) -> Forecast:
    """Contiguous points from ``T0 + offset_s``; intensities given in milli-g/kWh."""
    pts = []
    t = T0 + timedelta(seconds=offset_s)
    for v, n in zip(values_milli, lengths_s, strict=True):
        pts.append(IntensityPoint(zone, t, t + timedelta(seconds=n), v / 1000, Kind.FORECAST, "test"))
        t += timedelta(seconds=n)
    return Forecast(zone, tuple(pts))


def job(
    jid: int, duration_s: int, earliest_s: int, latest_s: int, *, site: str = "a",
    allowed: Sequence[str] = (), gpus: int = 0, cpus: int = 0, power_w: float = 1000.0,
    priority: int = 0, interruptible: bool = False, zone: str = "Z",
) -> Job:
    """A job whose bounds are seconds after ``T0``."""
    e = T0 + timedelta(seconds=earliest_s)
    latest = T0 + timedelta(seconds=latest_s)
    return Job(
        name=f"j{jid}", argv=["true"], duration_s=duration_s, zone=zone, submitted_at=T0,
        earliest_start=e, latest_start=latest, deadline_at=latest + timedelta(seconds=duration_s),
        id=jid, power_w=power_w, gpus=gpus, cpus=cpus, site=site, allowed_sites=list(allowed),
        priority=priority, interruptible=interruptible,
    )


class PerSecond:
    """Intensity per whole second (milli-g/kWh), with the forecast's mean outside it."""

    def __init__(self, fc: Forecast, lo_s: int, hi_s: int) -> None:
        self.lo = lo_s
        fill = round(fc.mean_g_per_kwh() * 1000)
        vals = [fill] * (hi_s - lo_s)
        for p in fc.points:
            a, b = int(p.start.timestamp()), int(p.end.timestamp())
            v = round(p.intensity_g_per_kwh * 1000)
            for t in range(max(a, lo_s), min(b, hi_s)):
                vals[t - lo_s] = v
        self.prefix = [0, *itertools.accumulate(vals)]

    def cost(self, start_s: int, duration_s: int) -> int:
        a = start_s - self.lo
        return self.prefix[a + duration_s] - self.prefix[a]


def grams(cost: int, power_w: float, pue: float = 1.0) -> float:
    return cost * power_w * pue / (1000 * 3600 * 1000)


def holds(intervals: Sequence[tuple[int, int]], slot_s: int) -> set[int]:
    """Slots an interval list holds (every slot it overlaps)."""
    out: set[int] = set()
    for a, b in intervals:
        out.update(range(a // slot_s, -(-b // slot_s)))
    return out


def secs(entry_intervals: Sequence[tuple[datetime, datetime]]) -> list[tuple[int, int]]:
    return [(int(a.timestamp()), int(b.timestamp())) for a, b in entry_intervals]


def site(name: str, zone: str, gpus: int = 0, *, pue: float = 1.0, delay_s: int = 0,
         energy_j: float = 0.0, cpus: int = 0) -> Site:
    return Site(name=name, zone=zone, gpus=gpus, cpus=cpus, pue=pue, transfer_delay_s=delay_s,
                transfer_energy_j=energy_j)


def isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
