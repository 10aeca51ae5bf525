"""``carbonshift forecast`` and ``carbonshift zones`` end to end, in-process.

The replay provider serves the shipped GB March 2023 trace (hourly, 2023-03-01 to
2023-03-28 23:00 UTC) through a config file; the database is a SQLite file in tmp_path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intensity.model import IntensityPoint, Kind, Source
from intensity.providers.replay import SHIPPED_TRACE
from scheduler.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    for key in list(os.environ):
        if key.startswith("CARBONSHIFT_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    config = tmp_path / "carbonshift.toml"
    config.write_text(f'[intensity]\nproviders = ["replay"]\ntrace = "{SHIPPED_TRACE}"\n')
    db = tmp_path / "cs.db"

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(["--db", str(db), "--config", str(config), "--utc", *args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    run.db = db  # type: ignore[attr-defined]
    return run


AT = "2023-03-10T12:00Z"


def test_forecast_json_gives_the_best_window_and_the_saving(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("forecast", "GB", "--at", AT, "--duration", "3h", "--deadline", "24h", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["zone"] == "GB" and data["now"] == "2023-03-10T12:00:00Z"
    assert data["link"] == "provider" and data["provider"] == "replay"
    best = datetime.fromisoformat(data["best_start"].replace("Z", "+00:00"))
    now = datetime(2023, 3, 10, 12, tzinfo=UTC)
    assert now <= best <= now + timedelta(hours=21)
    # the window mean and the run-now mean recomputed from the points
    pts = data["points"]
    by_start = {p["start"]: p["intensity_g_per_kwh"] for p in pts}
    window = [by_start[(best + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")] for i in range(3)]
    assert data["best_mean_g_per_kwh"] == pytest.approx(sum(window) / 3, abs=1e-2)
    run_now = [pts[i]["intensity_g_per_kwh"] for i in range(3)]
    assert data["now_mean_g_per_kwh"] == pytest.approx(sum(run_now) / 3, abs=1e-2)
    # no 3 h window inside the deadline is lower
    values = [p["intensity_g_per_kwh"] for p in pts[:24]]
    assert data["best_mean_g_per_kwh"] <= min(sum(values[i : i + 3]) / 3 for i in range(22)) + 1e-2
    saving = (data["now_mean_g_per_kwh"] - data["best_mean_g_per_kwh"]) / data["now_mean_g_per_kwh"]
    assert data["saving_pct"] == pytest.approx(saving * 100, abs=0.01)
    assert {p["source"] for p in pts} == {"provider"}
    assert len(pts) == 48  # the configured 48 h horizon


def test_forecast_past_the_end_of_the_trace_is_extended_locally(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("forecast", "GB", "--at", "2023-03-28T00:00Z", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    sources = [p["source"] for p in data["points"]]
    assert sources[:24] == ["provider"] * 24 and set(sources[24:]) == {"local"}
    assert any("extended from 2023-03-29T00:00Z" in n for n in data["notes"])


def test_forecast_table_and_plot(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("forecast", "GB", "--at", AT, "--duration", "2h")
    assert r.code == 0, r.err
    assert "best window" in r.out and "saves" in r.out and "provider" in r.out
    r = cli("forecast", "GB", "--at", AT, "--plot")
    assert r.code == 0, r.err
    assert "best window" in r.out and any(c in r.out for c in "▁▂▃▄▅▆▇█")


def test_forecast_stores_the_vintage_and_accuracy_scores_it(cli) -> None:  # type: ignore[no-untyped-def]
    from scheduler.storage.store import open_store

    assert cli("forecast", "GB", "--at", "2023-03-10T00:00Z", "--json").code == 0
    # actuals stored beside the vintage: the forecast misses every hour by exactly 10
    store = open_store("sqlite:///" + str(cli.db))
    try:
        vintage = store.get_points("GB", datetime(2023, 3, 10, tzinfo=UTC),
                                   datetime(2023, 3, 12, tzinfo=UTC), kind=Kind.FORECAST)
        assert vintage and all(p.issued_at == datetime(2023, 3, 10, tzinfo=UTC) for p in vintage)
        store.add_points([
            IntensityPoint("GB", p.start, p.end, p.intensity_g_per_kwh + 10, Kind.ACTUAL,
                           "meter", source=Source.PROVIDER)
            for p in vintage
        ])
    finally:
        store.close()
    r = cli("forecast", "GB", "--at", "2023-03-12T00:00Z", "--accuracy", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    rows = data["providers"]["replay"]
    assert [row["lead_h"] for row in rows][:3] == [0, 1, 2]
    assert all(row["mae_g_per_kwh"] == pytest.approx(10) for row in rows)
    assert all(row["bias_g_per_kwh"] == pytest.approx(-10) for row in rows)
    # a level error only: no shape error, and the vintage's window is the best in hindsight
    assert all(row["shape_mae_g_per_kwh"] == pytest.approx(0, abs=1e-6) for row in rows)
    regret = data["planning_regret"]["providers"]["replay"]
    assert regret["n"] == 1 and regret["regret_g"] == pytest.approx(0, abs=1e-6)
    assert data["planning_regret"]["job"] == {"power_w": 1000.0, "duration_s": 3 * 3600,
                                              "window_s": 24 * 3600}
    r = cli("forecast", "GB", "--at", "2023-03-12T00:00Z", "--accuracy")
    assert r.code == 0 and "MAE" in r.out and "replay" in r.out
    assert "shape %" in r.out and "regret g/job" in r.out


def test_accuracy_scores_a_wrong_shape_as_shape_error_and_regret(cli) -> None:  # type: ignore[no-untyped-def]
    """Actuals that mirror the vintage about its mean: the same level, the opposite daily
    shape, so the window the vintage names is the worst one and the grams lost count."""
    from scheduler.storage.store import open_store

    assert cli("forecast", "GB", "--at", "2023-03-10T00:00Z", "--json").code == 0
    store = open_store("sqlite:///" + str(cli.db))
    try:
        vintage = store.get_points("GB", datetime(2023, 3, 10, tzinfo=UTC),
                                   datetime(2023, 3, 11, tzinfo=UTC), kind=Kind.FORECAST)
        mean = sum(p.intensity_g_per_kwh for p in vintage) / len(vintage)
        store.add_points([
            IntensityPoint("GB", p.start, p.end, 2 * mean - p.intensity_g_per_kwh, Kind.ACTUAL,
                           "meter", source=Source.PROVIDER)
            for p in vintage
        ])
    finally:
        store.close()
    data = json.loads(cli("forecast", "GB", "--at", "2023-03-12T00:00Z", "--accuracy", "--json").out)
    rows = data["providers"]["replay"]
    # the day's means agree, so all of the error is shape error
    assert all(row["shape_mae_g_per_kwh"] == pytest.approx(row["mae_g_per_kwh"]) for row in rows)
    assert all(row["bias_g_per_kwh"] != pytest.approx(10) for row in rows)
    regret = data["planning_regret"]["providers"]["replay"]
    assert regret["n"] == 1 and regret["regret_g"] > 0
    assert regret["saved_g"] <= 0 < regret["oracle_saved_g"]


def test_accuracy_with_nothing_stored_says_so(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("forecast", "GB", "--at", AT, "--accuracy")
    assert r.code == 0 and "no stored forecast" in r.out


def test_zones_lists_providers(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("zones", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == [{"zone": "GB", "providers": ["replay", "static"]}]
    r = cli("zones", "--provider", "static")
    assert r.code == 0 and "DEU" in r.out and "FR" in r.out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["forecast", "GBB"], "unknown zone 'GBB': did you mean GB"),
        (["forecast", "GB", "--provider", "elektricitymaps"], "did you mean 'electricitymaps'"),
        (["forecast", "GB", "--provider", "energinet"], "does not serve zone 'GB'"),
        (["forecast", "GB", "--duration", "30h", "--deadline", "24h"], "--duration 30h is longer"),
        (["forecast", "GB", "--at", "tomorrow"], "--at 'tomorrow' is not a time"),
        (["forecast", "GB", "--at", "2023-03-10T12:00"], "has no timezone"),
        (["forecast", "GB", "--duration", "3 parsecs"], "is not a duration"),
        (["zones", "--provider", "nope"], "unknown provider 'nope'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(cli, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    r = cli(*args)
    assert r.code == 2
    assert needle in r.err and r.err.count("\n") == 1 and r.out == ""
    assert not cli.db.exists()



def test_forecast_svg_chart_marks_the_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`forecast ZONE --svg FILE` writes a chart with the best and run-now windows."""
    from tests.cli.conftest import write_retimed_trace

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    trace = write_retimed_trace(tmp_path / "t.csv", start)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[intensity]\nproviders = ["replay"]\ntrace = "{trace}"\n')
    svg = tmp_path / "fc.svg"
    code = main(["--db", str(tmp_path / "f.db"), "--config", str(cfg), "forecast", "TRACE",
                 "--duration", "2h", "--deadline", "12h", "--svg", str(svg)])
    assert code == 0, capsys.readouterr().err
    text = svg.read_text()
    assert "<svg" in text[:300]
    assert "best window" in text and "run now" in text


