"""Weather inputs of the local forecaster: :class:`WeatherSeries` and :class:`WeatherProvider`.

A wind- or solar-driven grid's intensity a day ahead is mostly the weather a day ahead,
which no amount of intensity history contains. A :class:`WeatherProvider` gives, for a
zone, hourly values of a few named *inputs* (``wind_speed_100m@north``...: a variable at
a point) over the recent past and the forecast horizon, as known at ``now``; the local
forecaster (:func:`intensity.forecast.local_forecast` with ``weather=``) takes them as
extra regressors. Providers follow the intensity providers' rules: aware UTC times, only
:mod:`intensity.errors` exceptions, ``now`` passed in.

Standard library only (the forecaster turns a series into arrays).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class WeatherSeries:
    """Hourly (``step_s``) values of named inputs for ``zone`` from ``start``, as known at
    ``issued_at``. Every tuple in ``values`` has the same length; a missing value is
    ``nan``. Input names sort into the column order the forecaster fits on."""

    zone: str
    start: datetime
    step_s: int
    values: Mapping[str, tuple[float, ...]]
    provider: str
    issued_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.step_s <= 0:
            raise ValueError("step_s must be positive")
        lengths = {len(v) for v in self.values.values()}
        if len(lengths) > 1:
            raise ValueError(f"weather inputs differ in length: {sorted(lengths)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.values))

    def __len__(self) -> int:
        return len(next(iter(self.values.values()), ()))

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.step_s * len(self))

    def usable(self) -> bool:
        """Whether every input has at least one finite value."""
        return bool(self.values) and len(self) > 0 and all(
            any(math.isfinite(x) for x in col) for col in self.values.values()
        )


def merge(series: Sequence[WeatherSeries]) -> WeatherSeries:
    """Join series of one zone and step on the hours they cover: a later series wins where
    they overlap (a newer forecast replaces an older one), ``nan`` fills the rest."""
    if not series:
        raise ValueError("no weather series to merge")
    step = series[0].step_s
    if any(s.step_s != step or s.zone != series[0].zone for s in series):
        raise ValueError("weather series of different zones or steps cannot be merged")
    start = min(s.start for s in series)
    end = max(s.end for s in series)
    n = round((end - start).total_seconds() / step)
    names = sorted({name for s in series for name in s.values})
    out = {name: [math.nan] * n for name in names}
    for s in series:
        off = round((s.start - start).total_seconds() / step)
        for name, col in s.values.items():
            dst = out[name]
            for i, v in enumerate(col):
                if math.isfinite(v):
                    dst[off + i] = v
    last = series[-1]
    return WeatherSeries(last.zone, start, step, {k: tuple(v) for k, v in out.items()},
                         last.provider, last.issued_at)


class WeatherProvider(ABC):
    """A source of hourly weather inputs for some zones."""

    #: Short name (``openmeteo``...).
    name: str = "weather"

    @abstractmethod
    def zones(self) -> Sequence[str]:
        """Zone identifiers this provider has points for."""

    def serves(self, zone: str) -> bool:
        return zone in self.zones()

    @abstractmethod
    def weather(self, zone: str, now: datetime, horizon_s: int) -> WeatherSeries:
        """Inputs over the provider's recent past up to ``now + horizon_s``, as known at
        ``now``. Raise :class:`~intensity.errors.EmptyData` when there is nothing."""


__all__ = ["WeatherProvider", "WeatherSeries", "merge"]
