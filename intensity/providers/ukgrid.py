"""GB Carbon Intensity API (NESO, https://api.carbonintensity.org.uk), keyless.

Zones
    ``GB``                      national (``/intensity/...``): forecasts and actuals.
    ``GB-REGION-<1..14>``       the 14 DNO regions (``/regional/intensity/.../regionid/<id>``):
                                1 North Scotland, 2 South Scotland, 3 North West England,
                                4 North East England, 5 Yorkshire, 6 North Wales & Merseyside,
                                7 South Wales, 8 West Midlands, 9 East Midlands,
                                10 East England, 11 South West England, 12 South England,
                                13 London, 14 South East England.
    ``GB-POSTCODE-<OUTCODE>``   the region of an outward postcode (``RG10``, ``EH1``), via
                                ``/regional/intensity/.../postcode/<outcode>``. Served but
                                not listed by :meth:`UKGridProvider.zones` (there are ~3000).

Endpoints
    forecast: ``/intensity/{from}/fw48h`` (96 half-hours from the one holding ``from``).
    history:  ``/intensity/{to}/pt24h`` when the range fits in the past 24 h before ``to``,
              otherwise ``/intensity/{from}/{to}`` in chunks of at most 14 days (the API's
              limit). Regional zones use the same paths under ``/regional``.

Values are already gCO2/kWh, average signal, half-hour windows. The API does not say
when a forecast was issued: ``issued_at`` is the ``now`` it was fetched at. National
history uses ``intensity.actual`` (a null actual, normal for the latest half-hours, is a
gap); regions have no actuals, so regional history carries the final *forecast* values as
``kind=actual`` with ``estimated=True``.
"""

from __future__ import annotations

import re
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
    tidy,
    time_of,
    usable,
    zones_option,
)
from intensity.timefmt import chunks, floor_to, format_minutes_z, history_range, require_utc

NAME = "ukgrid"
DEFAULT_BASE_URL = "https://api.carbonintensity.org.uk"

#: The API refuses ``{from}/{to}`` ranges longer than this.
MAX_RANGE_S = 14 * 24 * 3600
#: Half-hour settlement periods.
WINDOW_S = 30 * 60
#: ``fw48h`` horizon.
FORECAST_HORIZON_S = 48 * 3600
#: A range this short (or shorter) is served by one ``pt24h`` call.
PT24H_MAX_SPAN_S = 24 * 3600 - WINDOW_S

REGION_NAMES: dict[int, str] = {
    1: "North Scotland",
    2: "South Scotland",
    3: "North West England",
    4: "North East England",
    5: "Yorkshire",
    6: "North Wales & Merseyside",
    7: "South Wales",
    8: "West Midlands",
    9: "East Midlands",
    10: "East England",
    11: "South West England",
    12: "South England",
    13: "London",
    14: "South East England",
}

NATIONAL_ZONE = "GB"
REGION_PREFIX = "GB-REGION-"
POSTCODE_PREFIX = "GB-POSTCODE-"
ALL_ZONES: tuple[str, ...] = (NATIONAL_ZONE, *(f"{REGION_PREFIX}{i}" for i in REGION_NAMES))

_OUTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")


def region_zone(region_id: int) -> str:
    """``GB-REGION-<id>`` for a DNO region id 1..14."""
    if region_id not in REGION_NAMES:
        raise UnknownZone(f"GB DNO region ids are 1..14, not {region_id}")
    return f"{REGION_PREFIX}{region_id}"


def postcode_zone(outcode: str) -> str:
    """``GB-POSTCODE-<OUTCODE>`` for an outward postcode (``rg10`` -> ``GB-POSTCODE-RG10``)."""
    code = outcode.strip().upper().split()[0] if outcode.strip() else ""
    if not _OUTCODE.match(code):
        raise UnknownZone(f"{outcode!r} is not an outward postcode (like RG10 or EH1)")
    return f"{POSTCODE_PREFIX}{code}"


