"""Which curve should carbonshift plan on? Decided on held-out years (issue 22, item 2).

Run: ``python tests/benchmarks/bench_planning_curve.py [--per-day 1] [--zones GB,DE-LU]
[--json out.json]``. Needs the shared data folder (``<repo>/../shared/data`` or
``CARBONSHIFT_SHARED_DATA``); prints markdown tables. About ten minutes on two busy cores.

The three curves of :data:`intensity.forecast.PLANNING_CURVES`, all from the local
forecaster fitted only on the file's data before each decision (a rolling origin):

* ``point``: the model's own point forecast;
* ``blend``: the seven-day profile's shape at the model's level (the model's deviation
  from the profile smoothed over ``H`` hours of lead either side);
* ``profile``: the bare seven-day same-hour profile (what ``seven-day-mean`` plans on);
* ``trailing``: per zone and decision, whichever of the three had the least planning
  regret over the last 28 days of decisions whose windows had closed by then;
* ``recent`` (the default since issue 22's second pass): a recency-weighted 21-day
  same-phase profile (half-life 5 days) plus the model's deviation from it, smoothed over
  8 h either side and weighted from 1 now down to 0.5 at 24 h of lead and after.

Decisions: ``--per-day`` a day (at seeded random hours) from day 28 of each file until a
day before its end; at each, one job of every length 1-8 h at 1 kW, due 24 h later, is
started where the curve's best window says (:func:`intensity.accuracy.place_job`, the
window search ``carbonshift forecast`` answers with) and charged on the actuals. Scores:
the kg-weighted share of the oracle's savings over zones
(:func:`scheduler.simulate.weighted_share_of_oracle`), per zone the share of the gap
between the profile and the oracle closed (:func:`scheduler.simulate.gap_closed`), and
the planning regret (grams lost per job against the best start in hindsight).

Protocol: the blend's ``H`` is tuned on the 2022 files (GB, DE, California), then every
curve is scored on the 2024 files of the same zones and on the sixteen 2023 zones.
The planner's re-planning (hourly in ``bench_savings.py``) is left out here to keep it
CPU-bounded: each job is placed once, at its submission.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from intensity.accuracy import Placement, place_job, regret_of  # noqa: E402
from intensity.forecast import _PLAN_SMOOTH_H, local_forecast, planning_curve  # noqa: E402
from intensity.model import IntensityPoint  # noqa: E402
from intensity.providers.replay import read_trace  # noqa: E402
from scheduler.simulate import TraceIndex, gap_closed, weighted_share_of_oracle  # noqa: E402
from tests.benchmarks.bench_forecaster import shared_data  # noqa: E402

DURATIONS_H = tuple(range(1, 9))
WINDOW_S = 24 * 3600
WARMUP_DAYS = 28
TRAILING_DAYS = 28
TUNE_SMOOTH_H = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0)
TUNE_ZONES = ("GB", "DE-LU", "US-CAL-CISO")
CHOICES = ("point", "blend", "profile")


@dataclass
class ZoneRun:
    """Every curve's placements in one zone file, decision by decision."""

    zone: str
    times: list[datetime] = field(default_factory=list)
    #: curve -> one list per decision of the placements of the job mix
    placed: dict[str, list[list[Placement]]] = field(default_factory=dict)

    def total(self, curve: str) -> tuple[float, float, float]:
        """``(saved_g, oracle_saved_g, mean regret g per job)`` of ``curve``."""
        r = regret_of(p for day in self.placed[curve] for p in day)
        return r.saved_g, r.oracle_saved_g, r.regret_g


