"""Provider names -> modules. Each module exposes ``from_settings(options, env)``.

Modules are imported only when their provider is used, so a CLI call that needs only the
cache does not pay for the HTTP stack.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from intensity.base import IntensityProvider
from intensity.errors import UnknownProvider

PROVIDERS: dict[str, str] = {
    "replay": "intensity.providers.replay",
    "static": "intensity.providers.static",
    "ukgrid": "intensity.providers.ukgrid",
    "electricitymaps": "intensity.providers.electricitymaps",
    "watttime": "intensity.providers.watttime",
    "energycharts": "intensity.providers.energycharts",
    "energinet": "intensity.providers.energinet",
}


def check_name(name: str) -> str:
    if name not in PROVIDERS:
        import difflib  # for a mistake only

        close = difflib.get_close_matches(name, list(PROVIDERS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(PROVIDERS))}"
        raise UnknownProvider(f"unknown provider {name!r}: {hint}")
    return name


def make_provider(
    name: str, options: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
    *, http: Any = None,
) -> IntensityProvider:
    """Build the named provider from its config table and the environment mapping.

    ``http`` (an :class:`~intensity.http.HttpClient`) is handed to providers that talk HTTP.
    """
    module = importlib.import_module(PROVIDERS[check_name(name)])
    if http is not None and "http" in inspect.signature(module.from_settings).parameters:
        provider = module.from_settings(dict(options or {}), dict(env or {}), http=http)
    else:
        provider = module.from_settings(dict(options or {}), dict(env or {}))
    assert isinstance(provider, IntensityProvider)
    return provider
