"""The local forecaster's numpy fit against the plain pure-Python one (``reference_fit``),
and the reuse of fits: in this process within a refit block, and by other processes from
the folder the app names (``intensity.fits``)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intensity import forecast as fc
from intensity.model import IntensityPoint, Kind
from tests.intensity import reference_fit as ref

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2023, 1, 2, tzinfo=UTC)


def series(values: list[float], start: datetime = T0, step_s: int = 3600) -> list[IntensityPoint]:
    return [IntensityPoint("Z", start + timedelta(seconds=i * step_s),
                           start + timedelta(seconds=(i + 1) * step_s), v, Kind.ACTUAL, "test")
            for i, v in enumerate(values)]


def wave(days: int, seed: int, noise: float) -> list[float]:
    out = []
    x = seed
    for h in range(days * 24):
        x = (1103515245 * x + 12345) % 2**31
        out.append(300 + 80 * math.sin(2 * math.pi * h / 24) + (40 if (h // 24) % 7 >= 5 else 0)
                   + noise * (x / 2**31 - 0.5))
    return out


def close(a: list[IntensityPoint], b: list[IntensityPoint]) -> None:
    assert [(p.start, p.end, p.signal) for p in a] == [(p.start, p.end, p.signal) for p in b]
    for p, q in zip(a, b, strict=True):
        assert q.intensity_g_per_kwh == pytest.approx(p.intensity_g_per_kwh, rel=1e-9, abs=1e-9)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days=st.integers(15, 45), seed=st.integers(0, 10**6), noise=st.floats(0, 200),
       cut=st.integers(0, 23), drop=st.lists(st.integers(0, 2000), max_size=20),
       planning=st.booleans(), step_s=st.sampled_from([1800, 3600]))
def test_numpy_fit_gives_the_pure_python_forecast(
    days: int, seed: int, noise: float, cut: int, drop: list[int], planning: bool, step_s: int
) -> None:
    """Any history (gaps, half-hourly, a mid-block origin): the same forecast, to 1e-9."""
    per_day = 86400 // step_s
    pts = series(wave(days, seed, noise)[: days * per_day - cut], step_s=step_s)
    pts = [p for i, p in enumerate(pts) if i not in set(drop)]
    now = pts[-1].end + timedelta(minutes=10)
    fc.clear_cache()
    ref._coef_cache.clear()
    close(ref.local_forecast("Z", pts, now, 50 * 3600, for_planning=planning),
          # the reference plans on the blend (the curve it was written for)
          fc.local_forecast("Z", pts, now, 50 * 3600, curve="blend" if planning else "point"))


@settings(max_examples=40, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 7), st.floats(0, 900)),
                      min_size=1, max_size=40),
       res=st.sampled_from([900, 1800, 3600]))
def test_regular_series_matches_the_plain_loop(spans: list[tuple[int, int, float]], res: int) -> None:
    """Unaligned, overlapping and gappy points: the same gap-free grid."""
    pts = [IntensityPoint("Z", T0 + timedelta(minutes=15 * a), T0 + timedelta(minutes=15 * (a + d)),
                          v, Kind.ACTUAL, "t") for a, d, v in spans]
    t_ref, y_ref = ref.regular_series(pts, res)
    t_new, y_new = fc.regular_series(pts, res)
    assert t_new == t_ref
    assert y_new == pytest.approx(y_ref, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("zone", ["GB", "DE-LU"])
def test_numpy_fit_on_real_data_matches_the_pure_python_fit(shared_data: Path, zone: str) -> None:
    from intensity.providers.replay import read_trace

    pts = list(read_trace(shared_data / "electricitymaps-portal" / f"{zone}_2023_hourly.csv").points)
    for day in (30, 200):
        now = pts[0].start + timedelta(days=day, hours=7)
        past = [p for p in pts if p.end <= now]
        close(ref.local_forecast(zone, past, now, 72 * 3600, for_planning=True),
              fc.local_forecast(zone, past, now, 72 * 3600, curve="blend"))


def test_one_fit_per_block_as_the_history_slides() -> None:
    """Hourly decisions through a week reuse one fit; the next block fits again."""
    values = wave(60, 7, 30)
    fc.clear_cache()
    # blocks start on the epoch's weekday (Thursday): days 38 and 45 after T0 (a Monday)
    for h in range(1, 7 * 24, 7):
        n = 38 * 24 + h
        fc.local_forecast("Z", series(values[:n]), T0 + timedelta(hours=n), 24 * 3600)
    assert len(fc._coef_cache) == 1
    n = 45 * 24 + 1
    fc.local_forecast("Z", series(values[:n]), T0 + timedelta(hours=n), 24 * 3600)
    assert len(fc._coef_cache) == 2
    (key,) = [k for k in fc._coef_cache if k.fit_end_ts == (T0 + timedelta(days=45)).timestamp()]
    assert key.train_days == 42


PROBE = """
import json, sys
from datetime import datetime
from intensity.forecast import local_forecast
from intensity.model import IntensityPoint, Kind
vals, start, fit_dir = json.loads(sys.argv[1])
from datetime import timedelta
t0 = datetime.fromisoformat(start)
pts = [IntensityPoint("Z", t0 + timedelta(hours=i), t0 + timedelta(hours=i + 1), v, Kind.ACTUAL, "t")
       for i, v in enumerate(vals)]
