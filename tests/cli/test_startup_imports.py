"""What `carbonshift submit` imports decides its start-up time (issue 2: <= 0.5 s): the HTTP
stack (`requests`, ~0.1 s) only when a provider is really asked, the local forecaster only
when a forecast must be made or extended, never the ORM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from intensity.model import IntensityPoint, Kind, Source
from scheduler.storage.store import open_store

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("requests", "urllib3", "intensity.forecast", "sqlalchemy.orm", "rich")

PROBE = f"""
import json, sys
from scheduler.cli import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _submit(tmp_path: Path, config: str) -> dict[str, object]:
    (tmp_path / "config.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(HOME=str(tmp_path), CARBONSHIFT_CONFIG=str(tmp_path / "config.toml"),
               CARBONSHIFT_DB=str(tmp_path / "cs.db"), PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", PROBE, "submit", "--duration", "1h", "--deadline", "12h",
                        "--", "true"], env=env, cwd=str(REPO), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_submit_served_from_a_fresh_cached_forecast_imports_nothing_heavy(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'cs.db'}")
    now = datetime.now(UTC)
    store.add_points([
        IntensityPoint("GB", now + timedelta(minutes=30 * i - 30), now + timedelta(minutes=30 * i),
                       150.0 + i, Kind.FORECAST, "ukgrid", issued_at=now, source=Source.PROVIDER)
        for i in range(100)
    ])
    store.close()
    got = _submit(tmp_path, 'default_zone = "GB"\n[intensity]\nproviders = ["ukgrid"]\n')
    assert got == {"code": 0, "loaded": []}


def test_a_submit_while_the_provider_backs_off_does_not_load_the_http_stack(tmp_path: Path) -> None:
    config = ('default_zone = "GB"\n[intensity]\nproviders = ["ukgrid"]\n'
              '[providers.ukgrid]\nbase_url = "http://carbonshift-offline.invalid"\n')
    first = _submit(tmp_path, config)
    assert "requests" in first["loaded"]  # type: ignore[operator]  # it was asked, and failed
    assert _submit(tmp_path, config)["loaded"] == []  # the static table at once: no HTTP
