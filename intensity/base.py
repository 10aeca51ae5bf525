"""The one interface to carbon-intensity data: :class:`IntensityProvider`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from intensity.model import IntensityPoint, Signal


class IntensityProvider(ABC):
    """A source of grid carbon intensity for some zones.

    Implementations convert units once (to gCO2eq/kWh) and times once (to aware UTC), and
    raise only :mod:`intensity.errors` exceptions. ``now`` is always passed in so replay,
    simulation and tests can run at any instant.
    """

    #: Short name, stored on every point it produces (``replay``, ``ukgrid``...).
    name: str = "provider"
    #: The kind of emission factor this provider gives.
    signal: Signal = Signal.AVERAGE

    @abstractmethod
    def zones(self) -> Sequence[str]:
        """Zone identifiers this provider serves."""

    def serves(self, zone: str) -> bool:
        return zone in self.zones()

    @abstractmethod
    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        """Forecast points covering ``[now, now + horizon_s)`` as known at ``now``.

        Points have ``kind=forecast`` and ``issued_at`` set. Raise
        :class:`~intensity.errors.EmptyData` when the provider has nothing for the window.
        """

    @abstractmethod
    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Actual (measured or estimated-after-the-fact) points over ``[start, end)``."""
