"""Energinet's Energi Data Service (https://api.energidataservice.dk), keyless.

Datasets
    forecast: ``CO2EmisProg``, the CO2 emission prognosis (5-minute, gCO2/kWh).
    history:  ``CO2Emis``, the near-real-time CO2 emission (same shape).

``GET /dataset/<name>?start=&end=&filter={"PriceArea":["DK1"]}&sort=...&limit=0``
answers ``{"total", "limit", "dataset", "records": [{"Minutes5UTC", "PriceArea",
"CO2Emission"}...]}``, newest first by default. ``Minutes5UTC`` is naive text
(``2022-07-17T21:55:00``) that the dataset documents as UTC; it is parsed as UTC and
never through a Danish local clock. The API guide says ``start``/``end`` are Danish local
time (UTC+1, or UTC+2 in summer); rather than convert through a timezone database, the UTC
wall-clock window is sent widened by three hours on each side and the points are clipped
here to the exact UTC window.

Zones are ``DK-DK1`` (West Denmark) and ``DK-DK2`` (East Denmark), the Electricity Maps
keys for the two price areas. Values are average signal; forecasts carry
``issued_at`` = the ``now`` they were fetched at.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from intensity.base import IntensityProvider
from intensity.errors import EmptyData, MalformedResponse, UnknownZone
from intensity.http import HttpClient, default_client
from intensity.model import IntensityPoint, Kind, Signal
from intensity.providers._common import (
    base_url_option,
    number_or_none,
    stepped_point,
    tidy,
    time_of,
    usable,
    zones_option,
)
from intensity.timefmt import format_minutes_naive, history_range, require_utc

NAME = "energinet"
DEFAULT_BASE_URL = "https://api.energidataservice.dk"
ZONE_AREAS: dict[str, str] = {"DK-DK1": "DK1", "DK-DK2": "DK2"}
FORECAST_DATASET = "CO2EmisProg"
HISTORY_DATASET = "CO2Emis"
STEP_S = 300
#: Widening of the asked window: the service reads start/end as Danish time (UTC+1/+2).
MARGIN = timedelta(hours=3)


class EnerginetProvider(IntensityProvider):
    """Danish 5-minute CO2 emission prognosis and realised emission, per price area."""

    name = NAME
    signal = Signal.AVERAGE

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: HttpClient | None = None,
        zones: Sequence[str] = tuple(ZONE_AREAS),
    ) -> None:
        for zone in zones:
            if zone not in ZONE_AREAS:
                raise UnknownZone(f"{NAME} serves DK-DK1 and DK-DK2, not {zone!r}")
        self.base_url = base_url.rstrip("/")
        self.http = http or default_client()
        self._zones = tuple(zones)

    def zones(self) -> Sequence[str]:
        return self._zones

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        """``CO2EmisProg`` over ``[now, now + horizon_s)``."""
        now = require_utc(now, "now")
        if horizon_s <= 0:
            raise ValueError("horizon_s must be positive")
        end = now + timedelta(seconds=horizon_s)
        rows = self._records(FORECAST_DATASET, zone, now, end)
        out = tidy(self._points(zone, rows, Kind.FORECAST, issued_at=now), start=now, end=end)
        if not out:
            raise EmptyData(f"{NAME}: no CO2 prognosis for {zone} after {now.isoformat()}")
        return out

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """``CO2Emis`` over ``[start, end)``."""
        start, end = history_range(start, end)
        rows = self._records(HISTORY_DATASET, zone, start, end)
        out = tidy(self._points(zone, rows, Kind.ACTUAL, issued_at=None), start=start, end=end)
        if not out:
            raise EmptyData(f"{NAME}: no CO2 emission for {zone} in the asked range")
        return out

    def _records(self, dataset: str, zone: str, start: datetime, end: datetime) -> list[Any]:
        area = ZONE_AREAS.get(zone)
        if area is None or zone not in self._zones:
            raise UnknownZone(f"{NAME} serves {', '.join(self._zones)}, not {zone!r}")
        params = {
            "start": format_minutes_naive(start - MARGIN),
            "end": format_minutes_naive(end + MARGIN),
            "filter": json.dumps({"PriceArea": [area]}, separators=(",", ":")),
            "sort": "Minutes5UTC ASC",
            "limit": "0",
        }
        body = self.http.get_json(
            f"{self.base_url}/dataset/{dataset}", provider=NAME, params=params
        )
        if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
            raise MalformedResponse(f"{NAME}: answer has no 'records' list")
        records: list[Any] = body["records"]
        return records

    def _points(
        self, zone: str, rows: list[Any], kind: Kind, *, issued_at: datetime | None
    ) -> list[IntensityPoint]:
        area = ZONE_AREAS[zone]
        out: list[IntensityPoint] = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise MalformedResponse(f"{NAME}: records[{i}] is not an object")
            if row.get("PriceArea") != area:
                continue  # the filter should have removed it; never mix areas
            value = number_or_none(
                row.get("CO2Emission"), provider=NAME, field=f"records[{i}].CO2Emission"
            )
            if not usable(value):
                continue
            assert value is not None
            start = time_of(
                row.get("Minutes5UTC"),
                provider=NAME,
                field=f"records[{i}].Minutes5UTC",
                naive_is_utc=True,
            )
            out.append(stepped_point(zone, start, STEP_S, value, kind=kind, provider=NAME,
                                     signal=Signal.AVERAGE, issued_at=issued_at))
        return out


#: The keys ``[providers.energinet]`` may hold (for the config layer's unknown-key check).
OPTIONS: frozenset[str] = frozenset({"base_url", "zones"})


def from_settings(
    options: Mapping[str, Any], env: Mapping[str, str], *, http: HttpClient | None = None
) -> EnerginetProvider:
    """Build from ``[providers.energinet]`` (``base_url``, ``zones``); keyless."""
    del env
    return EnerginetProvider(
        base_url=base_url_option(options, DEFAULT_BASE_URL),
        http=http,
        zones=zones_option(options, tuple(ZONE_AREAS)),
    )
