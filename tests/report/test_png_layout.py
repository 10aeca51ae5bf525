"""PNG charts as a person reads them: time labels never overlap and the legend never covers
the data, for the shapes carbonshift draws (a 48 h forecast with windows, a job's power over
intensity, a 30-bar report), drawn by the real matplotlib; and the CLI writes them."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from intensity.model import IntensityPoint, Kind
from intensity.providers.replay import SHIPPED_TRACE
from probes.model import Method, Sample
from scheduler.charts import BarChart, BarSeries, draw_png, forecast_chart, job_chart

pytest.importorskip("matplotlib", reason="the plot extra is not installed")
REPO = Path(__file__).resolve().parents[2]
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def _points(hours: int) -> list[IntensityPoint]:
    return [IntensityPoint("GB", T + i * H, T + (i + 1) * H, 150 + 80 * math.sin(i / 4), Kind.FORECAST, "x")
            for i in range(hours)]


def _charts() -> list[Any]:
    samples = [Sample(T + timedelta(minutes=10 * i), T + timedelta(minutes=10 * (i + 1)), "cpu", 6e4,
                      Method.RAPL) for i in range(60)]
    return [
        forecast_chart("GB", _points(48), windows=[(T + 20 * H, T + 23 * H, "best window"),
                                                   (T, T + 3 * H, "run now")], now=T),
        forecast_chart("GB", _points(14 * 24), windows=[(T + 50 * H, T + 60 * H, "planned")]),
        job_chart(title="job 7", samples=samples, points=_points(12), chosen=(T, T + 10 * H),
                  run_now=(T + H, T + 11 * H), tz=UTC),
        BarChart(title="report", unit="kg", labels=[f"2026-03-{d:02d}" for d in range(1, 31)],
                 series=[BarSeries("emitted", [1.0 + d % 5 for d in range(30)], "#c0392b"),
                         BarSeries("saved", [0.5 + d % 3 for d in range(30)], "#27ae60")]),
    ]


def _overlap(a: Any, b: Any) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("index", range(4))
def test_time_labels_never_overlap_and_the_legend_is_off_the_data(index: int) -> None:
    import matplotlib.pyplot as plt

    fig = draw_png(_charts()[index])
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        axes = fig.get_axes()
        labels = [t for t in axes[0].get_xticklabels() if t.get_text()]
        assert len(labels) >= 3
        rotation = labels[0].get_rotation()
        if rotation == 0:
            boxes = [t.get_window_extent(renderer) for t in labels]
            assert not any(_overlap(a, b) for a, b in itertools.pairwise(boxes))
        else:  # rotated: neighbours' anchors are further apart than a line of text is tall
            xs = [t.get_window_extent(renderer).x1 for t in labels]
            height = max(t.get_window_extent(renderer).height for t in labels)
            gap = height * math.cos(math.radians(90 - rotation))
            assert all(b - a > gap for a, b in itertools.pairwise(xs))
        legends = fig.legends
        assert legends, "every chart here has a legend"
        box = legends[0].get_window_extent(renderer)
        for ax in axes:
            assert not _overlap(box, ax.get_window_extent(renderer)), "the legend covers the data"
        # and nothing is cut off the figure
        fig_box = fig.bbox
        assert box.y0 >= fig_box.y0 - 1 and box.x0 >= fig_box.x0 - 1
    finally:
        plt.close(fig)


def test_forecast_png_through_the_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    config = tmp_path / "config.toml"
    config.write_text(f'[intensity]\nproviders = ["replay"]\ntrace = "{SHIPPED_TRACE}"\n')
    env.update(HOME=str(tmp_path), CARBONSHIFT_CONFIG=str(config), CARBONSHIFT_DB=str(tmp_path / "cs.db"),
               PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "carbonshift", "forecast", "GB", "--at", "2023-03-10T12:00Z",
                        "--png", str(tmp_path / "f.png"), "--json"], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["zone"] == "GB"
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
