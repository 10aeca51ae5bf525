"""``carbonshift simulate`` end to end on real recorded intensity (the shipped GB trace)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intensity.providers.replay import SHIPPED_TRACE

KEYS = {"run_now_g", "carbon_aware_g", "oracle_g", "deadline_misses", "mean_delay_s"}


def shifted_copy(path: Path, zone: str, scale: float) -> Path:
    """The shipped trace as a plain CSV under another zone, values scaled (a second site)."""
    import csv

    with SHIPPED_TRACE.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", encoding="utf-8") as f:
        f.write("time,zone,intensity_g_per_kwh\n")
        for i, row in enumerate(rows):
            v = float(row["Carbon Intensity gCO₂eq/kWh (LCA)"]) * (scale if i % 24 < 12 else 1.0)
            f.write(f"{row['Datetime (UTC)'].replace(' ', 'T')}Z,{zone},{v}\n")
    return path


def test_json_overall_and_per_zone_with_a_perfect_forecast(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("simulate", "--trace", str(SHIPPED_TRACE), "--jobs", "40", "--forecast", "perfect",
           "--seed", "3", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["jobs"] == 40 and data["forecast"] == "perfect"
    overall = data["overall"]
    assert set(overall) >= KEYS
    assert set(data["zones"]) == {"GB"} and set(data["zones"]["GB"]) >= KEYS
    assert overall["carbon_aware_g"] == pytest.approx(overall["oracle_g"])
    assert overall["carbon_aware_g"] < overall["run_now_g"]
    assert overall["deadline_misses"] == 0
    assert 0 < overall["mean_delay_s"] < 24 * 3600


def test_local_forecast_never_beats_the_oracle_and_is_reproducible(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("simulate", "--trace", str(SHIPPED_TRACE), "--jobs", "30", "--deadline", "12h",
           "--duration", "1h-3h", "--interruptible-share", "0.5", "--json")
    assert r.code == 0, r.err
    o = json.loads(r.out)["overall"]
    assert o["oracle_g"] <= o["carbon_aware_g"] + 1e-6
    assert o["deadline_misses"] == 0
    # the same seed gives the same answer
    again = json.loads(cs("simulate", "--trace", str(SHIPPED_TRACE), "--jobs", "30", "--deadline",
                          "12h", "--duration", "1h-3h", "--interruptible-share", "0.5", "--json").out)
    assert again["overall"] == o


def test_two_sites_with_relocation_and_capacity(cs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = shifted_copy(tmp_path / "clean.csv", "CLEAN", 0.3)
    args = ["simulate", "--trace", f"{SHIPPED_TRACE},{other}", "--jobs", "40", "--forecast", "perfect",
            "--gpus", "2", "--transfer-delay", "30m", "--json"]
    stay = json.loads(cs(*args).out)
    r = cs(*args, "--relocate")
    assert r.code == 0, r.err
    move = json.loads(r.out)
    assert set(move["zones"]) == {"GB", "CLEAN"}
    assert set(move["sites"]) == {"GB", "CLEAN"}
    assert move["overall"]["carbon_aware_g"] < stay["overall"]["carbon_aware_g"]
    assert move["sites"]["CLEAN"]["jobs"] > stay["sites"]["CLEAN"]["jobs"]
    text = cs(*args[:-1], "--relocate").out
    assert "of oracle" in text and "CLEAN" in text


def test_workload_file(cs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wl = tmp_path / "jobs.csv"
    wl.write_text(
        "submit,duration,deadline,gpus,interruptible\n"
        "2023-03-10T08:00:00Z,3h,24h,1,false\n"
        "2023-03-10T09:30:00Z,7200,2023-03-11T06:00:00Z,2,true\n"
        "2023-03-12T20:00:00Z,1h,,1,no\n"
    )
    r = cs("simulate", "--trace", str(SHIPPED_TRACE), "--workload", str(wl), "--forecast", "perfect", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["jobs"] == 3 and data["overall"]["deadline_misses"] == 0
    assert data["overall"]["carbon_aware_g"] <= data["overall"]["run_now_g"]


def test_bad_input(cs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad_wl = tmp_path / "bad.csv"
    bad_wl.write_text("submit,duration\nyesterday,3h\n")
    cases = [
        (("simulate", "--trace", str(tmp_path / "missing.csv")), "does not exist"),
        (("simulate", "--trace", str(SHIPPED_TRACE), "--jobs", "0"), "--jobs 0"),
        (("simulate", "--trace", str(SHIPPED_TRACE), "--duration", "8h-1h"), "upper bound"),
        (("simulate", "--trace", str(SHIPPED_TRACE), "--interruptible-share", "2"), "between 0 and 1"),
        (("simulate", "--trace", str(SHIPPED_TRACE), "--deadline", "30m"), "shorter than the shortest"),
        (("simulate", "--trace", str(SHIPPED_TRACE), "--workload", str(bad_wl)), "line 2"),
        (("simulate", "--trace", str(SHIPPED_TRACE), "--forecast", "vintages"), "--vintages"),
        (("simulate", "--trace", f"{SHIPPED_TRACE},{SHIPPED_TRACE}"), "same zone"),
        (("simulate", "--trace", str(SHIPPED_TRACE), "--gpus", "1", "--job-gpus", "2"), "exceeds"),
    ]
    for args, needle in cases:
        r = cs(*args)
        assert r.code == 2, (args, r.err)
        assert needle in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) == 1


def test_json_kg_weighted_share_and_gap_closed_per_zone(cs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Over zones the share of the oracle's savings is grams saved over grams the oracle
    saves; per zone the gap closed is measured from the seven-day-profile planner, which
    closes none of its own gap."""
    other = shifted_copy(tmp_path / "b.csv", "ZB", 0.2)
    args = ["simulate", "--trace", f"{SHIPPED_TRACE},{other}", "--jobs", "40", "--deadline", "12h",
            "--duration", "1h-3h", "--seed", "5", "--json"]
    data = json.loads(cs(*args).out)
    zones = data["zones"]
    saved = sum(z["run_now_g"] - z["carbon_aware_g"] for z in zones.values())
    oracle = sum(z["run_now_g"] - z["oracle_g"] for z in zones.values())
    assert data["kg_weighted_share_of_oracle"] == pytest.approx(saved / oracle)
    assert data["overall"]["share_of_oracle"] == pytest.approx(saved / oracle)
    for z in zones.values():
        # (saved - profile saved) / (oracle saved - profile saved), all against run-now
        gap_g = z["profile_g"] - z["oracle_g"]
        expected = (z["profile_g"] - z["carbon_aware_g"]) / gap_g if gap_g > 0 else None
        assert z["gap_closed"] == pytest.approx(expected)
    prof = json.loads(cs(*args[:-1], "--forecast", "seven-day-mean", "--json").out)
    assert all(z["gap_closed"] in (None, pytest.approx(0.0)) for z in prof["zones"].values())
    text = cs(*args[:-1]).out
    assert "gap closed" in text and "kg-weighted" in text
