"""Electricity Maps API v3 (https://api.electricitymap.org/v3), token in ``auth-token``.

Zones are Electricity Maps zone keys, used verbatim: ``DE``, ``GB``, ``FR``,
``US-CAL-CISO``, ``DK-DK1``... The list comes from the ``zones`` option, or else from
``GET /zones`` (fetched once, on first use).

Endpoints
    latest:     ``/carbon-intensity/latest?zone=``       (:meth:`ElectricityMapsProvider.latest`)
    history:    ``/carbon-intensity/history?zone=``      (the past 24 h, :meth:`recent`)
    past-range: ``/carbon-intensity/past-range?zone=&start=&end=`` in chunks of at most
                10 days (:meth:`history`)
    forecast:   ``/carbon-intensity/forecast?zone=&horizonHours=`` where the plan includes
                it; with ``forecast = false`` (free tier) no request is made and
                :class:`~intensity.errors.EmptyData` sends the chain on to its next link.

Values are gCO2eq/kWh (lifecycle by default; ``emission_factor_type = "direct"`` for
direct), average signal, hourly. ``isEstimated`` is carried into
:attr:`IntensityPoint.estimated`. A forecast's ``issued_at`` is the answer's
``updatedAt`` when present, else the ``now`` it was fetched at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from intensity.base import IntensityProvider
from intensity.errors import EmptyData, IntensityError, MalformedResponse, UnknownZone
from intensity.http import HttpAuthError, HttpClient, HttpStatusError, default_client
from intensity.model import IntensityPoint, Kind, Signal
from intensity.providers._common import (
    base_url_option,
    credential,
    missing_credential,
    number_or_none,
    stepped_point,
    tidy,
    time_of,
    usable,
    zones_option,
)
from intensity.timefmt import chunks, format_seconds_z, history_range, require_utc

NAME = "electricitymaps"
DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
TOKEN_ENV = "ELECTRICITYMAPS_TOKEN"

#: Hourly data points.
STEP_S = 3600
#: Longest range one ``past-range`` call accepts (hourly granularity).
MAX_RANGE_S = 10 * 24 * 3600
#: Longest forecast the API offers.
MAX_HORIZON_H = 72


class ElectricityMapsProvider(IntensityProvider):
    """Electricity Maps v3 carbon intensity (average signal, hourly)."""

    name = NAME
    signal = Signal.AVERAGE

    def __init__(
        self,
        *,
        token: str | None,
        base_url: str = DEFAULT_BASE_URL,
        http: HttpClient | None = None,
        zones: Sequence[str] | None = None,
        has_forecast: bool = True,
        emission_factor_type: str = "lifecycle",
        token_env: str = TOKEN_ENV,
    ) -> None:
        if not token:
            raise missing_credential(NAME, "an API token", [token_env])
        if emission_factor_type not in ("lifecycle", "direct"):
            raise IntensityError(
                f"emission_factor_type must be 'lifecycle' or 'direct', not {emission_factor_type!r}"
            )
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.http = http or default_client()
        self._zones: tuple[str, ...] | None = tuple(zones) if zones is not None else None
        self.has_forecast = has_forecast
        self.emission_factor_type = emission_factor_type

    def __repr__(self) -> str:  # never show the token
        return f"ElectricityMapsProvider(base_url={self.base_url!r})"

    # -- interface -------------------------------------------------------------------

    def zones(self) -> Sequence[str]:
        """Configured zones, else the zone keys of ``GET /zones`` (fetched once)."""
        if self._zones is None:
            body = self._get("/zones", {})
            if not isinstance(body, Mapping) or not body:
                raise MalformedResponse(f"{NAME}: /zones did not answer a zone map")
            self._zones = tuple(sorted(str(k) for k in body))
        return self._zones

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        """Hourly forecast from ``now`` (the hour holding it) for ``horizon_s``."""
        now = require_utc(now, "now")
        if horizon_s <= 0:
            raise ValueError("horizon_s must be positive")
        if not self.has_forecast:
            raise EmptyData(f"{NAME}: forecasts are off for this account (forecast = false)")
        hours = min(MAX_HORIZON_H, max(1, math.ceil(horizon_s / 3600)))
        try:
            body = self._get(
                "/carbon-intensity/forecast", {"zone": zone, "horizonHours": str(hours)}
            )
        except HttpAuthError as exc:
            raise HttpAuthError(
                f"{exc} (the token may be wrong, or the plan may not include forecasts: "
                "set forecast = false in [providers.electricitymaps])",
                exc.status,
            ) from None
        rows = _list_field(body, "forecast")
        issued_at = now
        if isinstance(body, Mapping) and body.get("updatedAt") is not None:
            issued_at = time_of(body["updatedAt"], provider=NAME, field="updatedAt")
        points = self._points(zone, rows, kind=Kind.FORECAST, issued_at=issued_at)
        hour = now.replace(minute=0, second=0, microsecond=0)
        out = tidy(points, start=hour, end=now + timedelta(seconds=horizon_s))
        if not out:
            raise EmptyData(f"{NAME}: no forecast for {zone}")
        return out

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Hourly actuals over ``[start, end)`` from ``past-range``, 10 days per call."""
        start, end = history_range(start, end)
        points: list[IntensityPoint] = []
        for lo, hi in chunks(start, end, MAX_RANGE_S):
            params = {"zone": zone, "start": format_seconds_z(lo), "end": format_seconds_z(hi)}
            body = self._get("/carbon-intensity/past-range", params)
            points += self._points(zone, _list_field(body, "data"), kind=Kind.ACTUAL)
        out = tidy(points, start=start, end=end)
        if not out:
            raise EmptyData(f"{NAME}: no history for {zone} in the asked range")
        return out

    # -- extras ----------------------------------------------------------------------

    def latest(self, zone: str) -> IntensityPoint:
        """The latest hour's intensity (``/carbon-intensity/latest``)."""
        body = self._get("/carbon-intensity/latest", {"zone": zone})
        points = self._points(zone, [body], kind=Kind.ACTUAL)
        if not points:
            raise EmptyData(f"{NAME}: no latest value for {zone}")
        return points[0]

    def recent(self, zone: str) -> list[IntensityPoint]:
        """The past 24 hours (``/carbon-intensity/history``)."""
        body = self._get("/carbon-intensity/history", {"zone": zone})
        out = tidy(self._points(zone, _list_field(body, "history"), kind=Kind.ACTUAL))
        if not out:
            raise EmptyData(f"{NAME}: no recent history for {zone}")
        return out

    # -- helpers ---------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        query = dict(params)
        if "zone" in query and path.startswith("/carbon-intensity"):
            query["emissionFactorType"] = self.emission_factor_type
        try:
            return self.http.get_json(
                self.base_url + path,
                provider=NAME,
                params=query,
                headers={"auth-token": self._token},
            )
        except HttpStatusError as exc:
            if exc.status == 404 and "zone" in query:
                raise UnknownZone(f"{NAME}: zone {query['zone']!r} is unknown ({exc})") from None
            raise

    def _points(
        self,
        zone: str,
        rows: list[Any],
        *,
        kind: Kind,
        issued_at: datetime | None = None,
    ) -> list[IntensityPoint]:
        out: list[IntensityPoint] = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise MalformedResponse(f"{NAME}: entry {i} is not an object")
            value = number_or_none(
                row.get("carbonIntensity"), provider=NAME, field=f"[{i}].carbonIntensity"
            )
            if not usable(value):
                continue
            assert value is not None
            start = time_of(row.get("datetime"), provider=NAME, field=f"[{i}].datetime")
            out.append(stepped_point(zone, start, STEP_S, value, kind=kind, provider=NAME,
                                     signal=Signal.AVERAGE, issued_at=issued_at,
                                     estimated=bool(row.get("isEstimated") or False)))
        return out


