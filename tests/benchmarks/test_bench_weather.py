"""The CarbonCast-format readers of ``bench_weather.py``, on made fixtures in that format
(``data/carboncast/README.md``: CarbonCast's own files are not shipped)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.benchmarks import bench_weather as bw

DATA = Path(__file__).parent / "data" / "carboncast"


def test_intensity_rows_become_hourly_utc_points_without_the_blank_one() -> None:
    ci, _ = bw.region_files(DATA, "DE") or (None, None)
    assert ci is not None
    pts = bw.read_intensity(ci, "DE")
    assert [p.start.hour for p in pts] == [22, 23, 0, 2, 3]
    assert pts[0].start == datetime(2021, 6, 30, 22, tzinfo=UTC)
    assert pts[0].intensity_g_per_kwh == 400.0 and pts[-1].intensity_g_per_kwh == 450.0
    assert all((p.end - p.start).total_seconds() == 3600 for p in pts)


def test_weather_rows_become_one_series_with_the_missing_hour_blank() -> None:
    _, wf = bw.region_files(DATA, "DE") or (None, None)
    assert wf is not None and wf.name == "DE_aggregated_weather_data.csv"
    w = bw.read_weather(wf, "DE")
    assert w.start == datetime(2021, 6, 30, 22, tzinfo=UTC) and w.step_s == 3600 and len(w) == 6
    assert set(w.names) == set(bw.COLUMNS.values())
    assert math.isnan(w.values["wind_speed"][2])
    assert w.values["wind_speed"][5] == 3.5 and w.values["temperature"][5] == 280.5


@pytest.mark.parametrize("text, hour", [
    ("2020-01-01 00:00:00", 0), ("2019-1-1 7:00", 7), ("2021-07-01 05:00:00+00:00", 5)])
def test_carboncast_times_parse_as_utc(text: str, hour: int) -> None:
    assert bw.parse_time(text).hour == hour and bw.parse_time(text).tzinfo is UTC


def test_a_missing_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bw.main([str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a CarbonCast time"):
        bw.parse_time("01/07/2021 00:00")


def test_ensembleci_rows_hold_the_next_days_weather() -> None:
    assert bw.default_shift_h(Path("DE_weather_forecast.csv")) == 24
    assert bw.default_shift_h(Path("DE_aggregated_weather_data.csv")) == 0
    w = bw.read_weather(DATA / "DE" / "DE_aggregated_weather_data.csv", "DE", shift_h=24)
    assert w.start == datetime(2021, 7, 1, 22, tzinfo=UTC)
