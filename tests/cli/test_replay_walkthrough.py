"""The README's "A real day on two zones, offline" walkthrough, run as written (bash, the
real CLI in subprocesses, the real daemon on the accelerated clock, the real Electricity
Maps files): two relocatable jobs run, and history accounts them on actual intensities
from the replayed files. Also: `--replay` and `--clock` refuse bad values (exit 2, one line)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from intensity.providers.replay import read_trace

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "electricitymaps-portal"
FILES = {"GB": DATA / "GB_2023_hourly.csv", "DE": DATA / "DE-LU_2023_hourly.csv"}
CLI = f'{sys.executable} -c "import sys; from scheduler.cli import main; sys.exit(main())"'


def _env(tmp: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
            "XDG_DATA_HOME": str(tmp / "xdg-data"), "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
            "PYTHONPATH": str(REPO)}


def _walkthrough() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## A real day on two zones, offline", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the walkthrough's sh block is missing from the README"
    return match.group(1)


@pytest.mark.skipif(not all(f.is_file() for f in FILES.values()), reason="../shared/data is not here")
def test_the_readme_walkthrough_replays_two_zones(tmp_path: Path) -> None:
    block = _walkthrough()
    assert "../shared/data" in block
    script = (f"set -e\ncarbonshift() {{ {CLI} \"$@\"; }}\n"
              + block.replace("../shared/data", str(REPO.parent / "shared" / "data")))
    r = subprocess.run(["bash", "-c", script], cwd=str(tmp_path), env=_env(tmp_path),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    h = subprocess.run(["bash", "-c", f"{CLI} --db day.db history --format json"], cwd=str(tmp_path),
                       env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert h.returncode == 0, h.stderr
    rows = json.loads(h.stdout)
    assert sorted(row["name"] for row in rows) == ["eval", "finetune"]
    zone_of = {"local": "GB", "frankfurt": "DE"}
    for row in rows:
        assert row["state"] == "succeeded" and row["energy_kwh"] > 0, row
        assert (row["intensity_kind"], row["intensity_provider"]) == ("actual", "replay")
        assert row["actual_share"] == pytest.approx(1.0)  # a float sum of per-sample shares
        # the emission factor is the file's: within the zone's values over the run
        started, finished = (datetime.fromisoformat(row[k]) for k in ("started_at", "finished_at"))
        values = [p.intensity_g_per_kwh for p in read_trace(FILES[zone_of[row["site"]]]).points
                  if p.start < finished and p.end > started]
        g_per_kwh = row["emissions_g"] / row["energy_kwh"] / row["pue"]
        assert min(values) - 0.01 <= g_per_kwh <= max(values) + 0.01, (g_per_kwh, values)
        assert row["saved_g"] > 0, row  # the replayed night beats the evening


@pytest.mark.parametrize("args", [
    ("--replay", "GB", "queue"), ("--replay", "GB=", "queue"), ("--replay", "=x.csv", "queue"),
    ("--replay", "GB=/no/such/file.csv", "queue"), ("--clock", "tomorrow", "queue"),
    ("--clock", "2023-03-15T17:00Z*fast", "queue"), ("--clock", "2023-03-15T17:00Z*0", "queue"),
    ("--clock", "2023-03-15T17:00", "queue"),
])
def test_bad_replay_and_clock_values_are_exit_2_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = subprocess.run([sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
                        *args], cwd=str(tmp_path), env=_env(tmp_path), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "xdg-data").exists()  # nothing written


@pytest.mark.skipif(not FILES["GB"].is_file(), reason="../shared/data is not here")
def test_a_file_of_another_zone_is_refused(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
                        "--db", str(tmp_path / "x.db"), "--replay", f"FR={FILES['GB']}", "forecast", "FR"],
                       cwd=str(tmp_path), env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "zone GB's data" in r.stderr, r.stderr
