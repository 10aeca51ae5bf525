"""Carbon-intensity data: points and forecasts.

An :class:`IntensityPoint` is the intensity of one zone over one interval, with where it
came from: actual or forecast, the provider, the signal (average or marginal), when the
forecast was issued and which link of the fallback chain produced it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from itertools import pairwise


class Kind(StrEnum):
    """Whether a value was measured after the fact or predicted before it."""

    ACTUAL = "actual"
    FORECAST = "forecast"


class Signal(StrEnum):
    """Average (attributional) or marginal emission factor; never mixed in one comparison."""

    AVERAGE = "average"
    MARGINAL = "marginal"


class Source(StrEnum):
    """The link of the fallback chain that produced a point."""

    PROVIDER = "provider"
    CACHE = "cache"
    LOCAL = "local"
    STATIC = "static"
    FLAT = "flat"


@dataclass(frozen=True, slots=True)
class IntensityPoint:
    """Intensity of ``zone`` over ``[start, end)`` in gCO2eq/kWh."""

    zone: str
    start: datetime
    end: datetime
    intensity_g_per_kwh: float
    kind: Kind
    provider: str
    signal: Signal = Signal.AVERAGE
    issued_at: datetime | None = None
    source: Source = Source.PROVIDER
    estimated: bool = False

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Forecast:
    """A piecewise-constant intensity series for one zone: sorted, non-overlapping points.

    Gaps between points are allowed; :meth:`integral` treats a gap and the time beyond the
    series as the series' mean (the planner's documented assumption).
    """

    zone: str
    points: tuple[IntensityPoint, ...]
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pts = tuple(sorted(self.points, key=lambda p: p.start))
        for a, b in pairwise(pts):
            if b.start < a.end:
                raise ValueError(f"overlapping intensity points at {b.start.isoformat()}")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "_starts", tuple(p.start.timestamp() for p in pts))

    @property
    def start(self) -> datetime | None:
        return self.points[0].start if self.points else None

    @property
    def end(self) -> datetime | None:
        return self.points[-1].end if self.points else None

    @property
    def providers(self) -> list[str]:
        return sorted({p.provider for p in self.points})

    @property
    def sources(self) -> list[str]:
        return sorted({str(p.source) for p in self.points})

    def mean_g_per_kwh(self) -> float:
        total_s = sum(p.duration_s for p in self.points)
        if total_s <= 0:
            return float("nan")
        return sum(p.intensity_g_per_kwh * p.duration_s for p in self.points) / total_s

    def at(self, when: datetime) -> IntensityPoint | None:
        """The point covering ``when``, or ``None``."""
        i = bisect_right(self._starts, when.timestamp()) - 1
        if i >= 0 and self.points[i].end > when:
            return self.points[i]
        return None

    def window_mean_g_per_kwh(self, start: datetime, end: datetime) -> float:
        """Time-weighted mean over ``[start, end)``; uncovered time counts at the series mean
        (the integral of :class:`intensity.series.Series`; NaN without points)."""
        if end <= start:
            raise ValueError("empty window")
        from intensity.series import Series

        series = Series(self)
        if not series.b:
            return float("nan")
        return series.mean_g_per_kwh(start.timestamp(), end.timestamp())


def as_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; a naive datetime is an error inside the package."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: carbonshift only handles aware UTC times")
    return value.astimezone(UTC)


def forecast_of(zone: str, points: Iterable[IntensityPoint]) -> Forecast:
    """Build a :class:`Forecast`, keeping for each start the most recently issued point."""
    best: dict[datetime, IntensityPoint] = {}
    for p in points:
        cur = best.get(p.start)
        if cur is None or _rank(p) > _rank(cur):
            best[p.start] = p
    return Forecast(zone, tuple(best.values()))


def _rank(p: IntensityPoint) -> tuple[int, float]:
    return (1 if p.kind is Kind.ACTUAL else 0,
            p.issued_at.timestamp() if p.issued_at else 0.0)


def total_seconds(points: Sequence[IntensityPoint]) -> float:
    return sum(p.duration_s for p in points)
