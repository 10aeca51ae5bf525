"""Rerunnable evaluation of the local forecaster on real data.

Run ``python tests/benchmarks/bench_forecaster.py [--json] [--zones GB,DE-LU]
[--every-h 7] [--history-days 28]`` for the full table, or the pytest-benchmark test
(``pytest tests/benchmarks/bench_forecaster.py --benchmark-enable``) for a timed, smaller
run on one zone.

1. Electricity Maps portal hourly files (``electricitymaps-portal/*_2023_hourly.csv``, LCA
   factor): a rolling origin every ``--every-h`` hours after a four-week warm-up; at each
   origin every model sees only the ``--history-days`` before it (the chain's default
   history is 56 days). MAE (g/kWh) and MAPE (%) at leads 1, 6, 24 and 48 h (lead =
   target hour's start minus the origin) for the local forecaster, persistence (the last
   observed hour) and same-hour-yesterday (the latest observed value at that hour of day);
   beside them the within-day shape error (% of the actual, after removing each forecast
   day's mean from forecast and actuals) and the planning regret (grams lost by a 1 kW x
   3 h job due in 24 h started where the forecast says, against the best start in
   hindsight; :mod:`intensity.accuracy`).
2. GB: the official NESO 48 h forecast vintages (``uk-carbon-intensity-api``) against the
   NESO actuals, beside ours issued at the same capture times from the Electricity Maps
   GB 2023 history (direct factor, the NESO convention) up to each capture time, all
   scored against the same NESO actuals, half-hour windows, leads rounded to the hour.

The data live in ``../shared/data`` beside the repository (or ``$CARBONSHIFT_SHARED_DATA``);
everything is skipped when they are absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from intensity.accuracy import (  # noqa: E402
    BASELINES,
    STANDARD_LEADS_S,
    ErrorAccumulator,
    LeadError,
    Placement,
    Scores,
    place_job,
    regret_of,
    rolling_scores,
)
from intensity.forecast import local_forecast  # noqa: E402
from intensity.model import IntensityPoint, Kind  # noqa: E402
from intensity.providers.replay import read_trace  # noqa: E402

MODELS = ("local", "persistence", "same-hour-yesterday")


def shared_data() -> Path | None:
    """``$CARBONSHIFT_SHARED_DATA`` or ``<repo>/../shared/data``, if it exists."""
    env = os.environ.get("CARBONSHIFT_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


def em_files(data: Path, year: str = "2023") -> list[Path]:
    return sorted((data / "electricitymaps-portal").glob(f"*_{year}_hourly.csv"))


def zone_files(data: Path, zones: str | None) -> list[Path]:
    """The 2023 portal files, only those of ``zones`` (comma-separated prefixes) if given."""
    files = em_files(data)
    if zones:
        keep = tuple(z.strip() + "_" for z in zones.split(","))
        files = [f for f in files if f.name.startswith(keep)]
    return files


def evaluate_zone(
    path: Path, *, every_h: int, history_days: int, days: int | None = None
) -> dict[str, Scores]:
    """Rolling-origin errors and planning regret of the three models on one portal file."""
    trace = read_trace(path)
    pts: Sequence[IntensityPoint] = trace.points
    end = None
    if days is not None:
        end = pts[0].start + timedelta(days=days)
    forecasters = {"local": local_forecast, **BASELINES}
    return rolling_scores(
        pts, forecasters, leads_s=STANDARD_LEADS_S, origin_every_s=every_h * 3600,
        warmup_s=28 * 86400, history_s=history_days * 86400, end=end,
    )


# -- GB: NESO vintages beside ours ------------------------------------------------------------


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def evaluate_gb_neso(data: Path, *, history_days: int) -> dict[str, Scores]:
    """NESO's forecast vintages and ours, both against NESO actuals, by lead."""
    base = data / "uk-carbon-intensity-api"
    actuals: dict[datetime, float] = {}
    with (base / "derived_national_actuals.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["actual_gco2_per_kwh"]:
                actuals[_t(row["window_from_utc"])] = float(row["actual_gco2_per_kwh"])
    vintages: dict[datetime, list[tuple[datetime, float]]] = {}
    with (base / "derived_national_forecast_vintages_long.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            vintages.setdefault(_t(row["capture_from_utc"]), []).append(
                (_t(row["window_from_utc"]), float(row["forecast_gco2_per_kwh"]))
            )
    gb = read_trace(data / "electricitymaps-portal" / "GB_2023_hourly.csv", emission_factor="direct")
    hist_all = [p for p in gb.points if p.kind is Kind.ACTUAL]
    accs = {name: ErrorAccumulator() for name in ("neso", *MODELS)}
    placed: dict[str, list[Placement]] = {name: [] for name in accs}
    half = timedelta(minutes=30)
    act_pts = [IntensityPoint("GB", t, t + half, v, Kind.ACTUAL, "neso") for t, v in sorted(actuals.items())]

    def score(name: str, capture: datetime, fc: list[IntensityPoint]) -> None:
        p = place_job(fc, act_pts, capture)
        if p is not None:
            placed[name].append(p)

    models = {"local": local_forecast, **BASELINES}
    for capture, rows in sorted(vintages.items()):
        accs["neso"].add_issue([((w - capture).total_seconds(), v, actuals[w]) for w, v in rows if w in actuals],
                               3600, STANDARD_LEADS_S)
        score("neso", capture, [IntensityPoint("GB", w, w + half, v, Kind.FORECAST, "neso", issued_at=capture)
                                for w, v in rows])
        # ours: history up to the capture time, hourly, then looked up per half-hour window
        lo = capture - timedelta(days=history_days)
        history = [p for p in hist_all if p.end <= capture and p.start >= lo]
        for name, fc in models.items():
            pts = fc("GB", history, capture, 50 * 3600)
            pairs = []
            for window, _ in rows:
                cover = next((q for q in pts if q.start <= window < q.end), None)
                if window in actuals and cover is not None:
                    pairs.append(((window - capture).total_seconds(), cover.intensity_g_per_kwh,
                                  actuals[window]))
            accs[name].add_issue(pairs, 3600, STANDARD_LEADS_S)
            score(name, capture, pts)
    return {name: Scores(acc.result(), regret_of(placed[name])) for name, acc in accs.items()}


# -- reporting ------------------------------------------------------------------------------------


def _row(errs: list[LeadError]) -> dict[int, LeadError]:
    return {e.lead_s: e for e in errs}


def summarise(zones: dict[str, dict[str, Scores]]) -> dict[str, Any]:
    """Per zone and lead: each model's MAE/MAPE/shape error and local's gain over the
    better baseline; per zone each model's planning regret."""
    out: dict[str, Any] = {"zones": {}, "mean_gain_pct": {}, "regret": {}}
    gains: dict[int, list[float]] = {lead: [] for lead in STANDARD_LEADS_S}
    for zone, res in zones.items():
        rows = {m: _row(res[m].leads) for m in res}
        out["regret"][zone] = {m: {"n": r.regret.n, "regret_g": r.regret.regret_g,
                                   "share_of_oracle": r.regret.share_of_oracle} for m, r in res.items()}
        zrow: dict[str, Any] = {}
        for lead in STANDARD_LEADS_S:
            cell: dict[str, Any] = {}
            for m, r in rows.items():
                if lead in r:
                    cell[m] = {"mae": r[lead].mae_g_per_kwh, "mape": r[lead].mape_pct,
                               "shape_pct": r[lead].shape_pct, "n": r[lead].n}
            base = [cell[b]["mae"] for b in BASELINES if b in cell]
            if "local" in cell and base:
                gain = (1 - cell["local"]["mae"] / min(base)) * 100
                cell["gain_pct"] = gain
                if zone != "GB-NESO":
                    gains[lead].append(gain)
            zrow[str(lead // 3600) + "h"] = cell
        out["zones"][zone] = zrow
    out["mean_gain_pct"] = {
        f"{lead // 3600}h": (sum(g) / len(g) if g else None) for lead, g in gains.items()
    }
    return out


def print_summary(summary: dict[str, Any]) -> None:
    models = ("local", "persistence", "same-hour-yesterday", "neso")
    short = {"local": "local", "persistence": "persist", "same-hour-yesterday": "yday",
             "neso": "NESO"}
    print("MAE g/kWh (MAPE %) [shape error %] by lead; gain = local vs the better baseline (MAE)")
    header = f"{'zone':<14}{'lead':>5}  " + "  ".join(f"{short[m]:>22}" for m in models) + "    gain"
    print(header)
    print("-" * len(header))
    for zone, zrow in summary["zones"].items():
        for lead, cell in zrow.items():
            cols = []
            for m in models:
                if m in cell:
                    cols.append(f"{cell[m]['mae']:7.1f} ({cell[m]['mape']:5.1f}) [{cell[m]['shape_pct']:5.1f}]")
                else:
                    cols.append(" " * 22)
            gain = f"{cell['gain_pct']:+6.1f}%" if "gain_pct" in cell else ""
            print(f"{zone:<14}{lead:>5}  " + "  ".join(f"{c:>22}" for c in cols) + f"  {gain}")
    print("-" * len(header))
    mg = summary["mean_gain_pct"]
    print("mean gain of local over the better baseline (EM zones): "
          + ", ".join(f"{k} {v:+.1f}%" for k, v in mg.items() if v is not None))
    print("\nplanning regret, g lost per 1 kW x 3 h job due in 24 h (share of the hindsight saving kept)")
    print(f"{'zone':<14}" + "".join(f"{short[m]:>18}" for m in models))
    for zone, regrets in summary["regret"].items():
        cols = [f"{regrets[m]['regret_g']:8.1f} ({100 * regrets[m]['share_of_oracle']:5.1f}%)"
                if m in regrets and regrets[m]["n"] else "" for m in models]
        print(f"{zone:<14}" + "".join(f"{c:>18}" for c in cols))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--zones", help="comma-separated zone prefixes (default: all 2023 files)")
    ap.add_argument("--every-h", type=int, default=7, help="hours between origins")
    ap.add_argument("--history-days", type=int, default=56, help="history each model sees")
    ap.add_argument("--days", type=int, default=None, help="only the first N days of each file")
    ap.add_argument("--no-gb", action="store_true", help="skip the NESO comparison")
    args = ap.parse_args(argv)
    data = shared_data()
    if data is None:
        print("shared data not found: set CARBONSHIFT_SHARED_DATA", file=sys.stderr)
        return 0
    files = zone_files(data, args.zones)
    results: dict[str, dict[str, Scores]] = {}
    t0 = time.perf_counter()
    for f in files:
        zone = f.name.split("_")[0]
        results[zone] = evaluate_zone(f, every_h=args.every_h, history_days=args.history_days,
                                      days=args.days)
        print(f"  {zone}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if not args.no_gb:
        results["GB-NESO"] = evaluate_gb_neso(data, history_days=args.history_days)
    summary = summarise(results)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["settings"] = {"every_h": args.every_h, "history_days": args.history_days,
                           "days": args.days}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 0


# -- pytest-benchmark ------------------------------------------------------------------------------


def test_bench_local_forecaster_gb(benchmark: Any) -> None:
    """Time a rolling-origin quarter on GB and check the forecaster beats the better
    baseline at 6 h (the full table comes from running this file as a script)."""
    import pytest

    data = shared_data()
    if data is None or not (data / "electricitymaps-portal" / "GB_2023_hourly.csv").exists():
        pytest.skip("shared data not present")
    path = data / "electricitymaps-portal" / "GB_2023_hourly.csv"
    res = benchmark.pedantic(
        evaluate_zone, args=(path,), kwargs={"every_h": 11, "history_days": 56, "days": 90},
        rounds=1, iterations=1,
    )
    rows = {m: _row(r.leads) for m, r in res.items()}
    lead = 6 * 3600
    best_base = min(rows["persistence"][lead].mae_g_per_kwh,
                    rows["same-hour-yesterday"][lead].mae_g_per_kwh)
    assert rows["local"][lead].mae_g_per_kwh < best_base


if __name__ == "__main__":
    raise SystemExit(main())
