"""Builds the intensity service from settings: providers, cache (the store), fallbacks."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intensity.chain import IntensityService, LocalForecaster
from intensity.errors import IntensityError
from intensity.model import IntensityPoint
from intensity.registry import make_provider
from scheduler.config import Settings
from scheduler.errors import BadInput, ConfigError

log = logging.getLogger("carbonshift.intensity")

if TYPE_CHECKING:
    from intensity.weather import WeatherProvider
    from scheduler.storage.base import JobStore
    from scheduler.storage.lite import IntensityCache


def local_forecaster(fit_dir: Path, weather: WeatherProvider | None = None,
                     weather_zones: frozenset[str] = frozenset(),
                     uncertainty: str = "off") -> LocalForecaster | None:
    """The planning curve of the local forecaster (:func:`intensity.forecast.planning_forecast`,
    :data:`~intensity.forecast.PLANNING_CURVE`), its fits kept in ``fit_dir``: what submit,
    the daemon and ``carbonshift forecast`` plan on (built for them by
    :func:`local_forecaster_for`).

    In ``weather_zones`` (``[intensity] weather``) it also takes the ``weather`` provider's
    inputs, and plans on the weather model's planning curve (``for_planning``: measured by
    ``bench_weather.py`` on DE, second half of 2021, 87% of the oracle's savings against 84%
    on its point forecast and 77% on the history-only curve); when the weather cannot be
    had, the zone falls back to the history-only curve, logged.

    ``uncertainty`` (``[intensity] forecast_uncertainty``, one of
    :data:`intensity.uncertainty.MODES`) scales that curve by the forecaster's own error
    by lead (:func:`intensity.uncertainty.with_uncertainty`); ``off`` leaves it as it is."""
    import importlib.util

    if importlib.util.find_spec("intensity.forecast") is None:
        return None

    def local(zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int) -> list[IntensityPoint]:
        # imported on first use: a submit served by a fresh cached forecast never needs it
        from intensity.forecast import local_forecast, planning_forecast

        if weather is not None and zone in weather_zones:
            try:
                inputs = weather.weather(zone, now, horizon_s)
            except IntensityError as exc:
                log.warning("no weather for %s (%s): the local forecast uses history only", zone, exc)
            else:
                return local_forecast(zone, history, now, horizon_s, for_planning=True,
                                      fit_dir=fit_dir, weather=inputs)
        return planning_forecast(zone, history, now, horizon_s, fit_dir=fit_dir)

    if uncertainty == "off":
        return local
    from intensity.uncertainty import with_uncertainty

    # the error model is the history-only curve's, re-run on the zone's own past
    return with_uncertainty(local, uncertainty,
                            backtest=functools.partial(_planning_forecast, fit_dir=fit_dir))


def _planning_forecast(zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int,
                       *, fit_dir: Path) -> list[IntensityPoint]:
    from intensity.forecast import planning_forecast

    return planning_forecast(zone, history, now, horizon_s, fit_dir=fit_dir)


def local_forecaster_for(settings: Settings) -> LocalForecaster | None:
    """:func:`local_forecaster` as ``settings`` configure it (fits folder, weather zones):
    the one submit, the daemon and ``carbonshift forecast --provider`` share."""
    from intensity.uncertainty import MODES

    uncertainty = str(settings.intensity.get("forecast_uncertainty") or "off")
    if uncertainty not in MODES:
        raise ConfigError(f"[intensity] forecast_uncertainty = {uncertainty!r} should be one of "
                          f"{', '.join(MODES)}")
    weather = _weather_provider(settings, functools.partial(_http_for, settings))
    return local_forecaster(settings.forecast_fits_dir, weather,
                            frozenset(str(z) for z in settings.intensity.get("weather") or ()),
                            uncertainty)


def _weather_provider(settings: Settings, http_for: Callable[[str], Any]) -> WeatherProvider | None:
    """The Open-Meteo provider when ``[intensity] weather`` names zones, else ``None``."""
    zones = frozenset(str(z) for z in settings.intensity.get("weather") or ())
    if not zones:
        return None
    from intensity.providers import openmeteo

    options = dict(settings.providers.get(openmeteo.NAME, {}))
    try:
        provider = openmeteo.from_settings(options, {}, http=http_for(openmeteo.NAME),
                                           cache_dir=settings.weather_cache_dir)
    except IntensityError as exc:
        raise BadInput(f"provider {openmeteo.NAME!r} cannot be set up: {exc}") from None
    missing = sorted(zones - set(provider.zones()))
    if missing:
        raise BadInput(
            f"[intensity] weather names {', '.join(missing)}, which has no weather points: add "
            f'[providers.openmeteo] points = ["{missing[0]}=LABEL:LAT,LON", ...]')
    return provider


def _http_for(settings: Settings, name: str) -> Any:
    """An HTTP client with the read timeout of ``[providers.NAME] timeout_s``, else
    ``[intensity] timeout_s``; ``None`` (the default client) when neither is set."""
    timeout = settings.providers.get(name, {}).get("timeout_s") or settings.intensity.get("timeout_s")
    if timeout is None or not math.isfinite(float(timeout)) or float(timeout) <= 0:
        return None
    from intensity.http import HttpClient  # its session (requests): on first request

    return HttpClient(connect_timeout_s=min(5.0, float(timeout)), read_timeout_s=float(timeout))


def build_intensity_service(
    settings: Settings, env: Mapping[str, str],
    store: JobStore | IntensityCache | Callable[[], JobStore | IntensityCache] | None,
) -> IntensityService:
    """Providers named in ``[intensity] providers`` (best first), the store as cache, the
    local forecaster, then the static table and flat as the last links. ``store`` may be a
    function giving it: it is opened only once the providers are set up, so a bad trace or
    provider is refused before a new database is created."""
    names = [n for n in settings.intensity.get("providers") or [] if n != "static"]
    providers = []
    for name in names:
        options: dict[str, Any] = dict(settings.providers.get(name, {}))
        if name == "replay" and not options.get("trace") and settings.intensity.get("trace"):
            options["trace"] = settings.intensity["trace"]
        options.pop("timeout_s", None)
        http = _http_for(settings, name) if name != "replay" else None
        try:
            providers.append(make_provider(name, options, env, http=http))
        except IntensityError as exc:
            raise BadInput(f"provider {name!r} cannot be set up: {exc}") from None
    if callable(store):
        store = store()
    return IntensityService(
        providers,
        cache=store,
        local=local_forecaster_for(settings),
        cache_s=float(settings.intensity.get("cache_minutes", 30.0)) * 60.0,
        horizon_s=int(float(settings.intensity.get("horizon_h", 48.0)) * 3600),
        # a failed provider is skipped for a while, by every process sharing the store
        retry_failed_after_s=float(settings.intensity.get("retry_failed_after_minutes", 5.0)) * 60.0,
        failures=store,
    )
