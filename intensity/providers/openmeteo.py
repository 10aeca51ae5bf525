"""Open-Meteo's keyless forecast API (https://api.open-meteo.com/v1/forecast): weather
inputs for the local forecaster (:mod:`intensity.weather`), not intensities.

``GET /v1/forecast?latitude=54.2,51.0&longitude=8.9,10.5&hourly=wind_speed_100m,
shortwave_radiation,temperature_2m&wind_speed_unit=ms&timezone=GMT&past_days=92&
forecast_days=3`` answers, for several coordinates, a JSON list with one object per
coordinate (one coordinate: the object alone): ``latitude``, ``longitude``,
``utc_offset_seconds`` (0 for GMT), ``timezone``, ``hourly_units`` and ``hourly``:
``{"time": ["2024-03-01T00:00", ...], "wind_speed_100m": [...], ...}``, the times naive
GMT wall clock, a missing value ``null``. A bad request answers HTTP 400 with
``{"error": true, "reason": "..."}``.

Per zone, a few points (:data:`DEFAULT_POINTS`, or ``points`` in the config) stand for
where the zone's wind and sun are: wind speed at 100 m (hub height, m/s), shortwave
radiation (W/m², the preceding hour's mean) and temperature at 2 m (°C, demand) at each
point become inputs named ``<variable>@<point>``. ``past_days`` of the recent past come
with the forecast (the forecaster trains on them), and each answer is merged into what
was fetched before, so the training span grows while the process (or, with
``cache_dir``, the data folder) lives. An answer is reused for ``cache_s``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from intensity.errors import EmptyData, IntensityError, MalformedResponse, UnknownZone
from intensity.http import HttpClient, default_client
from intensity.providers._common import base_url_option, number_or_none, time_of
from intensity.timefmt import parse_utc, require_utc
from intensity.weather import WeatherProvider, WeatherSeries, merge

log = logging.getLogger(__name__)

NAME = "openmeteo"
DEFAULT_BASE_URL = "https://api.open-meteo.com"
VARIABLES = ("wind_speed_100m", "shortwave_radiation", "temperature_2m")
STEP_S = 3600
#: The API's longest look-back.
MAX_PAST_DAYS = 92
#: The API's longest forecast.
MAX_FORECAST_DAYS = 16
#: Hours of merged weather kept per zone (the forecaster fits on at most 540 days).
MAX_KEPT_H = 560 * 24


@dataclass(frozen=True)
class Point:
    """A place whose weather stands for part of a zone."""

    label: str
    latitude: float
    longitude: float


#: Where each zone's weather is read. DE (and DE-LU, its bidding zone): the North Sea coast
#: of Schleswig-Holstein (onshore wind, near the offshore farms), Thuringia (the middle of
#: the country: wind in the east, demand) and Bavaria (most of the solar capacity). GB:
#: the Scottish central belt (most of the onshore wind), the Midlands (demand) and the
#: south of England (solar).
DEFAULT_POINTS: dict[str, tuple[Point, ...]] = {
    "DE": (Point("north", 54.2, 8.9), Point("central", 51.0, 10.5), Point("south", 48.5, 11.5)),
    "GB": (Point("scotland", 56.0, -3.9), Point("midlands", 52.6, -1.5), Point("south", 51.0, -1.3)),
}
DEFAULT_POINTS["DE-LU"] = DEFAULT_POINTS["DE"]

_POINT = re.compile(r"^\s*([^=\s]+)\s*=\s*([A-Za-z0-9_-]+)\s*:\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*$")


def parse_points(entries: Sequence[str]) -> dict[str, tuple[Point, ...]]:
    """``["DE=north:54.2,8.9", ...]`` as points by zone (a zone named replaces its defaults)."""
    out: dict[str, list[Point]] = {}
    for entry in entries:
        m = _POINT.match(str(entry))
        if not m:
            raise IntensityError(
                f"{NAME}: bad point {entry!r}: write ZONE=LABEL:LATITUDE,LONGITUDE, "
                'e.g. "DE=north:54.2,8.9"')
        zone, label, lat, lon = m.group(1), m.group(2), float(m.group(3)), float(m.group(4))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise IntensityError(f"{NAME}: point {entry!r} is off the globe: latitude -90..90, "
                                 "longitude -180..180")
        if any(p.label == label for p in out.get(zone, [])):
            raise IntensityError(f"{NAME}: zone {zone} has two points named {label!r}")
        out.setdefault(zone, []).append(Point(label, lat, lon))
    return {z: tuple(ps) for z, ps in out.items()}


class OpenMeteoProvider(WeatherProvider):
    """Hourly wind at 100 m, shortwave radiation and temperature at a few points per zone."""

    name = NAME

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: HttpClient | None = None,
        points: Mapping[str, Sequence[Point]] | None = None,
        past_days: int = MAX_PAST_DAYS,
        cache_s: float = 3600.0,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not 0 <= past_days <= MAX_PAST_DAYS:
            raise IntensityError(f"{NAME}: past_days must be 0..{MAX_PAST_DAYS}, not {past_days}")
        self.base_url = base_url.rstrip("/")
        self.http = http or default_client()
        self.points = {z: tuple(ps) for z, ps in (points or DEFAULT_POINTS).items() if ps}
        self.past_days = past_days
        self.cache_s = cache_s
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._kept: dict[str, tuple[datetime, WeatherSeries]] = {}

    def zones(self) -> Sequence[str]:
        return tuple(self.points)

    def weather(self, zone: str, now: datetime, horizon_s: int) -> WeatherSeries:
        """The zone's inputs from (at most) ``past_days`` before ``now`` to past
        ``now + horizon_s``, merged with what was kept from earlier answers."""
        now = require_utc(now, "now")
        if horizon_s <= 0:
            raise ValueError("horizon_s must be positive")
        if zone not in self.points:
            raise UnknownZone(f"{NAME} has weather points for {', '.join(self.points)}, not {zone!r}")
        kept = self._kept.get(zone) or self._load(zone)
        need_end = now + timedelta(seconds=horizon_s)
        if kept is not None:
            fetched_at, series = kept
            if 0 <= (now - fetched_at).total_seconds() < self.cache_s and series.end >= need_end:
                return series
        fresh = self._fetch(zone, now, horizon_s)
        series = fresh if kept is None else merge([kept[1], fresh])
        series = _trim(series, MAX_KEPT_H)
        self._kept[zone] = (now, series)
        self._save(zone, now, series)
        return series

    # -- HTTP ---------------------------------------------------------------------------

    def _fetch(self, zone: str, now: datetime, horizon_s: int) -> WeatherSeries:
        pts = self.points[zone]
        days = min(MAX_FORECAST_DAYS, math.ceil(horizon_s / 86400) + 1)
        params = {
            "latitude": ",".join(f"{p.latitude:g}" for p in pts),
            "longitude": ",".join(f"{p.longitude:g}" for p in pts),
            "hourly": ",".join(VARIABLES),
            "wind_speed_unit": "ms",
            "timezone": "GMT",
            "past_days": str(self.past_days),
            "forecast_days": str(days),
        }
        body = self.http.get_json(f"{self.base_url}/v1/forecast", provider=NAME, params=params)
        if isinstance(body, Mapping) and body.get("error"):
            raise MalformedResponse(f"{NAME}: the service refused: {str(body.get('reason'))[:120]}")
        answers = [body] if isinstance(body, Mapping) else body
        if not isinstance(answers, list) or len(answers) != len(pts):
            raise MalformedResponse(
                f"{NAME}: expected {len(pts)} location answers, got "
                f"{len(answers) if isinstance(answers, list) else type(answers).__name__}")
        columns: dict[str, dict[datetime, float]] = {}
        for p, answer in zip(pts, answers, strict=True):
            for var, values in _hourly(answer, p.label).items():
                columns[f"{var}@{p.label}"] = values
        times = sorted({t for col in columns.values() for t in col})
        if not times:
            raise EmptyData(f"{NAME}: no hourly weather for {zone}")
        start = times[0]
        n = round((times[-1] - start).total_seconds() / STEP_S) + 1
        out: dict[str, tuple[float, ...]] = {}
        for name, col in columns.items():
            row = [math.nan] * n
            for t, v in col.items():
                row[round((t - start).total_seconds() / STEP_S)] = v
            out[name] = tuple(row)
        series = WeatherSeries(zone, start, STEP_S, out, NAME, issued_at=now)
        if not series.usable():
            raise EmptyData(f"{NAME}: the weather for {zone} has an input with no values")
        return series

    # -- the kept copy -----------------------------------------------------------------------

    def _path(self, zone: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{re.sub(r'[^A-Za-z0-9_.]', '_', zone)}.weather.json"

    def _load(self, zone: str) -> tuple[datetime, WeatherSeries] | None:
        path = self._path(zone)
        if path is None:
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            names = {f"{v}@{p.label}" for p in self.points[zone] for v in VARIABLES}
            values = {k: tuple(math.nan if x is None else float(x) for x in col)
                      for k, col in data["values"].items()}
            if set(values) != names:
                return None  # the points changed: start again
            series = WeatherSeries(zone, parse_utc(data["start"]), STEP_S, values, NAME,
                                   parse_utc(data["fetched_at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.debug("ignoring unreadable weather cache %s: %s", path, exc)
            return None
        assert series.issued_at is not None
        return series.issued_at, series

    def _save(self, zone: str, now: datetime, series: WeatherSeries) -> None:
        path = self._path(zone)
        if path is None:
            return
        body = json.dumps({
            "zone": zone, "start": series.start.isoformat(), "fetched_at": now.isoformat(),
            "values": {k: [None if not math.isfinite(x) else x for x in col]
                       for k, col in series.values.items()},
        })
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".weather-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(body)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("could not keep the weather in %s: %s", path, exc)


def _hourly(answer: Any, label: str) -> dict[str, dict[datetime, float]]:
    """One location's ``hourly`` block as ``{variable: {time: value}}`` (``null`` -> nan)."""
    where = f"location {label}"
    if not isinstance(answer, Mapping):
        raise MalformedResponse(f"{NAME}: {where} is not an object")
    offset = answer.get("utc_offset_seconds", 0)
    if offset not in (0, None):
        raise MalformedResponse(f"{NAME}: {where} is not in GMT (utc_offset_seconds={offset!r})")
    hourly = answer.get("hourly")
    if not isinstance(hourly, Mapping) or not isinstance(hourly.get("time"), list):
        raise MalformedResponse(f"{NAME}: {where} has no hourly.time list")
    times = [time_of(t, provider=NAME, field=f"{where} hourly.time", naive_is_utc=True)
             for t in hourly["time"]]
    out: dict[str, dict[datetime, float]] = {}
    for var in VARIABLES:
        values = hourly.get(var)
        if not isinstance(values, list) or len(values) != len(times):
            raise MalformedResponse(f"{NAME}: {where} has no hourly.{var} list as long as its times")
        col: dict[datetime, float] = {}
        for i, (t, raw) in enumerate(zip(times, values, strict=True)):
            v = number_or_none(raw, provider=NAME, field=f"{where} hourly.{var}[{i}]")
            col[t] = math.nan if v is None or not math.isfinite(v) else v
        out[var] = col
    return out


