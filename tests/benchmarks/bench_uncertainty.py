"""Does planning on a forecast's own error distribution help? (issue 22, item 3)

Run: ``python tests/benchmarks/bench_uncertainty.py [--json out.json] [--per-day 2]
[--zones GB,DE-LU] [--no-local]``. Needs the shared data folder (``<repo>/../shared/data``
or ``CARBONSHIFT_SHARED_DATA``); prints markdown tables. About 15 minutes on two busy
cores for all sixteen 2023 zones (``--no-local``: the recorded vintages only, under a minute).

At each decision a source's vintage is turned into three planning curves
(:mod:`intensity.uncertainty`): (a) ``off``, the point forecast; (b) ``bias``, the
expected intensity (forecast x mean ``actual / forecast`` at its lead); (c) ``quantile``,
forecast x the q-quantile of the ratio at its lead (q = 0.75 in the main table; the other
q in the sweep). The error model is refitted every ``refit`` on the pairs of earlier
vintages whose actuals had ended by then, so no decision sees its future; until a model
has enough pairs every curve is the point forecast. Each job (1 kW) is started where the
curve's best window says (:func:`intensity.accuracy.place_job`) and charged on the actuals,
beside starting at once and the best start in hindsight (the oracle).

Sources:

* ``GB-NESO``: the 31 NESO national 48 h vintages (``uk-carbon-intensity-api``, 14-17
  March 2023) against NESO's actuals (the one missing half-hour, 2023-03-16T03:00Z, is the
  mean of its neighbours); jobs of 1-8 h due 24 h after the capture. Refit at every vintage.
* ``CAISO-WattTime``: WattTime MOER forecasts for CAISO_NORTH (``vessim``, June-July 2023)
  issued every 5 min for leads 5-65 min; its horizon is one hour, so the jobs are 10, 20
  and 30 min due 70 min after the issue, decisions every 30 min, lead buckets of 10 min,
  refit daily.
* ``local/ZONE``: the local forecaster's planning curve
  (:func:`intensity.forecast.planning_forecast`) on each Electricity Maps 2023 file (a
  rolling origin, ``--per-day`` decisions a day at seeded hours from day 28), its error
  model from its own vintages of the last 28 days (as ``forecast_uncertainty`` fits it,
  :data:`intensity.uncertainty.BACKTEST_DAYS`); jobs of 1-8 h due in 24 h, refit daily.

Scores per source and curve: the share of the oracle's savings against starting at once
(grams saved / grams the oracle saves), and the change in grams against (a), in percent of
(a)'s grams (negative: cleaner than the point forecast).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from intensity.accuracy import Placement, place_job  # noqa: E402
from intensity.model import IntensityPoint, Kind  # noqa: E402
from intensity.uncertainty import (  # noqa: E402
    BACKTEST_DAYS,
    LEAD_EDGES_H,
    ErrorModel,
    adjust_points,
    fit_error_model,
    pairs_from_vintages,
    quantile,
)
from tests.benchmarks.bench_forecaster import shared_data  # noqa: E402

QS = (0.6, 0.75, 0.9)
MAIN_Q = 0.75
#: curve name -> (mode, q)
CURVES: dict[str, tuple[str, float]] = {
    "point": ("off", MAIN_Q), "bias": ("bias", MAIN_Q),
    **{f"q{q:g}": ("quantile", q) for q in QS},
}
HOURS_1_8 = tuple(h * 3600 for h in range(1, 9))
DAY_S = 86400


@dataclass
class SourceRun:
    """Every curve's placements for one source, and how many decisions had a model."""

    name: str
    jobs: str
    decisions: int = 0
    with_model: int = 0
    placed: dict[str, list[Placement]] = field(default_factory=dict)

    def totals(self, curve: str) -> tuple[float, float, float]:
        """``(chosen_g, saved_g, oracle_saved_g)`` of ``curve`` summed over its jobs."""
        ps = self.placed.get(curve, [])
        return (math.fsum(p.chosen_g for p in ps), math.fsum(p.saved_g for p in ps),
                math.fsum(p.oracle_saved_g for p in ps))


def run_source(
    name: str, jobs: str, vintages: Sequence[tuple[datetime, list[IntensityPoint]]],
    actuals: Sequence[IntensityPoint], durations_s: Sequence[int], window_s: int,
    *, refit_s: int, edges_h: Sequence[float] = LEAD_EDGES_H, trailing_days: int | None = None,
) -> SourceRun:
    """Decide at each vintage's issue time on every curve of :data:`CURVES` (see the module
    docstring); the error model is fitted on earlier vintages only (issued in the last
    ``trailing_days`` when given)."""
    run = SourceRun(name, jobs)
    acts = sorted(actuals, key=lambda p: p.start)
    seen: list[IntensityPoint] = []
    model: ErrorModel | None = None
    fitted_at: datetime | None = None
    for now, pts in sorted(vintages, key=lambda v: v[0]):
        if fitted_at is None or (now - fitted_at).total_seconds() >= refit_s:
            since = now - timedelta(days=trailing_days or 100_000)
            recent = [p for p in seen if p.issued_at is not None and p.issued_at >= since]
            model = fit_error_model(pairs_from_vintages(recent, acts, now), edges_h=edges_h)
            fitted_at = now
        run.decisions += 1
        run.with_model += bool(model is not None and model.buckets)
        for curve, (mode, q) in CURVES.items():
            plan = adjust_points(pts, model, mode, now, q=q)
            for d in durations_s:
                p = place_job(plan, acts, now, duration_s=d, window_s=window_s)
                if p is not None:
                    run.placed.setdefault(curve, []).append(p)
        seen.extend(pts)
    return run


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T")).replace(
        tzinfo=None).replace(tzinfo=UTC)


