"""The weather-informed local forecaster against the history-only one, on recorded GFS
weather forecasts and hourly carbon intensity in CarbonCast's file format (issue 22).

Run: ``python tests/benchmarks/bench_weather.py DATA_DIR [--regions DE,NL] [--every-h 6]
[--jobs 500] [--json out.json]``.

``DATA_DIR`` holds one folder per region, as CarbonCast's ``data/`` does
(github.com/carbonfirst/CarbonCast): ``<R>/<R>_lifecycle_emissions.csv`` (hourly
``carbon_intensity`` by ``UTC time`` or ``datetime``) and the region's GFS forecast
aggregates, ``<R>/<R>_aggregated_weather_data.csv`` or ``<R>/<R>_weather_forecast.csv``
(``datetime,forecast_avg_wind_speed_wMean,forecast_avg_temperature_wMean,...``). The
files are not shipped: CarbonCast states no licence. ``/work/carboncast-data`` on the
development machine has them, with where each came from (``PROVENANCE.md``).

Split (the issue's): fitted on 2020 to mid-2021, scored on 2021-07-01 .. 2022-01-01. Both
models refit weekly on what lies before each origin only (the shipped behaviour); the
history-only model on its usual 180 days, the weather model on up to
:data:`~intensity.forecast.WEATHER_MAX_FIT_DAYS`, from 2020-01-01 at the earliest.

* forecast: MAE and MAPE at 24 h lead (and 1, 6, 48 h) on the same origins, every
  ``--every-h`` hours over the scoring half-year;
* savings: ``--jobs`` jobs of 1-8 h due 24 h after submission over the same half-year,
  planned by the project's planner (``scheduler.simulate.compare``: re-plans every hour,
  ``scheduler.planner.best_start`` inside), on the history-only planning curve, the
  weather model's point forecast and its planning curve; the share of the oracle's savings.

Caveat: each file is one hourly series, not vintages by issue time. EnsembleCI's copies
hold at ``t`` the forecast for ``t + 24 h`` (:func:`default_shift_h`), so once shifted each
value is a forecast issued a day before its hour: right for the 24 h lead, a little
optimistic past it (a later issue), and the fit's past weather is day-ahead forecasts
too, as Open-Meteo's past days are not quite.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import re
import sys
import time
from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from intensity.accuracy import LeadError, rolling_origin  # noqa: E402
from intensity.forecast import WEATHER_MAX_FIT_DAYS, local_forecast  # noqa: E402
from intensity.model import IntensityPoint, Kind  # noqa: E402
from intensity.weather import WeatherSeries  # noqa: E402
from scheduler.model import Site  # noqa: E402
from scheduler.planner import PlanOptions  # noqa: E402
from scheduler.simulate import Forecaster, compare, generate_workload, run_mode  # noqa: E402

TRAIN_START = datetime(2020, 1, 1, tzinfo=UTC)
TEST_START = datetime(2021, 7, 1, tzinfo=UTC)
TEST_END = datetime(2022, 1, 1, tzinfo=UTC)
LEADS_S = (3600, 6 * 3600, 24 * 3600, 48 * 3600)
REPLAN_S = 3600
WEATHER_FILES = ("{r}_aggregated_weather_data.csv", "{r}_weather_forecast.csv")
#: CarbonCast's weather columns and the inputs they become (wind first: its square is used)
COLUMNS = {
    "forecast_avg_wind_speed_wMean": "wind_speed",
    "forecast_avg_temperature_wMean": "temperature",
    "forecast_avg_dewpoint_wMean": "dewpoint",
    "forecast_avg_dswrf_wMean": "shortwave_radiation",
    "forecast_avg_precipitation_wMean": "precipitation",
}
_TIME = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\+00:00|Z)?$")


def parse_time(text: str) -> datetime:
    """CarbonCast's times: ``2020-01-01 00:00:00``, ``2019-1-1 0:00``, ``...+00:00`` (UTC)."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"not a CarbonCast time: {text!r}")
    y, mo, d, h, mi, s = (int(g or 0) for g in m.groups())
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def read_intensity(path: Path, zone: str) -> list[IntensityPoint]:
    """Hourly actual points from a ``*_emissions.csv`` (a row per hour, ``carbon_intensity``)."""
    out: dict[datetime, IntensityPoint] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            when = row.get("UTC time") or row.get("datetime")
            value = row.get("carbon_intensity")
            if not when or value in (None, ""):
                continue
            v = float(value)
            if not math.isfinite(v) or v < 0:
                continue
            start = parse_time(when)
            out[start] = IntensityPoint(zone, start, start + timedelta(hours=1), v, Kind.ACTUAL,
                                        "carboncast")
    return [out[k] for k in sorted(out)]


