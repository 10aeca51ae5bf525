"""Every HTTP provider builds from its config table and the environment mapping."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from intensity.base import IntensityProvider
from intensity.errors import AuthError
from intensity.model import Signal
from intensity.registry import make_provider

ENV = {
    "ELECTRICITYMAPS_TOKEN": "tok",
    "WATTTIME_USERNAME": "u",
    "WATTTIME_PASSWORD": "p",
}


@pytest.mark.parametrize(
    ("name", "signal", "zone"),
    [
        ("ukgrid", Signal.AVERAGE, "GB-REGION-13"),
        ("electricitymaps", Signal.AVERAGE, None),
        ("watttime", Signal.MARGINAL, "CAISO_NORTH"),
        ("energycharts", Signal.AVERAGE, "DE"),
        ("energinet", Signal.AVERAGE, "DK-DK1"),
    ],
)
def test_registry_builds_each_provider(name: str, signal: Signal, zone: str | None) -> None:
    provider = make_provider(name, {"base_url": "http://127.0.0.1:9/"}, ENV)
    assert isinstance(provider, IntensityProvider)
    assert provider.name == name
    assert provider.signal is signal
    if zone is not None:
        assert provider.serves(zone)


@pytest.mark.parametrize(
    ("name", "variable"),
    [("electricitymaps", "ELECTRICITYMAPS_TOKEN"), ("watttime", "WATTTIME_PASSWORD")],
)
def test_missing_credentials_say_what_to_set(name: str, variable: str) -> None:
    env = {k: v for k, v in ENV.items() if k != variable}
    with pytest.raises(AuthError, match=variable):
        make_provider(name, {}, env)


def test_inline_credentials_work_and_stay_hidden() -> None:
    p = make_provider("watttime", {"username": "u", "password": "Zq9-inline-pw"}, {})
    assert "Zq9-inline-pw" not in repr(p)
    assert "Zq9-inline-pw" not in repr(vars(p).keys())


def test_intensity_never_imports_scheduler_or_probes() -> None:
    code = (
        "import sys\n"
        "import intensity.http, intensity.timefmt\n"
        "from intensity.providers import ukgrid, electricitymaps, watttime, energycharts, energinet\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('scheduler', 'probes')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    "name", ["ukgrid", "electricitymaps", "watttime", "energycharts", "energinet"]
)
def test_each_module_lists_its_option_keys(name: str) -> None:
    module = importlib.import_module(f"intensity.providers.{name}")
    assert {"base_url", "zones"} <= module.OPTIONS
