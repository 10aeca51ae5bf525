"""``carbonshift report`` and ``show --png/--svg`` end to end on a seeded database."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

from scheduler.storage.store import open_store
from tests.report.report_seed import seed_store


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[str, dict[str, int]]:
    path = tmp_path / "seeded.db"
    store = open_store(f"sqlite:///{path}")
    try:
        ids = seed_store(store)
    finally:
        store.close()
    return str(path), ids


def test_table_by_day_with_total_and_price(cs, seeded) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    r = cs("--utc", "--db", db, "report", "--since", "all", "--carbon-price", "80EUR/t")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "carbon price 80 EUR/t" in lines[0]
    keys = [ln.split()[0] for ln in lines[2:-1]]
    assert keys == ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "total"]
    total = lines[-2]
    assert "13.5 kWh" in total  # an SI prefix per value, three significant digits
    assert "4.40 kg" in total and "1.60 kg (26.7%)" in total and "1/2" in total
    assert "0.35 EUR" in total and "0.13 EUR" in total  # 4.4 kg x 80/t; 1.6 kg x 80/t
    assert lines[-1].startswith("estimates: the planner expected 3.92 kg for 3 measured job(s)")


def test_json_is_exact_and_complete(cs, seeded) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    r = cs("--db", db, "report", "--since", "all", "--by", "owner", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["by"] == "owner"
    assert [row["key"] for row in data["rows"]] == ["bob", "alice", "carol"]
    t = data["total"]
    assert t["emissions_kg"] == pytest.approx(4.4)
    assert t["saved_kg"] == pytest.approx(1.6)
    assert t["gpu_hours"] == pytest.approx(22.0)
    assert t["measured_share"] == pytest.approx(8 / 13.5)
    assert t["carbon_cost"] is None


def test_csv_has_one_row_per_group_and_the_total(cs, seeded) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    r = cs("--db", db, "report", "--since", "2026-03-01T00:00Z", "--by", "site", "--format", "csv",
           "--carbon-price", "0.1/kg")
    assert r.code == 0, r.err
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert [row["key"] for row in rows] == ["hpc", "local", "total"]
    assert float(rows[-1]["carbon_cost"]) == pytest.approx(4.4 * 0.1)
    assert rows[0]["start"] == ""


def test_config_carbon_price_is_used(cs, seeded) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    cs.config.write_text(cs.config.read_text().replace(
        "[intensity]", 'carbon_price = "50 USD/t"\n[intensity]'))
    r = cs("--db", db, "report", "--since", "all", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["currency"] == "USD" and data["carbon_price_per_t"] == 50.0
    assert data["total"]["cost_avoided"] == pytest.approx(1.6 / 1000 * 50)


def test_default_window_is_the_last_30_days(cs, seeded) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    r = cs("--db", db, "report")
    assert r.code == 0
    assert "no jobs since" in r.out and "--since all" in r.out


def test_until_and_week(cs, seeded) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    r = cs("--utc", "--db", db, "report", "--since", "2026-03-01T00:00Z", "--until",
           "2026-03-04T00:00Z", "--by", "week", "--json")
    data = json.loads(r.out)
    assert [row["key"] for row in data["rows"]] == ["2026-W10"]
    assert data["total"]["jobs"] == 2


def test_plot_draws_bars_in_the_terminal(cs, seeded) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    r = cs("--utc", "--db", db, "report", "--since", "all", "--by", "owner", "--plot")
    assert r.code == 0, r.err
    assert "Emissions by owner" in r.out
    bob = next(ln for ln in r.out.splitlines() if ln.startswith("bob") and "run-now" in ln)
    assert "█" in bob and bob.rstrip().endswith("5,000")  # 5 kg run-now for bob's jobs
    assert "(gCO2e;" in r.out


def test_svg_chart_is_written_without_matplotlib(cs, seeded, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were missing
    out = tmp_path / "r.svg"
    r = cs("--db", db, "report", "--since", "all", "--by", "owner", "--svg", str(out))
    assert r.code == 0, r.err
    svg = out.read_text()
    assert svg.startswith("<svg") and svg.count('class="bar"') == 6  # 3 owners x 2 series
    assert "bob run-now: 5,000 gCO2e" in svg


def test_png_without_matplotlib_is_one_line_naming_the_extra(cs, seeded, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = cs("--db", db, "report", "--since", "all", "--png", str(tmp_path / "r.png"))
    assert r.code == 2
    assert "pip install carbonshift[plot]" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "r.png").exists()


def test_png_with_matplotlib(cs, seeded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    db, _ = seeded
    out = tmp_path / "r.png"
    r = cs("--db", db, "report", "--since", "all", "--png", str(out))
    assert r.code == 0, r.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--carbon-price", "eighty"], "carbon price 'eighty'"),
        (["--since", "yesterday"], "--since 'yesterday'"),
        (["--since", "2026-03-05T00:00Z", "--until", "2026-03-01T00:00Z"], "is not after"),
        (["--by", "hour"], "'hour'"),
    ],
)
def test_bad_input_is_one_line_exit_2(cs, seeded, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    db, _ = seeded
    r = cs("--db", db, "report", *args)
    assert r.code == 2
    assert needle in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_show_writes_the_job_chart_with_both_windows(cs, seeded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, ids = seeded
    out = tmp_path / "job.svg"
    r = cs("--utc", "--db", db, "show", str(ids["bert-ft"]), "--svg", str(out))
    assert r.code == 0, r.err
    svg = out.read_text()
    assert "chosen window" in svg and "run-now window" in svg
    assert "power (W)" in svg and "grid intensity (gCO2/kWh)" in svg
    assert svg.count('class="series"') == 2 and svg.count('class="span"') == 2
    # the run's power is 800 W / 1000 W alternating: the left axis reaches 1000
    assert ">1,000<" in svg


def test_show_compares_the_projection_with_the_final_figure(cs, seeded) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from scheduler.model import Event

    db, ids = seeded
    store = open_store(f"sqlite:///{db}")
    try:
        store.add_event(Event(ids["bert-ft"], datetime(2026, 3, 2, 23, tzinfo=UTC), "projection",
                              "projected total 3300 Wh, 330 gCO2e at 50.0% done (basis progress: epoch 5/10; 900 W now)"))
    finally:
        store.close()
    r = cs("--utc", "--db", db, "show", str(ids["bert-ft"]))
    assert r.code == 0, r.err
    assert "projected 3.30 kWh, 330 g at 50% done" in r.out  # never e-notation
    assert "final 3.00 kWh" in r.out and "the projection was 10% over" in r.out
    r = cs("--db", db, "show", str(ids["bert-ft"]), "--json")
    p = json.loads(r.out)["projections"][0]
    assert p["energy_error_pct"] == pytest.approx(10.0)
    assert p["emissions_error_pct"] == pytest.approx(10.0)
    # and the report sums up how good the projections were
    r = cs("--db", db, "report", "--since", "all")
    assert "live projections of 1 job(s) were off by 10% of the final energy at 50% done" in r.out
    acc = json.loads(cs("--db", db, "report", "--since", "all", "--json").out)["accuracy"]
    assert acc["projection_jobs"] == 1 and acc["projection_mean_error_pct"] == pytest.approx(10.0)