def read_weather(path: Path, zone: str, shift_h: int = 0) -> WeatherSeries:
    """The hourly weather file as one :class:`WeatherSeries` (missing hours are ``nan``),
    each row taken as the weather ``shift_h`` hours after its time."""
    rows: dict[datetime, dict[str, float]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            when = row.get("datetime")
            if not when:
                continue
            vals = {}
            for col, name in COLUMNS.items():
                raw = row.get(col)
                vals[name] = float(raw) if raw not in (None, "") else math.nan
            rows[parse_time(when)] = vals
    if not rows:
        raise ValueError(f"{path}: no weather rows")
    start, end = min(rows), max(rows)
    n = int((end - start).total_seconds() // 3600) + 1
    cols: dict[str, list[float]] = {name: [math.nan] * n for name in COLUMNS.values()}
    for when, vals in rows.items():
        i = int((when - start).total_seconds() // 3600)
        for name, v in vals.items():
            cols[name][i] = v
    return WeatherSeries(zone, start + timedelta(hours=shift_h), 3600,
                         {k: tuple(v) for k, v in cols.items()}, "gfs")


def default_shift_h(weather_file: Path) -> int:
    """How far after its time stamp a row's weather lies: 0 in CarbonCast's
    ``*_aggregated_weather_data.csv``; 24 h in EnsembleCI's ``*_weather_forecast.csv``,
    whose row at ``t`` holds the day-ahead forecast for ``t + 24 h``: DE's intensity
    correlates best with its wind 24 h earlier (-0.67, against -0.45 at the same hour;
    NL -0.64 at 20-24 h), and its values match CarbonCast's own DE file about 22-24 h
    later (wind 7.50 m/s at 2020-01-03 12:00 against CarbonCast's 7.50 at 2020-01-04
    10:00, 3.96 at 01-04 00:00 against 3.90 at 01-04 22:00)."""
    return 24 if weather_file.name.endswith("_weather_forecast.csv") else 0


def region_files(data: Path, region: str) -> tuple[Path, Path] | None:
    folder = data / region
    ci = folder / f"{region}_lifecycle_emissions.csv"
    for pattern in WEATHER_FILES:
        w = folder / pattern.format(r=region)
        if ci.is_file() and w.is_file():
            return ci, w
    return None


def _longer_history(points: Sequence[IntensityPoint], first: datetime) -> Forecaster:
    """Wrap nothing but the history: the forecaster is handed every point from ``first``
    that ended by ``now`` (the simulator hands 190 days; the weather fit may use more)."""
    starts = [p.start for p in points]

    def history(now: datetime) -> list[IntensityPoint]:
        lo = bisect_left(starts, first)
        hi = bisect_left(starts, now - timedelta(hours=1)) + 1
        return [p for p in points[lo:hi] if p.end <= now]

    def forecaster(zone: str, hist: Sequence[IntensityPoint], now: datetime, horizon_s: int,
                   **kw: Any) -> list[IntensityPoint]:
        del hist
        return local_forecast(zone, history(now), now, horizon_s, **kw)

    return forecaster


def models(points: Sequence[IntensityPoint], weather: WeatherSeries,
           first: datetime) -> dict[str, Forecaster]:
    longer = _longer_history(points, first)
    return {
        "history": local_forecast,
        "weather": functools.partial(longer, weather=weather),  # type: ignore[call-arg]
    }


def forecast_errors(points: Sequence[IntensityPoint], weather: WeatherSeries, every_h: int,
                    start: datetime, end: datetime, first: datetime) -> dict[str, list[LeadError]]:
    """Rolling-origin errors of both models over the origins in ``[start, end)``."""
    fcs = models(points, weather, first)
    return rolling_origin(points, fcs, leads_s=LEADS_S, origin_every_s=every_h * 3600,
                          warmup_s=0, history_s=190 * 86400, start=start,
                          end=end + timedelta(hours=49))


CURVES = ("history (planning curve)", "weather (point forecast)", "weather (planning curve)")


def savings(points: Sequence[IntensityPoint], weather: WeatherSeries, n_jobs: int,
            start: datetime, end: datetime, first: datetime, seed: int = 2021,
            curves: Sequence[str] = CURVES) -> dict[str, Any]:
    """Share of the oracle's savings, history-only planning curve vs the weather model."""
    from intensity.forecast import planning_forecast

    zone = points[0].zone
    sites = {"site": Site("site", zone)}
    trace = [p for p in points if p.start < end + timedelta(days=3)]
    wl = generate_workload(n_jobs, ["site"], start, end, seed=seed)
    opts = PlanOptions(slot_s=900)
    longer = _longer_history(points, first)
    every: dict[str, Forecaster] = {
        "history (planning curve)": planning_forecast,
        "weather (point forecast)": functools.partial(longer, weather=weather),  # type: ignore[call-arg]
        "weather (planning curve)": functools.partial(longer, weather=weather, for_planning=True),  # type: ignore[call-arg]
    }
    out: dict[str, Any] = {"jobs": n_jobs}
    base = None
    for name in curves:
        fc = every[name]
        if base is None:
            c = compare(wl, sites, {zone: trace}, forecaster=fc, options=opts, replan_s=REPLAN_S)
            s = c.summary()
            base = s
            out["run_now_kg"] = float(s["run_now_g"] or 0) / 1000
            out["oracle_kg"] = float(s["oracle_g"] or 0) / 1000
            out["oracle_savings_pct"] = s["oracle_savings_pct"]
            total_g, misses = float(s["carbon_aware_g"] or 0), int(s["deadline_misses"] or 0)
        else:
            from scheduler.simulate import TraceIndex

            r = run_mode("carbon-aware", wl, sites, {zone: TraceIndex(trace)}, fc, options=opts,
                         replan_s=REPLAN_S)
            total_g, misses = r.total_g(), r.misses()
        run_now = out["run_now_kg"] * 1000
        oracle = out["oracle_kg"] * 1000
        out[name] = {"kg": total_g / 1000, "misses": misses,
                     "share_of_oracle": (run_now - total_g) / (run_now - oracle)
                     if run_now > oracle else math.nan}
    return out


def _lead(errs: list[LeadError], lead_s: int) -> LeadError | None:
    return next((e for e in errs if e.lead_s == lead_s), None)


def evaluate(data: Path, region: str, *, every_h: int, jobs: int, days: int | None = None,
             curves: Sequence[str] = CURVES, shift_h: int | None = None) -> dict[str, Any] | None:
    files = region_files(data, region)
    if files is None:
        print(f"  {region}: files missing under {data / region}", file=sys.stderr)
        return None
    points = read_intensity(files[0], region)
    shift = default_shift_h(files[1]) if shift_h is None else shift_h
    weather = read_weather(files[1], region, shift)
    first = max(TRAIN_START, points[0].start)
    points = [p for p in points if p.start >= first]
    end = TEST_END if days is None else min(TEST_END, TEST_START + timedelta(days=days))
    t0 = time.perf_counter()
    errs = forecast_errors(points, weather, every_h, TEST_START, end, first) if every_h else {}
    row: dict[str, Any] = {"region": region, "weather_file": files[1].name,
                           "weather_shift_h": shift, "mae": {}, "mape": {}}
    for name, e in errs.items():
        row["mae"][name] = {str(lead // 3600): (x.mae_g_per_kwh if (x := _lead(e, lead)) else None)
                            for lead in LEADS_S}
        row["mape"][name] = {str(lead // 3600): (x.mape_pct if (x := _lead(e, lead)) else None)
                             for lead in LEADS_S}
        row["origins"] = (x.n if (x := _lead(e, 24 * 3600)) else 0)
    if errs:
        h24, w24 = row["mae"]["history"]["24"], row["mae"]["weather"]["24"]
        row["mae_ratio_24h"] = w24 / h24 if h24 and w24 is not None else None
    if jobs > 0:
        row["savings"] = savings(points, weather, jobs, TEST_START, end, first, curves=curves)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def _share(s: dict[str, Any], name: str) -> str:
    v = s.get(name, {}).get("share_of_oracle")
    return f"{100 * v:.0f}%" if v is not None and math.isfinite(v) else "-"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\nTrained on 2020 to mid-2021 (weekly refits on the past only, weather fit on up to "
          f"{WEATHER_MAX_FIT_DAYS} days), scored 2021-07-01 .. 2022-01-01.\n")
    print("| region | 24 h MAE history | 24 h MAE weather | ratio | 24 h MAPE history | "
          "24 h MAPE weather | 6 h MAE h / w | share of oracle: history curve | "
          "weather point | weather curve | misses |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if not r["mae"]:
            r["mae"] = r["mape"] = {m: dict.fromkeys(("1", "6", "24", "48"), math.nan)
                                    for m in ("history", "weather")}
            r["mae_ratio_24h"] = math.nan
        mh, mw = r["mae"]["history"], r["mae"]["weather"]
        ph, pw = r["mape"]["history"], r["mape"]["weather"]
        s = r.get("savings") or {}
        share = functools.partial(_share, s)

        misses = sum(int(s.get(k, {}).get("misses", 0)) for k in s if isinstance(s.get(k), dict))
        print(f"| {r['region']} | {mh['24']:.1f} | {mw['24']:.1f} | {r['mae_ratio_24h']:.2f} | "
              f"{ph['24']:.1f}% | {pw['24']:.1f}% | {mh['6']:.1f} / {mw['6']:.1f} | "
              f"{share('history (planning curve)')} | {share('weather (point forecast)')} | "
              f"{share('weather (planning curve)')} | {misses} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="folder with one CarbonCast-format folder per region")
    ap.add_argument("--regions", default="DE", help="comma-separated regions (default DE)")
    ap.add_argument("--every-h", type=int, default=6,
                    help="hours between forecast origins (0: no forecast table)")
    ap.add_argument("--jobs", type=int, default=500, help="jobs in the savings run (0: none)")
    ap.add_argument("--days", type=int, default=None, help="score only the first N test days")
    ap.add_argument("--curves", default=",".join(str(i) for i in range(len(CURVES))),
                    help="which planning curves to run, by number: " + "; ".join(
                        f"{i} {c}" for i, c in enumerate(CURVES)) + " (0 always runs)")
    ap.add_argument("--weather-shift-h", type=int, default=None,
                    help="hours after its time stamp a weather row's values lie "
                         "(default: 0 for *_aggregated_weather_data.csv, 24 for *_weather_forecast.csv)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no such folder: {args.data} (give the folder holding DE/DE_lifecycle_emissions.csv ...)",
              file=sys.stderr)
        return 2
    rows = []
    for region in [r.strip() for r in args.regions.split(",") if r.strip()]:
        picked = sorted({0, *(int(i) for i in args.curves.split(",") if i.strip())})
        row = evaluate(args.data, region, every_h=args.every_h, jobs=args.jobs, days=args.days,
                       curves=[CURVES[i] for i in picked], shift_h=args.weather_shift_h)
        if row is not None:
            rows.append(row)
            print(f"  {region}: done ({row['seconds']} s)", file=sys.stderr)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
