"""Builds the intensity service from settings: providers, cache (the store), fallbacks."""

from __future__ import annotations

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
from scheduler.errors import BadInput

if TYPE_CHECKING:
    from scheduler.storage.base import JobStore
    from scheduler.storage.lite import IntensityCache


def local_forecaster(fit_dir: Path) -> LocalForecaster | None:
    """The planning curve of the local forecaster (:func:`intensity.forecast.planning_forecast`,
    :data:`~intensity.forecast.PLANNING_CURVE`), its fits kept in ``fit_dir``: what submit,
    the daemon and ``carbonshift forecast`` plan on."""
    import importlib.util

    if importlib.util.find_spec("intensity.forecast") is None:
        return None

    def local(zone: str, history: Sequence[IntensityPoint], now: datetime, horizon_s: int) -> list[IntensityPoint]:
        # imported on first use: a submit served by a fresh cached forecast never needs it
        from intensity.forecast import planning_forecast

        return planning_forecast(zone, history, now, horizon_s, fit_dir=fit_dir)

    return local


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
        # the read timeout: [providers.NAME] timeout_s, else [intensity] timeout_s
        timeout = options.pop("timeout_s", None) or settings.intensity.get("timeout_s")
        http = None
        if name != "replay" and timeout is not None and math.isfinite(float(timeout)) and float(timeout) > 0:
            from intensity.http import HttpClient  # its session (requests): on first request

            http = HttpClient(connect_timeout_s=min(5.0, float(timeout)),
                              read_timeout_s=float(timeout))
        try:
            providers.append(make_provider(name, options, env, http=http))
        except IntensityError as exc:
            raise BadInput(f"provider {name!r} cannot be set up: {exc}") from None
    if callable(store):
        store = store()
    return IntensityService(
        providers,
        cache=store,
        local=local_forecaster(settings.forecast_fits_dir),
        cache_s=float(settings.intensity.get("cache_minutes", 30.0)) * 60.0,
        horizon_s=int(float(settings.intensity.get("horizon_h", 48.0)) * 3600),
        # a failed provider is skipped for a while, by every process sharing the store
        retry_failed_after_s=float(settings.intensity.get("retry_failed_after_minutes", 5.0)) * 60.0,
        failures=store,
    )
