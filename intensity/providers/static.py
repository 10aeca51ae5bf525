"""Static provider: one annual average per country, the last real link of the fallback chain.

Zones are ISO 3166 alpha-2 (``GB``) or alpha-3 (``GBR``) codes; an Electricity Maps
sub-zone such as ``US-CAL-CISO`` or ``DE-LU`` falls back to its country's average. The
table ships in ``intensity/data/country_intensity.csv`` (see ``ATTRIBUTION.md`` there).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from intensity.base import IntensityProvider
from intensity.errors import UnknownZone
from intensity.model import IntensityPoint, Kind, Signal, Source

TABLE = Path(__file__).resolve().parent.parent / "data" / "country_intensity.csv"
#: World average used by the last link ("flat") when not even the country is known;
#: CodeCarbon's world_average factor (gCO2eq/kWh).
WORLD_AVERAGE_G_PER_KWH = 475.0
_STEP_S = 3600


@dataclass(frozen=True)
class CountryIntensity:
    iso2: str
    iso3: str
    country: str
    year: int
    intensity_g_per_kwh: float
    source: str


@lru_cache(maxsize=1)
def country_table() -> dict[str, CountryIntensity]:
    """ISO2 and ISO3 code -> annual average."""
    out: dict[str, CountryIntensity] = {}
    with TABLE.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            rec = CountryIntensity(
                row["iso2"], row["iso3"], row["country"], int(row["year"]),
                float(row["intensity_g_per_kwh"]), row["source"],
            )
            if rec.iso3:
                out[rec.iso3] = rec
            if rec.iso2:
                out[rec.iso2] = rec
    return out


def lookup(zone: str) -> CountryIntensity | None:
    """The country average for a zone, trying the zone then its country prefix."""
    table = country_table()
    z = zone.upper()
    if z in table:
        return table[z]
    head = z.split("-", 1)[0]
    return table.get(head)


class StaticProvider(IntensityProvider):
    """Flat annual averages, returned as hourly points (kind forecast, source static)."""

    name = "static"
    signal = Signal.AVERAGE

    def zones(self) -> Sequence[str]:
        return sorted(country_table())

    def serves(self, zone: str) -> bool:
        return lookup(zone) is not None

    def average(self, zone: str) -> CountryIntensity:
        rec = lookup(zone)
        if rec is None:
            raise UnknownZone(f"no annual average is known for zone {zone!r}")
        return rec

    def _points(self, zone: str, start: datetime, end: datetime, kind: Kind) -> list[IntensityPoint]:
        rec = self.average(zone)
        t = start.replace(minute=0, second=0, microsecond=0)
        out = []
        while t < end:
            out.append(
                IntensityPoint(
                    zone=zone, start=t, end=t + timedelta(seconds=_STEP_S),
                    intensity_g_per_kwh=rec.intensity_g_per_kwh, kind=kind,
                    provider=self.name, signal=Signal.AVERAGE, issued_at=None,
                    source=Source.STATIC, estimated=True,
                )
            )
            t += timedelta(seconds=_STEP_S)
        return out

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        return self._points(zone, now, now + timedelta(seconds=horizon_s), Kind.FORECAST)

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        # an annual average is not an actual: history from this provider is forecast-kind
        return self._points(zone, start, end, Kind.FORECAST)


def flat_points(zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
    """The chain's last link: the world average, flat, so planning degrades to run-now."""
    out = []
    t = start.replace(minute=0, second=0, microsecond=0)
    while t < end:
        out.append(
            IntensityPoint(
                zone=zone, start=t, end=t + timedelta(seconds=_STEP_S),
                intensity_g_per_kwh=WORLD_AVERAGE_G_PER_KWH, kind=Kind.FORECAST,
                provider="flat", signal=Signal.AVERAGE, source=Source.FLAT, estimated=True,
            )
        )
        t += timedelta(seconds=_STEP_S)
    return out


def from_settings(options: Mapping[str, Any], env: Mapping[str, str]) -> IntensityProvider:
    return StaticProvider()
