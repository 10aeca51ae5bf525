"""examples/cluster: the admin's commands work, the files say what the README says."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from scheduler.config import SCHEMA, load_settings

DIR = Path(__file__).resolve().parents[2] / "examples" / "cluster"
ROOT = DIR.parents[1]


def test_sites_script_stores_a_slurm_site_and_a_local_site(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "carbonshift"  # the console script, pointed at this checkout
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import sys; from scheduler.cli import "
                    f"main; sys.exit(main())' \"$@\"\n")
    shim.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "CARBONSHIFT_DB": f"sqlite:///{tmp_path / 'q.db'}"}
    subprocess.run(["sh", str(DIR / "sites.sh")], env=env, check=True, capture_output=True,
                   timeout=120)
    out = subprocess.run([str(shim), "site", "list", "--json"], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    sites = {s["name"]: s for s in json.loads(out)}
    assert sites["gpu-slurm"]["executor"] == "slurm" and sites["gpu-slurm"]["zone"] == "DE"
    assert sites["ws-fr"]["executor"] == "local" and sites["ws-fr"]["zone"] == "FR"


def test_env_file_names_known_settings_and_no_password() -> None:
    env: dict[str, str] = {}
    for line in (DIR / "cluster.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    assert re.fullmatch(r"postgresql\+psycopg://\w+@[\w.]+:\d+/\w+", env["CARBONSHIFT_DB"])
    for key in env:
        if key.startswith("CARBONSHIFT_") and key != "CARBONSHIFT_CONFIG":
            assert key.removeprefix("CARBONSHIFT_").lower() in SCHEMA, key
    settings = load_settings(env={k: v for k, v in env.items() if k != "CARBONSHIFT_CONFIG"})
    assert settings.lease_s == 60.0


def test_drop_in_keeps_jobs_running_and_restarts_within_the_orphan_grace() -> None:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string((DIR / "agent-override.conf").read_text())
    service = cp["Service"]
    assert service["KillMode"] == "process"
    assert service["Restart"] == "always"
    # a crashed agent's jobs wait lease_s / 3 for a successor (supervise.AgentWatch)
    assert float(service["RestartSec"]) < 60.0 / 3
    assert cp["Unit"]["StartLimitIntervalSec"] == "0"


def test_readme_links_its_neighbours_and_has_the_sqlite_section() -> None:
    text = (DIR / "README.md").read_text()
    assert "../systemd/README.md" in text and "../slurm/README.md" in text
    assert "## When to move from SQLite to PostgreSQL and what changes" in text
    for name in ("cluster.env.example", "sites.sh", "agent-override.conf"):
        assert (DIR / name).exists() and name in text
    assert os.access(DIR / "sites.sh", os.X_OK)
