"""Charts: the builders' numbers, and each renderer's output."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intensity.model import IntensityPoint, Kind
from probes.model import Method, Sample
from scheduler.charts import (
    BarChart,
    BarSeries,
    PlotUnavailable,
    forecast_chart,
    intensity_steps,
    job_chart,
    power_steps,
    render_png,
    render_svg,
    render_text,
    write_chart,
)

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _s(i: int, device: str, watts: float) -> Sample:
    return Sample(T + timedelta(seconds=10 * i), T + timedelta(seconds=10 * (i + 1)), device,
                  watts * 10, Method.RAPL)


def test_power_steps_sum_devices_per_interval() -> None:
    samples = [_s(i, "cpu", 50.0) for i in range(6)] + [_s(i, "gpu:0", 250.0) for i in range(3)]
    steps = power_steps(samples)
    assert len(steps) == 6
    assert [round(s.value) for s in steps] == [300, 300, 300, 50, 50, 50]
    assert steps[0].start == T and steps[-1].end == T + timedelta(seconds=60)
    assert power_steps([]) == []


def test_intensity_steps_prefer_actuals_over_forecasts() -> None:
    h = timedelta(hours=1)
    pts = [
        IntensityPoint("GB", T, T + h, 200.0, Kind.FORECAST, "x", issued_at=T - h),
        IntensityPoint("GB", T, T + h, 150.0, Kind.ACTUAL, "x"),
        IntensityPoint("GB", T + h, T + 2 * h, 90.0, Kind.FORECAST, "x", issued_at=T - 2 * h),
        IntensityPoint("GB", T + h, T + 2 * h, 80.0, Kind.FORECAST, "x", issued_at=T - h),
    ]
    assert [s.value for s in intensity_steps(pts)] == [150.0, 80.0]


def test_text_bars_are_proportional() -> None:
    chart = BarChart("t", ["a", "bb"], [BarSeries("run-now", [10.0, 5.0]), BarSeries("actual", [4.0, 0.0])], "g")
    text = render_text(chart, width=60)
    lines = text.splitlines()
    assert lines[0] == "t"
    a_now = next(ln for ln in lines if ln.startswith("a ") and "run-now" in ln)
    b_now = next(ln for ln in lines if ln.startswith("bb") and "run-now" in ln)
    assert a_now.count("█") == pytest.approx(2 * b_now.count("█"), abs=1)
    assert a_now.endswith(" 10") and "(g; " in lines[-1]
    assert render_text(BarChart("t", [], [], "g")).endswith("(no data)")


def test_text_time_chart_marks_windows_and_labels_axes() -> None:
    h = timedelta(hours=1)
    pts = [IntensityPoint("GB", T + i * h, T + (i + 1) * h, 100.0 + 10 * i, Kind.FORECAST, "x") for i in range(24)]
    chart = forecast_chart("GB", pts, windows=[(T + 2 * h, T + 5 * h, "best window")], tz=UTC)
    text = render_text(chart, width=58, height=4)
    lines = text.splitlines()
    assert lines[1] == "intensity (gCO2/kWh), 0 to 330"
    assert lines[2].lstrip().startswith("330 |") and lines[5].lstrip().startswith("0 |")
    window = next(ln for ln in lines if ln.endswith("best window"))
    start = window.index("=")
    assert 10 + 48 * 2 / 24 - 1 <= start <= 10 + 48 * 2 / 24 + 1  # 2 h into a 24 h axis of 48 columns
    assert lines[-1].split()[0] == "Mon"  # 24 h span: weekday and time


def test_svg_is_standalone_escaped_and_complete() -> None:
    h = timedelta(hours=1)
    samples = [_s(i, "cpu", 100.0) for i in range(360)]
    pts = [IntensityPoint("GB", T + i * h, T + (i + 1) * h, 100.0, Kind.ACTUAL, "x") for i in range(-12, 6)]
    chart = job_chart(title='job <1> "a&b"', samples=samples, points=pts,
                      chosen=(T, T + h), run_now=(T - 10 * h, T - 9 * h), tz=UTC)
    svg = render_svg(chart)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and svg.endswith("</svg>")
    assert "job &lt;1&gt;" in svg and "<1>" not in svg
    assert svg.count('class="span"') == 2 and svg.count('class="series"') == 2
    import xml.dom.minidom

    xml.dom.minidom.parseString(svg)  # well-formed


def test_write_chart_svg_needs_no_matplotlib_and_png_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chart = BarChart("t", ["a"], [BarSeries("x", [1.0])], "g")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert write_chart(chart, tmp_path / "c.svg").read_text().startswith("<svg")
    with pytest.raises(PlotUnavailable, match=r"pip install carbonshift\[plot\]"):
        write_chart(chart, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_png_of_a_time_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    h = timedelta(hours=1)
    pts = [IntensityPoint("GB", T + i * h, T + (i + 1) * h, 100.0 + i, Kind.FORECAST, "x") for i in range(12)]
    chart = job_chart(title="j", samples=[_s(i, "cpu", 80.0) for i in range(30)], points=pts,
                      chosen=(T, T + h), run_now=(T + 2 * h, T + 3 * h), tz=UTC)
    out = render_png(chart, tmp_path / "j.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 5000