def curves_at(zone: str, history: Sequence[IntensityPoint], now: datetime,
              smooth_hs: Sequence[float]) -> dict[str, list[IntensityPoint]]:
    """The point forecast, the profile and the blend at each of ``smooth_hs``."""
    from dataclasses import replace

    point = local_forecast(zone, history, now, WINDOW_S + 3600, curve="point")
    prof = local_forecast(zone, history, now, WINDOW_S + 3600, curve="profile")
    out = {"point": point, "profile": prof}
    if not point:
        return out
    out["recent"] = local_forecast(zone, history, now, WINDOW_S + 3600, curve="recent")
    res = int(point[0].duration_s)
    pv = [p.intensity_g_per_kwh for p in point]
    qv = [p.intensity_g_per_kwh for p in prof]
    for h in smooth_hs:
        vals = planning_curve("blend", pv, qv, res, smooth_h=h)
        out[f"blend{h:g}"] = [replace(p, intensity_g_per_kwh=max(0.0, v)) for p, v in zip(point, vals, strict=True)]
    return out


def run_zone(path: Path, per_day: int, smooth_hs: Sequence[float], seed: int = 22) -> ZoneRun:
    tr = read_trace(path)
    idx = TraceIndex(tr.points)
    rng = random.Random(f"{seed}:{path.name}")
    run = ZoneRun(path.name.split("_")[0])
    day0 = tr.start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=WARMUP_DAYS)
    last = tr.end - timedelta(seconds=WINDOW_S + 3600)
    d = day0
    while d <= last:
        for hour in sorted(rng.sample(range(24), per_day)):
            now = d + timedelta(hours=hour)
            if now > last:
                continue
            curves = curves_at(tr.zone, idx.history(now), now, smooth_hs)
            ahead = idx.future(now, WINDOW_S)
            run.times.append(now)
            for name, pts in curves.items():
                day = [place_job(pts, ahead, now, duration_s=h * 3600, window_s=WINDOW_S) for h in DURATIONS_H]
                run.placed.setdefault(name, []).append([p for p in day if p is not None])
        d += timedelta(days=1)
    return run


def add_trailing(run: ZoneRun, blend: str) -> None:
    """The ``trailing`` choice: at each decision, the curve with the least regret over the
    decisions of the last :data:`TRAILING_DAYS` days whose windows had closed by then."""
    names = {"point": "point", "blend": blend, "profile": "profile"}
    regret = {c: [sum(p.regret_g for p in day) for day in run.placed[names[c]]] for c in CHOICES}
    out: list[list[Placement]] = []
    lo = 0
    for i, now in enumerate(run.times):
        while lo < i and run.times[lo] < now - timedelta(days=TRAILING_DAYS):
            lo += 1
        closed = [k for k in range(lo, i) if run.times[k] + timedelta(seconds=WINDOW_S) <= now]
        best = min(CHOICES, key=lambda c: (sum(regret[c][k] for k in closed), CHOICES.index(c) != 1))
        out.append(run.placed[names[best]][i])
    run.placed["trailing"] = out


