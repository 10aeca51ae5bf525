"""WattTime API v3 (https://api.watttime.org): marginal operating emissions rate (MOER).

Authentication: ``GET /login`` with HTTP basic auth (username, password) answers
``{"token": ...}``; the token is sent as ``Authorization: Bearer`` and lives 30 minutes.
It is fetched on first use, refreshed before it expires, and refreshed once more when a
call answers 401 (a second 401 is an :class:`~intensity.errors.AuthError`). A 403 (the
plan does not cover that region) is not retried and does not re-login.

Zones are WattTime region abbreviations, used verbatim (``CAISO_NORTH``, ``PSCO``...);
the ``zones`` option lists those the account may use (default: ``CAISO_NORTH``, the free
region). :meth:`WattTimeProvider.region_from_loc` finds the region of a coordinate.

Units: WattTime answers ``lbs_co2_per_mwh``; this module converts ONCE, in
:func:`to_g_per_kwh` (1 lb/MWh = 453.592 g / 1000 kWh = 0.453592 g/kWh). Signal: every
point is :attr:`~intensity.model.Signal.MARGINAL`. Marginal and average series must never
be compared with each other: :func:`require_same_signal` refuses it.

Endpoints
    forecast:   ``/v3/forecast?region=&signal_type=co2_moer&horizon_hours=`` (the current
                forecast; ``now`` only clips it), ``issued_at`` = ``meta.generated_at``.
    vintages:   ``/v3/forecast/historical`` (:meth:`forecast_vintages`), every issue kept.
    history:    ``/v3/historical?region=&start=&end=&signal_type=co2_moer``, 30 days a call.
    region:     ``/v3/region-from-loc?latitude=&longitude=&signal_type=co2_moer``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from intensity.base import IntensityProvider
from intensity.errors import (
    AuthError,
    EmptyData,
    IntensityError,
    MalformedResponse,
    UnknownZone,
)
from intensity.http import HttpAuthError, HttpClient, HttpStatusError, default_client
from intensity.model import IntensityPoint, Kind, Signal
from intensity.providers._common import (
    base_url_option,
    credential,
    missing_credential,
    number_or_none,
    step_of,
    stepped_point,
    tidy,
    time_of,
    usable,
    zones_option,
)
from intensity.timefmt import chunks, format_seconds_z, history_range, require_utc

NAME = "watttime"
DEFAULT_BASE_URL = "https://api.watttime.org"
USERNAME_ENV = "WATTTIME_USERNAME"
PASSWORD_ENV = "WATTTIME_PASSWORD"
SIGNAL_TYPE = "co2_moer"
DEFAULT_ZONES = ("CAISO_NORTH",)

#: Grams per pound (avoirdupois).
G_PER_LB = 453.592
#: lbs CO2 per MWh -> g CO2 per kWh: 453.592 g/lb / 1000 kWh/MWh.
G_PER_KWH_PER_LBS_PER_MWH = G_PER_LB / 1000.0
#: Token lifetime, and how long before its end we fetch a new one.
TOKEN_LIFETIME_S = 30 * 60
TOKEN_MARGIN_S = 2 * 60
#: Longest ``/v3/historical`` range per call (WattTime allows 32 days).
MAX_RANGE_S = 30 * 24 * 3600
MAX_HORIZON_H = 72
DEFAULT_STEP_S = 300


class SignalMismatch(IntensityError):
    """Marginal and average intensities were about to be compared; they measure different things."""


def to_g_per_kwh(value: float, units: str) -> float:
    """Convert one WattTime value to gCO2/kWh (the package's only unit)."""
    unit = units.strip().lower()
    if unit == "lbs_co2_per_mwh":
        return value * G_PER_KWH_PER_LBS_PER_MWH
    if unit in ("kg_co2_per_mwh", "g_co2_per_kwh"):
        return value
    raise MalformedResponse(
        f"{NAME}: units {units!r} are not an emission rate (expected lbs_co2_per_mwh)"
    )


def require_same_signal(*series: Iterable[IntensityPoint]) -> Signal:
    """The one signal shared by every point of ``series``; :class:`SignalMismatch` if mixed.

    Call before comparing or combining intensity series (a WattTime MOER against an
    Electricity Maps average, say).
    """
    signals = {p.signal for s in series for p in s}
    if len(signals) > 1:
        raise SignalMismatch(
            "refusing to compare marginal and average carbon intensity in one comparison"
        )
    return signals.pop() if signals else Signal.AVERAGE


class WattTimeProvider(IntensityProvider):
    """WattTime v3 marginal (MOER) intensity, converted to gCO2/kWh."""

    name = NAME
    signal = Signal.MARGINAL

    def __init__(
        self,
        *,
        username: str | None,
        password: str | None,
        base_url: str = DEFAULT_BASE_URL,
        http: HttpClient | None = None,
        zones: Sequence[str] = DEFAULT_ZONES,
        clock: Callable[[], float] = time.monotonic,
        username_env: str = USERNAME_ENV,
        password_env: str = PASSWORD_ENV,
    ) -> None:
        missing = [
            var for var, value in ((username_env, username), (password_env, password)) if not value
        ]
        if missing:
            raise missing_credential(NAME, "a username and password", missing)
        assert username is not None and password is not None
        self._username = username
        self._password = password
        self.base_url = base_url.rstrip("/")
        self.http = http or default_client()
        self._zones = tuple(zones)
        self._clock = clock
        self._token: str | None = None
        self._token_at = 0.0
        #: How many times a token was fetched (for diagnostics and tests).
        self.logins = 0

    def __repr__(self) -> str:  # never show credentials
        return f"WattTimeProvider(base_url={self.base_url!r})"

    # -- interface -------------------------------------------------------------------

    def zones(self) -> Sequence[str]:
        return self._zones

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> list[IntensityPoint]:
        """The current MOER forecast, clipped to ``[now, now + horizon_s)``."""
        now = require_utc(now, "now")
        if horizon_s <= 0:
            raise ValueError("horizon_s must be positive")
        hours = min(MAX_HORIZON_H, max(1, math.ceil(horizon_s / 3600)))
        body = self._get(
            "/v3/forecast",
            {"region": zone, "signal_type": SIGNAL_TYPE, "horizon_hours": str(hours)},
        )
        data, meta = _data_meta(body)
        issued_at = now
        if meta.get("generated_at") is not None:
            issued_at = time_of(meta["generated_at"], provider=NAME, field="meta.generated_at")
        points = self._points(zone, data, meta, kind=Kind.FORECAST, issued_at=issued_at)
        out = tidy(points, start=now, end=now + timedelta(seconds=horizon_s))
        if not out:
            raise EmptyData(f"{NAME}: no forecast for {zone}")
        return out

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Historical MOER over ``[start, end)``, 30 days per call."""
        start, end = history_range(start, end)
        points: list[IntensityPoint] = []
        for lo, hi in chunks(start, end, MAX_RANGE_S):
            body = self._get(
                "/v3/historical",
                {
                    "region": zone,
                    "signal_type": SIGNAL_TYPE,
                    "start": format_seconds_z(lo),
                    "end": format_seconds_z(hi),
                },
            )
            data, meta = _data_meta(body)
            points += self._points(zone, data, meta, kind=Kind.ACTUAL, issued_at=None)
        out = tidy(points, start=start, end=end)
        if not out:
            raise EmptyData(f"{NAME}: no history for {zone} in the asked range")
        return out

    # -- extras ----------------------------------------------------------------------

    def forecast_vintages(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Every forecast issued in ``[start, end)``, each point with its ``issued_at``."""
        start = require_utc(start, "start")
        end = require_utc(end, "end")
        body = self._get(
            "/v3/forecast/historical",
            {
                "region": zone,
                "signal_type": SIGNAL_TYPE,
                "start": format_seconds_z(start),
                "end": format_seconds_z(end),
            },
        )
        data, meta = _data_meta(body)
        out: list[IntensityPoint] = []
        for i, issue in enumerate(data):
            if not isinstance(issue, Mapping) or not isinstance(issue.get("forecast"), list):
                raise MalformedResponse(f"{NAME}: data[{i}] has no forecast list")
            issued_at = time_of(
                issue.get("generated_at"), provider=NAME, field=f"data[{i}].generated_at"
            )
            out += tidy(
                self._points(zone, issue["forecast"], meta, kind=Kind.FORECAST, issued_at=issued_at)
            )
        if not out:
            raise EmptyData(f"{NAME}: no forecast vintages for {zone} in the asked range")
        return out

    def region_from_loc(self, latitude: float, longitude: float) -> str:
        """The WattTime region (a zone of this provider) covering a coordinate."""
        try:
            body = self._get(
                "/v3/region-from-loc",
                {
                    "latitude": f"{latitude:.6f}",
                    "longitude": f"{longitude:.6f}",
                    "signal_type": SIGNAL_TYPE,
                },
            )
        except HttpStatusError as exc:
            if 400 <= exc.status < 500:
                raise UnknownZone(
                    f"{NAME}: no region covers latitude {latitude}, longitude {longitude}"
                ) from None
            raise
        region = body.get("region") if isinstance(body, Mapping) else None
        if not isinstance(region, str) or not region:
            raise MalformedResponse(f"{NAME}: region-from-loc answered no region")
        return region

    # -- auth and requests -----------------------------------------------------------

    def _login(self) -> str:
        body = self.http.get_json(
            self.base_url + "/login", provider=NAME, auth=(self._username, self._password)
        )
        token = body.get("token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise MalformedResponse(f"{NAME}: /login answered no token")
        self._token = token
        self._token_at = self._clock()
        self.logins += 1
        return token

    def _current_token(self) -> str:
        fresh = self._clock() - self._token_at < TOKEN_LIFETIME_S - TOKEN_MARGIN_S
        if self._token is not None and fresh:
            return self._token
        return self._login()

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = self.base_url + path
        for attempt in (1, 2):
            token = self._current_token()
            try:
                return self.http.get_json(
                    url,
                    provider=NAME,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except HttpAuthError as exc:
                if exc.status == 401 and attempt == 1:
                    self._token = None  # expired or revoked: log in again, once
                    continue
                raise
        raise AuthError(f"{NAME}: token refused twice")  # pragma: no cover

    def _points(
        self,
        zone: str,
        rows: list[Any],
        meta: Mapping[str, Any],
        *,
        kind: Kind,
        issued_at: datetime | None,
    ) -> list[IntensityPoint]:
        units = meta.get("units")
        if not isinstance(units, str):
            raise MalformedResponse(f"{NAME}: answer does not say its units")
        period = meta.get("data_point_period_seconds")
        parsed: list[tuple[datetime, float]] = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise MalformedResponse(f"{NAME}: data[{i}] is not an object")
            value = number_or_none(row.get("value"), provider=NAME, field=f"data[{i}].value")
            if not usable(value):
                continue
            assert value is not None
            start = time_of(row.get("point_time"), provider=NAME, field=f"data[{i}].point_time")
            parsed.append((start, to_g_per_kwh(value, units)))
        if isinstance(period, int | float) and not isinstance(period, bool) and period > 0:
            step_s = int(period)
        else:
            step_s = step_of(sorted(t for t, _ in parsed), DEFAULT_STEP_S)
        return [stepped_point(zone, start, step_s, g_per_kwh, kind=kind, provider=NAME,
                              signal=Signal.MARGINAL, issued_at=issued_at)
                for start, g_per_kwh in parsed]


def _data_meta(body: Any) -> tuple[list[Any], Mapping[str, Any]]:
    if not isinstance(body, Mapping):
        raise MalformedResponse(f"{NAME}: answer is not an object")
    data = body.get("data")
    meta = body.get("meta")
    if not isinstance(data, list):
        raise MalformedResponse(f"{NAME}: answer has no 'data' list")
    if not isinstance(meta, Mapping):
        raise MalformedResponse(f"{NAME}: answer has no 'meta' object")
    return data, meta


#: The keys ``[providers.watttime]`` may hold (for the config layer's unknown-key check).
OPTIONS: frozenset[str] = frozenset(
    {"base_url", "zones", "username", "password", "username_env", "password_env"}
)


def from_settings(
    options: Mapping[str, Any], env: Mapping[str, str], *, http: HttpClient | None = None
) -> WattTimeProvider:
    """Build from ``[providers.watttime]``.

    Keys: ``base_url``; ``username``/``password`` or ``username_env``/``password_env``
    (defaults ``WATTTIME_USERNAME``/``WATTTIME_PASSWORD``); ``zones``.
    """
    username, user_var = credential(options, env, "username", USERNAME_ENV)
    password, pass_var = credential(options, env, "password", PASSWORD_ENV)
    return WattTimeProvider(
        username=username,
        password=password,
        base_url=base_url_option(options, DEFAULT_BASE_URL),
        http=http,
        zones=zones_option(options, DEFAULT_ZONES),
        username_env=user_var,
        password_env=pass_var,
    )