class UKGridProvider(IntensityProvider):
    """NESO GB Carbon Intensity API: national, regional and postcode half-hourly intensity."""

    name = NAME
    signal = Signal.AVERAGE

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: HttpClient | None = None,
        zones: Sequence[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or default_client()
        self._zones = tuple(zones) if zones is not None else ALL_ZONES
        for zone in self._zones:
            self._path_parts(zone)  # validate configured zones early

    # -- interface -------------------------------------------------------------------

    def zones(self) -> Sequence[str]:
        return self._zones

    def serves(self, zone: str) -> bool:
        if zone in self._zones:
            return True
        return zone.startswith(POSTCODE_PREFIX) and bool(
            _OUTCODE.match(zone[len(POSTCODE_PREFIX) :])
        )

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        """Half-hour forecasts from ``fw48h``; at most 48 h whatever ``horizon_s`` asks."""
        now = require_utc(now, "now")
        if horizon_s <= 0:
            raise ValueError("horizon_s must be positive")
        base, suffix = self._path_parts(zone)
        body = self._get(f"{base}/{format_minutes_z(now)}/fw48h{suffix}")
        points = self._points(zone, body, kind=Kind.FORECAST, issued_at=now, regional=bool(suffix))
        out = tidy(points, start=floor_to(now, WINDOW_S), end=now + timedelta(seconds=horizon_s))
        if not out:
            raise EmptyData(f"{NAME}: no forecast for {zone} from {format_minutes_z(now)}")
        return out

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Actual intensity over ``[start, end)`` (see the module notes for regions)."""
        start, end = history_range(start, end)
        base, suffix = self._path_parts(zone)
        regional = bool(suffix)
        points: list[IntensityPoint] = []
        if (end - start).total_seconds() <= PT24H_MAX_SPAN_S:
            to = _ceil_window(end)
            body = self._get(f"{base}/{format_minutes_z(to)}/pt24h{suffix}")
            points += self._points(zone, body, kind=Kind.ACTUAL, issued_at=None, regional=regional)
        else:
            for lo, hi in chunks(start, end, MAX_RANGE_S):
                path = f"{base}/{format_minutes_z(lo)}/{format_minutes_z(hi)}{suffix}"
                body = self._get(path)
                points += self._points(
                    zone, body, kind=Kind.ACTUAL, issued_at=None, regional=regional
                )
        out = tidy(points, start=start, end=end)
        if not out:
            raise EmptyData(
                f"{NAME}: no actuals for {zone} in "
                f"{format_minutes_z(start)}..{format_minutes_z(end)}"
            )
        return out

    # -- helpers ---------------------------------------------------------------------

    def _path_parts(self, zone: str) -> tuple[str, str]:
        """(``/intensity`` or ``/regional/intensity``, the path suffix naming the area)."""
        if zone == NATIONAL_ZONE:
            return "/intensity", ""
        if zone.startswith(REGION_PREFIX):
            raw = zone[len(REGION_PREFIX) :]
            if raw.isdigit() and int(raw) in REGION_NAMES:
                return "/regional/intensity", f"/regionid/{int(raw)}"
        if zone.startswith(POSTCODE_PREFIX):
            code = zone[len(POSTCODE_PREFIX) :]
            if _OUTCODE.match(code):
                return "/regional/intensity", f"/postcode/{code}"
        raise UnknownZone(
            f"{NAME} serves GB, GB-REGION-1..14 and GB-POSTCODE-<outcode>, not {zone!r}"
        )

    def _get(self, path: str) -> Any:
        return self.http.get_json(self.base_url + path, provider=NAME)

    def _points(
        self,
        zone: str,
        body: Any,
        *,
        kind: Kind,
        issued_at: datetime | None,
        regional: bool,
    ) -> list[IntensityPoint]:
        rows = _rows(body, regional=regional)
        # National actuals come from "actual"; forecasts, and all regional values, from
        # "forecast" (regions publish no actuals).
        field = "actual" if kind is Kind.ACTUAL and not regional else "forecast"
        out: list[IntensityPoint] = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise MalformedResponse(f"{NAME}: data[{i}] is not an object")
            intensity = row.get("intensity")
            if not isinstance(intensity, Mapping):
                raise MalformedResponse(f"{NAME}: data[{i}].intensity is missing")
            value = number_or_none(
                intensity.get(field), provider=NAME, field=f"data[{i}].intensity.{field}"
            )
            if not usable(value):
                continue
            assert value is not None
            start = time_of(row.get("from"), provider=NAME, field=f"data[{i}].from")
            to_raw = row.get("to")
            end = (
                time_of(to_raw, provider=NAME, field=f"data[{i}].to")
                if to_raw is not None
                else start + timedelta(seconds=WINDOW_S)
            )
            if end <= start:
                raise MalformedResponse(f"{NAME}: data[{i}] ends before it starts")
            out.append(
                IntensityPoint(
                    zone=zone,
                    start=start,
                    end=end,
                    intensity_g_per_kwh=value,
                    kind=kind,
                    provider=NAME,
                    signal=Signal.AVERAGE,
                    issued_at=issued_at,
                    estimated=regional and kind is Kind.ACTUAL,
                )
            )
        return out


def _rows(body: Any, *, regional: bool) -> list[Any]:
    """The list of half-hour rows, for the national and both regional answer shapes."""
    if not isinstance(body, Mapping) or "data" not in body:
        raise MalformedResponse(f"{NAME}: answer has no 'data'")
    data = body["data"]
    if not regional:
        if not isinstance(data, list):
            raise MalformedResponse(f"{NAME}: 'data' is not a list")
        return data
    # Regional answers wrap the rows in the region: {"data": {"regionid", "data": [...]}}
    # or {"data": [{"regionid", "data": [...]}]}.
    region = data[0] if isinstance(data, list) and data else data
    if isinstance(data, list) and not data:
        return []
    if not isinstance(region, Mapping) or not isinstance(region.get("data"), list):
        raise MalformedResponse(f"{NAME}: regional answer has no data.data list")
    rows: list[Any] = region["data"]
    return rows


def _ceil_window(value: datetime) -> datetime:
    floored = floor_to(value, WINDOW_S)
    return floored if floored == value else floored + timedelta(seconds=WINDOW_S)


#: The keys ``[providers.ukgrid]`` may hold (for the config layer's unknown-key check).
OPTIONS: frozenset[str] = frozenset({"base_url", "zones"})


def from_settings(
    options: Mapping[str, Any], env: Mapping[str, str], *, http: HttpClient | None = None
) -> UKGridProvider:
    """Build from ``[providers.ukgrid]`` (``base_url``, ``zones``); needs no credentials."""
    del env  # keyless
    zones = zones_option(options, ALL_ZONES)
    return UKGridProvider(
        base_url=base_url_option(options, DEFAULT_BASE_URL), http=http, zones=zones
    )