def table(runs: list[ZoneRun], curves: Sequence[str], title: str) -> dict[str, object]:
    """Per zone: each curve's share of the oracle's savings, gap closed and regret."""
    print(f"\n## {title}\n")
    head = " | ".join(f"{c} share | {c} gap closed | {c} regret g" for c in curves)
    print(f"| zone | oracle saved kg | {head} |")
    print("|---|---|" + "---|---|---|" * len(curves))
    rows = {}
    for r in runs:
        _, oracle, _ = r.total("profile")
        prof_saved = r.total("profile")[0]
        cells = []
        row: dict[str, object] = {"oracle_saved_g": oracle}
        for c in curves:
            saved, _, regret = r.total(c)
            gap = gap_closed(saved, prof_saved, oracle)
            row[c] = {"saved_g": saved, "share": saved / oracle if oracle else None,
                      "gap_closed": gap, "regret_g": regret}
            cells.append(f"{100 * saved / oracle:.1f}% | {'-' if gap is None else f'{100 * gap:+.0f}%'} | "
                         f"{regret:.1f}")
        rows[r.zone] = row
        print(f"| {r.zone} | {oracle / 1000:.1f} | " + " | ".join(cells) + " |")
    summary: dict[str, object] = {}
    cells = []
    for c in curves:
        share = weighted_share_of_oracle(r.total(c)[:2] for r in runs)
        gaps = [gap_closed(r.total(c)[0], r.total("profile")[0], r.total("profile")[1]) for r in runs]
        positive = sum(g is not None and g > 0 for g in gaps)
        regret = math.fsum(r.total(c)[2] for r in runs) / len(runs)
        summary[c] = {"weighted_share": share, "gap_closed_positive": positive, "mean_regret_g": regret}
        cells.append(f"{100 * (share or 0):.1f}% | {positive}/{len(runs)} > 0 | {regret:.1f}")
    print(f"| **all (kg-weighted)** | {sum(r.total('profile')[1] for r in runs) / 1000:.1f} | "
          + " | ".join(cells) + " |")
    return {"zones": rows, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-day", type=int, default=1, help="decisions a day per zone")
    ap.add_argument("--zones", default="", help="only these 2023 zones (comma-separated)")
    ap.add_argument("--json", dest="json_out", default="")
    args = ap.parse_args(argv)
    if (data := shared_data()) is None:
        print("shared data not found: set CARBONSHIFT_SHARED_DATA", file=sys.stderr)
        return 0
    em = data / "electricitymaps-portal"
    t0 = time.perf_counter()
    out: dict[str, object] = {"per_day": args.per_day, "durations_h": list(DURATIONS_H)}

    # 1. tune the blend's smoothing on 2022
    tune = [run_zone(em / f"{z}_2022_hourly.csv", args.per_day, TUNE_SMOOTH_H) for z in TUNE_ZONES]
    cands = ["point", *(f"blend{h:g}" for h in TUNE_SMOOTH_H), "profile", "recent"]
    print(f"\n## Tuning on 2022 (GB, DE, California): kg-weighted share of the oracle's savings "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print("| curve | " + " | ".join(r.zone for r in tune) + " | kg-weighted | mean regret g |")
    print("|---|" + "---|" * (len(tune) + 2))
    tuned: dict[str, float] = {}
    for c in cands:
        share = weighted_share_of_oracle(r.total(c)[:2] for r in tune) or 0.0
        tuned[c] = share
        per = " | ".join(f"{100 * r.total(c)[0] / r.total(c)[1]:.1f}%" for r in tune)
        regret = math.fsum(r.total(c)[2] for r in tune) / len(tune)
        print(f"| {c} | {per} | {100 * share:.1f}% | {regret:.1f} |")
    best_h = max(TUNE_SMOOTH_H, key=lambda h: tuned[f"blend{h:g}"])
    print(f"\nbest blend smoothing on 2022: {best_h:g} h (the default is {_PLAN_SMOOTH_H:g} h)")
    out["tuning"] = {"shares": tuned, "best_smooth_h": best_h}
    hs = sorted({best_h, _PLAN_SMOOTH_H})
    blend = f"blend{best_h:g}"
    curves = ["point", *(f"blend{h:g}" for h in hs), "profile", "trailing", "recent"]

    # 2. held out: 2024, same zones
    held = [run_zone(em / f"{z}_2024_hourly.csv", args.per_day, hs) for z in TUNE_ZONES]
    for r in held:
        add_trailing(r, blend)
    out["2024"] = table(held, curves, f"Held out: 2024, GB, DE, California ({time.perf_counter() - t0:.0f} s)")

    # 3. the sixteen 2023 zones, rolling origin
    only = {z for z in args.zones.split(",") if z}
    files = [f for f in sorted(em.glob("*_2023_hourly.csv")) if not only or f.name.split("_")[0] in only]
    runs = []
    for f in files:
        r = run_zone(f, args.per_day, hs)
        add_trailing(r, blend)
        runs.append(r)
        print(f"  {r.zone}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    out["2023"] = table(runs, curves, f"The {len(runs)} zones of 2023, rolling origin "
                                      f"({time.perf_counter() - t0:.0f} s)")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