def gb_neso(data: Path) -> SourceRun:
    base = data / "uk-carbon-intensity-api"
    half = timedelta(minutes=30)
    actuals: dict[datetime, float] = {}
    with (base / "derived_national_actuals.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["actual_gco2_per_kwh"]:
                actuals[_t(row["window_from_utc"])] = float(row["actual_gco2_per_kwh"])
    ts = sorted(actuals)
    for a, b in itertools.pairwise(ts):  # the one missing half-hour: its neighbours' mean
        if b - a == 2 * half:
            actuals[a + half] = (actuals[a] + actuals[b]) / 2
    vintages: dict[datetime, list[IntensityPoint]] = {}
    with (base / "derived_national_forecast_vintages_long.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            cap, w = _t(row["capture_from_utc"]), _t(row["window_from_utc"])
            vintages.setdefault(cap, []).append(IntensityPoint(
                "GB", w, w + half, float(row["forecast_gco2_per_kwh"]), Kind.FORECAST, "neso",
                issued_at=cap))
    acts = [IntensityPoint("GB", t, t + half, v, Kind.ACTUAL, "neso") for t, v in sorted(actuals.items())]
    return run_source("GB-NESO", "1-8 h due in 24 h", list(vintages.items()), acts, HOURS_1_8,
                      DAY_S, refit_s=1)


def caiso_watttime(data: Path, every_min: int = 30) -> SourceRun:
    base = data / "vessim"
    step = timedelta(minutes=5)
    acts = []
    with (base / "watttime2023_caiso-north_actual.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            t = _t(row["time"])
            acts.append(IntensityPoint("CAISO_NORTH", t, t + step, float(row["Caiso_North"]), Kind.ACTUAL, "watttime"))
    vintages: dict[datetime, list[IntensityPoint]] = {}
    with (base / "watttime2023_caiso-north_forecast.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            issued, t = _t(row["request_time"]), _t(row["forecast_time"])
            vintages.setdefault(issued, []).append(IntensityPoint(
                "CAISO_NORTH", t, t + step, float(row["Caiso_North"]), Kind.FORECAST, "watttime",
                issued_at=issued))
    # every vintage trains the model; decisions only every ``every_min`` minutes
    run = SourceRun("CAISO-WattTime", "10/20/30 min due in 70 min")
    edges_h = tuple(m / 60 for m in range(0, 70, 10))
    seen: list[IntensityPoint] = []
    model: ErrorModel | None = None
    fitted_at: datetime | None = None
    for now, pts in sorted(vintages.items()):
        if now.minute % every_min == 0:
            if fitted_at is None or (now - fitted_at).total_seconds() >= DAY_S:
                model = fit_error_model(pairs_from_vintages(seen, acts, now), edges_h=edges_h)
                fitted_at = now
            run.decisions += 1
            run.with_model += bool(model is not None and model.buckets)
            for curve, (mode, q) in CURVES.items():
                plan = adjust_points(pts, model, mode, now, q=q)
                for d in (600, 1200, 1800):
                    p = place_job(plan, acts, now, duration_s=d, window_s=70 * 60)
                    if p is not None:
                        run.placed.setdefault(curve, []).append(p)
        seen.extend(pts)
    return run


def local_zone(path: Path, per_day: int, seed: int = 22) -> SourceRun:
    from intensity.forecast import planning_forecast
    from intensity.providers.replay import read_trace
    from scheduler.simulate import TraceIndex

    tr = read_trace(path)
    idx = TraceIndex(tr.points)
    rng = random.Random(f"{seed}:{path.name}")
    day0 = tr.start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=28)
    last = tr.end - timedelta(seconds=DAY_S + 3600)
    vintages = []
    d = day0
    while d <= last:
        for hour in sorted(rng.sample(range(24), per_day)):
            now = d + timedelta(hours=hour)
            if now <= last:
                vintages.append((now, planning_forecast(tr.zone, idx.history(now), now, DAY_S + 3600)))
        d += timedelta(days=1)
    return run_source(f"local/{tr.zone}", "1-8 h due in 24 h", vintages, tr.points, HOURS_1_8,
                      DAY_S, refit_s=DAY_S, trailing_days=BACKTEST_DAYS)


def pct(x: float) -> str:
    return f"{x * 100:.1f}%" if math.isfinite(x) else "-"


def tails(placed: Sequence[Placement]) -> dict[str, float]:
    """The risk side: the 90th percentile of a job's regret (grams lost against the oracle,
    in percent of its run-now grams) and the share of jobs dirtier than starting at once."""
    if not placed:
        return {"p90_regret": math.nan, "worse_than_now": math.nan}
    regrets = sorted(p.regret_g / p.run_now_g for p in placed if p.run_now_g > 0)
    return {"p90_regret": quantile(regrets, 0.9) if regrets else math.nan,
            "worse_than_now": sum(p.saved_g < -1e-9 for p in placed) / len(placed)}


def summarise(runs: Sequence[SourceRun]) -> dict[str, Any]:
    """Per source and curve: share of the oracle's savings and the change against (a)."""
    out: dict[str, Any] = {}
    for r in runs:
        base_g = r.totals("point")[0]
        row: dict[str, Any] = {"jobs": r.jobs, "decisions": r.decisions, "with_model": r.with_model,
                               "n_jobs": len(r.placed.get("point", []))}
        for c in CURVES:
            g, saved, oracle = r.totals(c)
            row[c] = {"share_of_oracle": saved / oracle if oracle > 0 else math.nan,
                      "vs_point": (g - base_g) / base_g if base_g > 0 else math.nan,
                      "grams": g, "oracle_saved_g": oracle, **tails(r.placed.get(c, []))}
        out[r.name] = row
    local = [r for r in runs if r.name.startswith("local/")]
    if local:
        pooled: dict[str, Any] = {"jobs": local[0].jobs, "decisions": sum(r.decisions for r in local),
                                  "with_model": sum(r.with_model for r in local),
                                  "n_jobs": sum(len(r.placed.get("point", [])) for r in local)}
        base_g = sum(r.totals("point")[0] for r in local)
        for c in CURVES:
            g = sum(r.totals(c)[0] for r in local)
            saved = sum(r.totals(c)[1] for r in local)
            oracle = sum(r.totals(c)[2] for r in local)
            pooled[c] = {"share_of_oracle": saved / oracle if oracle > 0 else math.nan,
                         "vs_point": (g - base_g) / base_g, "grams": g, "oracle_saved_g": oracle,
                         **tails([p for r in local for p in r.placed.get(c, [])])}
        out["local (kg-weighted, all zones)"] = pooled
    return out


def print_tables(summary: dict[str, Any]) -> None:
    print("| source | jobs | decisions (with model) | (a) point | (b) bias | (c) q0.75 "
          "| (b) vs (a) | (c) vs (a) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in summary.items():
        print(f"| {name} | {r['jobs']} | {r['decisions']} ({r['with_model']}) "
              f"| {pct(r['point']['share_of_oracle'])} | {pct(r['bias']['share_of_oracle'])} "
              f"| {pct(r['q0.75']['share_of_oracle'])} | {r['bias']['vs_point'] * 100:+.2f}% "
              f"| {r['q0.75']['vs_point'] * 100:+.2f}% |")
    print()
    print("Risk: 90th percentile of a job's regret (% of its run-now grams); jobs dirtier than "
          "starting at once:")
    print()
    print("| source | " + " | ".join(CURVES) + " |")
    print("|---|" + "---|" * len(CURVES))
    for name, r in summary.items():
        cells = [f"{pct(r[c]['p90_regret'])}; {pct(r[c]['worse_than_now'])}" for c in CURVES]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print("Quantile sweep, share of the oracle's savings (change in grams vs (a)):")
    print()
    print("| source | " + " | ".join(f"q={q:g}" for q in QS) + " |")
    print("|---|" + "---|" * len(QS))
    for name, r in summary.items():
        cells = [f"{pct(r[f'q{q:g}']['share_of_oracle'])} ({r[f'q{q:g}']['vs_point'] * 100:+.2f}%)" for q in QS]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    ap.add_argument("--per-day", type=int, default=2, help="local decisions a day per zone")
    ap.add_argument("--zones", help="comma-separated zone prefixes of the portal files (local)")
    ap.add_argument("--year", default="2023", help="which year's portal files (local)")
    ap.add_argument("--no-local", action="store_true", help="only the recorded vintages")
    ap.add_argument("--no-recorded", action="store_true", help="only the local forecaster")
    args = ap.parse_args(argv)
    data = shared_data()
    if data is None:
        print("shared data not found: set CARBONSHIFT_SHARED_DATA", file=sys.stderr)
        return 0
    t0 = time.perf_counter()
    runs: list[SourceRun] = [] if args.no_recorded else [gb_neso(data), caiso_watttime(data)]
    print(f"  recorded vintages done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if not args.no_local:
        files = sorted((data / "electricitymaps-portal").glob(f"*_{args.year}_hourly.csv"))
        if args.zones:
            keep = tuple(z.strip() + "_" for z in args.zones.split(","))
            files = [f for f in files if f.name.startswith(keep)]
        for f in files:
            runs.append(local_zone(f, args.per_day))
            print(f"  {runs[-1].name} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    summary = summarise(runs)
    print_tables(summary)
    if args.json:
        Path(args.json).write_text(json.dumps({"sources": summary, "seconds": round(time.perf_counter() - t0, 1),
                                               "per_day": args.per_day}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