out = local_forecast("Z", pts, pts[-1].end, 6 * 3600, fit_dir=fit_dir)
print(json.dumps({"values": [p.intensity_g_per_kwh for p in out], "numpy": "numpy" in sys.modules}))
"""


def _forecast_in_new_process(values: list[float], fit_dir: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps([values, T0.isoformat(), str(fit_dir)])],
                       capture_output=True, text=True, env=env, timeout=120, check=True)
    return json.loads(r.stdout)["values"]


def test_another_process_reuses_a_stored_fit_only_for_the_same_data(tmp_path: Path) -> None:
    values = wave(30, 3, 40)
    first = _forecast_in_new_process(values, tmp_path)
    files = list(tmp_path.glob("*.fit.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["key"]["zone"] == "Z" and stored["key"]["train_days"] == 21
    # another process reads the file: weights edited on disk show in its forecast
    stored["weights"] = [[0.0] * fc._N_FEATURES for _ in stored["weights"]]
    for row in stored["weights"]:
        row[0] = 123.0
    files[0].write_text(json.dumps(stored))
    assert _forecast_in_new_process(values, tmp_path) == [123.0] * 6
    # one changed training value: another fingerprint, a real fit again (the same as the first)
    changed = [*values[:100], values[100] + 1e-6, *values[101:]]
    again = _forecast_in_new_process(changed, tmp_path)
    assert again == pytest.approx(first, rel=1e-6) and again != [123.0] * 6
    assert len(list(tmp_path.glob("*.fit.json"))) == 2


def test_a_stored_fit_of_another_model_version_or_unreadable_is_refitted(tmp_path: Path) -> None:
    values = wave(30, 5, 40)
    first = _forecast_in_new_process(values, tmp_path)
    (path,) = tmp_path.glob("*.fit.json")
    stored = json.loads(path.read_text())
    stored["version"] = "direct-0"
    stored["weights"] = [[1.0] * fc._N_FEATURES for _ in stored["weights"]]
    path.write_text(json.dumps(stored))
    assert _forecast_in_new_process(values, tmp_path) == pytest.approx(first, rel=1e-12)
    path.write_text("{not json")
    assert _forecast_in_new_process(values, tmp_path) == pytest.approx(first, rel=1e-12)


def test_importing_the_forecaster_does_not_import_numpy() -> None:
    code = "import sys, intensity.forecast, intensity.fits; print('numpy' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, check=True)
    assert r.stdout.strip() == "False"


def test_simulate_keeps_its_fits_for_the_next_run(shared_data: Path, tmp_path: Path) -> None:
    """`carbonshift simulate` (the real CLI) stores each block's fit in the data directory;
    a second run reads them instead of fitting, with the same result."""
    trace = shared_data / "electricitymaps-portal" / "GB_2023_hourly.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
           "simulate", "--trace", str(trace), "--jobs", "30", "--json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    fits = sorted((tmp_path / "data").rglob("forecast-fits/GB-3600s-*.fit.json"))
    assert len(fits) >= 10  # one per weekly block in which a job arrived
    for f in fits:  # the next run must take these, not refit: make them recognisable
        stored = json.loads(f.read_text())
        stored["weights"] = [[0.0] * 4 + [1.0] + [0.0] * 12 for _ in stored["weights"]]
        f.write_text(json.dumps(stored))
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    assert json.loads(second) != json.loads(first)  # planned on the bare profile it read
    for f in fits:
        f.unlink()
    third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    assert json.loads(third) == json.loads(first)
