"""``history --format codecarbon`` through the real CLI, read back the way CodeCarbon users
read ``emissions.csv``: pandas with CodeCarbon's own column list (its ``EmissionsData``
dataclass, where codecarbon is installed)."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.codecarbon import COLUMNS
from tests.public.offline import cs, offline_env

pd = pytest.importorskip("pandas")


def _env(tmp_path: Path) -> dict[str, str]:
    return offline_env(tmp_path, sampling_s=0.1)


def _cs(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cs(tmp_path, *args, env=_env(tmp_path))


def test_our_columns_are_codecarbons() -> None:
    emissions_data = pytest.importorskip("codecarbon.output_methods.emissions_data")
    assert tuple(f.name for f in dataclasses.fields(emissions_data.EmissionsData)) == COLUMNS


def test_history_as_codecarbon_csv_reads_back_with_codecarbons_columns(tmp_path: Path) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    for _ in range(2):
        r = _cs(tmp_path, "measure", "--json", "--", sys.executable, "-c", burn)
        assert r.returncode == 0, r.stderr
    rows = json.loads(_cs(tmp_path, "history", "--format", "json").stdout)
    out = _cs(tmp_path, "history", "--format", "codecarbon")
    assert out.returncode == 0, out.stderr
    df = pd.read_csv(io.StringIO(out.stdout))
    assert tuple(df.columns) == COLUMNS
    assert len(df) == 2
    by_id = {f"carbonshift-job-{r['id']}": r for r in rows}
    for _, rec in df.iterrows():
        mine = by_id[rec["experiment_id"]]
        assert rec["emissions"] == pytest.approx(mine["emissions_g"] / 1000)
        assert rec["energy_consumed"] == pytest.approx(mine["energy_kwh"])
        assert rec["cpu_energy"] > 0 and rec["gpu_energy"] == 0
        assert rec["cpu_energy"] + rec["ram_energy"] == pytest.approx(rec["energy_consumed"] / rec["pue"])
        assert rec["country_iso_code"] == "DEU" and rec["region"] == "DE"
        assert rec["duration"] >= 0.4 * 0.5 and rec["cpu_power"] > 0