def _list_field(body: Any, key: str) -> list[Any]:
    if not isinstance(body, Mapping):
        raise MalformedResponse(f"{NAME}: answer is not an object")
    rows = body.get(key)
    if rows is None:
        raise MalformedResponse(f"{NAME}: answer has no {key!r} list")
    if not isinstance(rows, list):
        raise MalformedResponse(f"{NAME}: {key!r} is not a list")
    return rows


#: The keys ``[providers.electricitymaps]`` may hold (for the config layer's unknown-key check).
OPTIONS: frozenset[str] = frozenset(
    {"base_url", "zones", "token", "token_env", "forecast", "emission_factor_type"}
)


def from_settings(
    options: Mapping[str, Any], env: Mapping[str, str], *, http: HttpClient | None = None
) -> ElectricityMapsProvider:
    """Build from ``[providers.electricitymaps]``.

    Keys: ``base_url``, ``token`` or ``token_env`` (default ``ELECTRICITYMAPS_TOKEN``),
    ``zones``, ``forecast`` (bool, default true), ``emission_factor_type``.
    """
    token, var = credential(options, env, "token", TOKEN_ENV)
    zones = zones_option(options, ()) if options.get("zones") is not None else None
    return ElectricityMapsProvider(
        token=token,
        base_url=base_url_option(options, DEFAULT_BASE_URL),
        http=http,
        zones=zones,
        has_forecast=bool(options.get("forecast", True)),
        emission_factor_type=str(options.get("emission_factor_type", "lifecycle")),
        token_env=var,
    )
