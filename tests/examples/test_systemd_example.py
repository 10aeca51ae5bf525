"""examples/systemd: every ExecStart is a command line carbonshift accepts; the config is valid."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import tomllib
import warnings
from pathlib import Path

import click
import pytest

from scheduler.cli import cli
from scheduler.config import read_config_file

DIR = Path(__file__).resolve().parents[2] / "examples" / "systemd"
UNITS = sorted(DIR.glob("*.service"))


def _unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(path.read_text())
    return cp


def _parse(argv: list[str]) -> click.Context:
    """Parse a carbonshift command line down to its subcommand, as the CLI would."""
    ctx = cli.make_context("carbonshift", list(argv), resilient_parsing=False)
    with warnings.catch_warnings():  # click 8.2 deprecates protected_args; 9.0 folds it into args
        warnings.simplefilter("ignore", DeprecationWarning)
        name, *rest = [*ctx.protected_args, *ctx.args]
    cmd = cli.get_command(ctx, name)
    assert cmd is not None, f"unknown command {name!r}"
    return cmd.make_context(name, list(rest), parent=ctx)


def test_there_is_a_user_service_and_a_per_site_template() -> None:
    assert {u.name for u in UNITS} == {"carbonshift.service", "carbonshift-agent@.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_exec_start_is_a_valid_carbonshift_command(unit: Path) -> None:
    cp = _unit(unit)
    assert cp["Service"]["KillMode"] == "process"  # stopping the daemon leaves jobs running
    assert cp["Install"]["WantedBy"]
    argv = shlex.split(cp["Service"]["ExecStart"].replace("%i", "lab-a").replace("%h", "/home/u"))
    assert Path(argv[0]).name == "carbonshift"
    ctx = _parse(argv[1:])
    assert ctx.info_name == "run"
    if "@" in unit.name:
        assert ctx.params["sites"] == ("lab-a",)


def test_config_and_env_file_are_consistent() -> None:
    cfg = DIR / "config.toml"
    data = read_config_file(cfg)  # unknown keys or bad types would raise
    assert set(data["sites"]) == {"lab-a", "lab-b"}
    for opts in tomllib.loads(cfg.read_text()).get("providers", {}).values():
        assert not {"token", "password"} & set(opts)  # secrets live in the env file only
    env = dict(line.split("=", 1) for line in (DIR / "carbonshift.env.example").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["CARBONSHIFT_DB"].startswith("postgresql+psycopg://")
    assert data["providers"]["electricitymaps"]["token_env"] in env
    from scheduler.reporting import CarbonPrice

    assert CarbonPrice.parse(data["carbon_price"]).currency == "EUR"
    from intensity.registry import PROVIDERS

    assert set(data["intensity"]["providers"]) <= set(PROVIDERS) | {"static"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_units(tmp_path: Path) -> None:
    for unit in UNITS:
        text = unit.read_text().replace("%h/.local/bin/carbonshift", "/bin/true").replace(
            "/opt/carbonshift/bin/carbonshift", "/bin/true")
        target = tmp_path / unit.name.replace("@.service", "@lab-a.service")
        target.write_text(text)
        out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(target)],
                             capture_output=True, text=True, timeout=60)
        assert "Unknown key" not in out.stderr and "Unknown section" not in out.stderr, out.stderr