def test_forecast_uncertainty_scales_only_the_local_curve_by_its_own_error_by_lead(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "carbonshift.toml"
    base = config.read_text()

    def points(mode: str | None) -> list[dict[str, object]]:
        config.write_text(base + (f'forecast_uncertainty = "{mode}"\n' if mode else ""))
        r = cli("forecast", "GB", "--at", "2023-03-28T00:00Z", "--json")
        assert r.code == 0, r.err
        return json.loads(r.out)["points"]  # type: ignore[no-any-return]

    default, off, bias, q = points(None), points("off"), points("bias"), points("quantile")
    assert default == off  # off is the default
    local = [i for i, p in enumerate(off) if p["source"] == "local"]
    assert local and all(off[i] == bias[i] == q[i] for i in range(len(off)) if i not in local)
    ratio = {i: float(bias[i]["intensity_g_per_kwh"]) / float(off[i]["intensity_g_per_kwh"]) for i in local}  # type: ignore[arg-type]
    assert any(abs(r - 1) > 1e-3 for r in ratio.values())  # the curve moved ...
    assert len({round(r, 6) for r in ratio.values()}) <= 11  # ... by one factor per lead bucket
    assert [p["intensity_g_per_kwh"] for p in q] != [p["intensity_g_per_kwh"] for p in bias]
    config.write_text(base + 'forecast_uncertainty = "pessimistic"\n')
    r = cli("forecast", "GB", "--at", "2023-03-28T00:00Z", "--json")
    assert r.code == 2 and "forecast_uncertainty" in r.err and "off, bias, quantile" in r.err
