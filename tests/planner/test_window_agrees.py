"""`forecast ZONE` (:func:`scheduler.windows.choose_window`) and a submit's plan choose on one
arithmetic (:mod:`intensity.series`: intensities to 0.001 g/kWh, exact integer sums, the
earliest of equal windows), so they name the same start, near-ties included."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.clock import ManualClock
from scheduler.config import load_settings
from scheduler.intensity_setup import build_intensity_service
from scheduler.model import Policy
from scheduler.queue import Queue, SubmitRequest
from scheduler.storage.store import open_store
from scheduler.windows import choose_window
from tests.integration.conftest import ORIGIN

#: hour (from ORIGIN) -> intensity: two clean hours 0.0003 g/kWh apart, everything else dirty
NEAR_TIE = {3: 100.0004, 6: 100.0001}


def test_forecast_zone_and_submit_name_the_same_start_on_a_near_tie(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    with trace.open("w", encoding="utf-8") as f:
        f.write("time,intensity_g_per_kwh\n")
        for h in range(-48, 72):
            t = ORIGIN + timedelta(hours=h)
            f.write(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{NEAR_TIE.get(h, 300.0)}\n")
    settings = load_settings(env={"HOME": str(tmp_path)},
                             overrides={"db": f"sqlite:///{tmp_path / 'q.db'}", "default_zone": "TRACE"})
    settings = replace(settings, intensity={**settings.intensity, "providers": ["replay"], "trace": str(trace)})
    store = open_store(settings.db)
    try:
        intensity = build_intensity_service(settings, {}, store)
        clock = ManualClock(ORIGIN)
        queue = Queue(store=lambda: store, intensity=lambda: intensity, settings=lambda: settings,
                      clock=lambda: clock, user=lambda: "alice")
        job = queue.submit(SubmitRequest(argv=["true"], duration_s=3600,
                                         overrides=Policy(name="(flags)", deadline_s=12 * 3600))).job
        window = choose_window(intensity, "TRACE", ORIGIN, 3600, ORIGIN + timedelta(hours=12))
        # hour 6 is lower by 0.0003 g/kWh, below the planner's resolution: a tie, and the
        # earlier hour wins in both
        assert job.planned_start == window.start == ORIGIN + timedelta(hours=3)
        assert window.mean_g_per_kwh == pytest.approx(100.0004, abs=1e-9)  # reported unrounded
    finally:
        store.close()