def _trim(series: WeatherSeries, max_steps: int) -> WeatherSeries:
    drop = len(series) - max_steps
    if drop <= 0:
        return series
    return WeatherSeries(series.zone, series.start + timedelta(seconds=drop * series.step_s),
                         series.step_s, {k: v[drop:] for k, v in series.values.items()},
                         series.provider, series.issued_at)


#: The keys ``[providers.openmeteo]`` may hold (for the config layer's unknown-key check).
OPTIONS: frozenset[str] = frozenset({"base_url", "points", "past_days", "timeout_s"})


def from_settings(
    options: Mapping[str, Any], env: Mapping[str, str], *, http: HttpClient | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> OpenMeteoProvider:
    """Build from ``[providers.openmeteo]`` (``base_url``, ``points``, ``past_days``); keyless.

    ``points`` entries replace the default points of the zones they name."""
    del env
    raw = options.get("points")
    if raw is not None and (isinstance(raw, str) or not isinstance(raw, Sequence)):
        raise IntensityError(f'{NAME}: points must be a list, e.g. points = ["DE=north:54.2,8.9"]')
    points = {**DEFAULT_POINTS, **parse_points([str(e) for e in raw or ()])}
    past = options.get("past_days")
    try:
        past_days = MAX_PAST_DAYS if past is None else int(past)
    except (TypeError, ValueError):
        raise IntensityError(f"{NAME}: past_days must be a whole number, not {past!r}") from None
    return OpenMeteoProvider(base_url=base_url_option(options, DEFAULT_BASE_URL), http=http,
                             points=points, past_days=past_days, cache_dir=cache_dir)
