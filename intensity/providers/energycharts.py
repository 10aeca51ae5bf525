"""Energy-Charts (Fraunhofer ISE, https://api.energy-charts.info), keyless.

``GET /co2eq?country=<cc>&start=<iso>&end=<iso>`` answers parallel arrays::

    {"unix_seconds": [...], "co2eq": [...], "co2eq_forecast": [...], "deprecated": false}

``co2eq`` holds measured values (``null`` where not yet known), ``co2eq_forecast`` the
forecast; both gCO2eq/kWh, average signal. The resolution (15 min or 1 h, depending on the
country and period) is read from the spacing of ``unix_seconds``.

Zones are upper-case ISO country codes (``DE``, ``FR``...), the same keys Electricity
Maps uses for whole countries; the API gets them lower-case. The default list is the
countries Energy-Charts publishes a ``co2eq`` series for as far as we know; the ``zones``
option overrides it. Forecasts carry ``issued_at`` = the ``now`` they were fetched at (the
API does not publish an issue time). History is requested 31 days per call (a limit we
impose: the API documents none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from intensity.base import IntensityProvider
from intensity.errors import EmptyData, MalformedResponse, UnknownZone
from intensity.http import HttpClient, HttpStatusError, default_client
from intensity.model import IntensityPoint, Kind, Signal
from intensity.providers._common import (
    base_url_option,
    number_or_none,
    step_of,
    stepped_point,
    tidy,
    time_of,
    usable,
    zones_option,
)
from intensity.timefmt import chunks, format_minutes_z, history_range, require_utc

NAME = "energycharts"
DEFAULT_BASE_URL = "https://api.energy-charts.info"
DEFAULT_ZONES: tuple[str, ...] = (
    "DE", "AT", "BE", "CH", "CZ", "DK", "ES", "FR", "IT", "NL", "PL", "PT", "SE",
)  # fmt: skip
DEFAULT_STEP_S = 900
MAX_RANGE_S = 31 * 24 * 3600


class EnergyChartsProvider(IntensityProvider):
    """Energy-Charts ``co2eq`` (measured) and ``co2eq_forecast`` series, per country."""

    name = NAME
    signal = Signal.AVERAGE

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: HttpClient | None = None,
        zones: Sequence[str] = DEFAULT_ZONES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or default_client()
        self._zones = tuple(z.upper() for z in zones)

    def zones(self) -> Sequence[str]:
        return self._zones

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        """``co2eq_forecast`` over ``[now, now + horizon_s)``."""
        now = require_utc(now, "now")
        if horizon_s <= 0:
            raise ValueError("horizon_s must be positive")
        end = now + timedelta(seconds=horizon_s)
        body = self._get(zone, now - timedelta(hours=1), end)
        out = tidy(
            self._points(zone, body, "co2eq_forecast", Kind.FORECAST, issued_at=now),
            start=now,
            end=end,
        )
        if not out:
            raise EmptyData(f"{NAME}: no forecast for {zone}")
        return out

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Measured ``co2eq`` over ``[start, end)``."""
        start, end = history_range(start, end)
        points: list[IntensityPoint] = []
        for lo, hi in chunks(start, end, MAX_RANGE_S):
            body = self._get(zone, lo, hi)
            points += self._points(zone, body, "co2eq", Kind.ACTUAL, issued_at=None)
        out = tidy(points, start=start, end=end)
        if not out:
            raise EmptyData(f"{NAME}: no measured co2eq for {zone} in the asked range")
        return out

    def _get(self, zone: str, start: datetime, end: datetime) -> Any:
        if zone.upper() not in self._zones:
            raise UnknownZone(f"{NAME} serves {', '.join(self._zones)}, not {zone!r}")
        params = {
            "country": zone.lower(),
            "start": format_minutes_z(start),
            "end": format_minutes_z(end),
        }
        try:
            return self.http.get_json(self.base_url + "/co2eq", provider=NAME, params=params)
        except HttpStatusError as exc:
            if exc.status in (400, 404):
                raise EmptyData(f"{NAME}: no co2eq series for {zone} ({exc})") from None
            raise

    def _points(
        self,
        zone: str,
        body: Any,
        key: str,
        kind: Kind,
        *,
        issued_at: datetime | None,
    ) -> list[IntensityPoint]:
        if not isinstance(body, Mapping):
            raise MalformedResponse(f"{NAME}: answer is not an object")
        stamps = body.get("unix_seconds")
        values = body.get(key)
        if not isinstance(stamps, list):
            raise MalformedResponse(f"{NAME}: answer has no unix_seconds list")
        if values is None:
            return []  # e.g. no forecast published for this country
        if not isinstance(values, list) or len(values) != len(stamps):
            raise MalformedResponse(f"{NAME}: {key} does not match unix_seconds")
        starts = [
            time_of(t, provider=NAME, field=f"unix_seconds[{i}]") for i, t in enumerate(stamps)
        ]
        step_s = step_of(sorted(starts), DEFAULT_STEP_S)
        out: list[IntensityPoint] = []
        for i, (start, raw) in enumerate(zip(starts, values, strict=True)):
            value = number_or_none(raw, provider=NAME, field=f"{key}[{i}]")
            if not usable(value):
                continue
            assert value is not None
            out.append(stepped_point(zone.upper(), start, step_s, value, kind=kind, provider=NAME,
                                     signal=Signal.AVERAGE, issued_at=issued_at))
        return out


#: The keys ``[providers.energycharts]`` may hold (for the config layer's unknown-key check).
OPTIONS: frozenset[str] = frozenset({"base_url", "zones"})


def from_settings(
    options: Mapping[str, Any], env: Mapping[str, str], *, http: HttpClient | None = None
) -> EnergyChartsProvider:
    """Build from ``[providers.energycharts]`` (``base_url``, ``zones``); keyless."""
    del env
    return EnergyChartsProvider(
        base_url=base_url_option(options, DEFAULT_BASE_URL),
        http=http,
        zones=zones_option(options, DEFAULT_ZONES),
    )
