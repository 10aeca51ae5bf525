"""Energy so far is visible while a job runs: through the real daemon (a subprocess on an
accelerated clock), `show --json` reports energy > 0 within about two sampling intervals of
the run's start, and the figure keeps growing (samples are not held back ~50 s in a batch)."""

from __future__ import annotations

import json
import time

from scheduler.model import JobState
from tests.reliability.conftest import PY, Sim

SAMPLING_S = 3.0  # real seconds; the old batching held samples back ten intervals (30 s)


def _energy_j(sim: Sim, job_id: int) -> float:
    r = sim.cli("show", str(job_id), "--json", CARBONSHIFT_SAMPLING_INTERVAL_S=str(SAMPLING_S))
    assert r.returncode == 0, r.stderr
    proj = json.loads(r.stdout)["projection"]
    return 0.0 if proj is None else float(proj["energy_j"])


def test_show_reports_energy_within_two_sampling_intervals(sim: Sim) -> None:
    burn = "import time\nend = time.time() + 40\nwhile time.time() < end: pass\n"
    r = sim.cli("submit", "--name", "burn", "--duration", "40m", "--now", "--", PY, "-c", burn)
    assert r.returncode == 0, r.stderr
    job_id = int(r.stdout.split()[1])
    sim.start_daemon("--exit-when-idle", CARBONSHIFT_SAMPLING_INTERVAL_S=str(SAMPLING_S))
    sim.wait_for(lambda: sim.state(job_id) is JobState.RUNNING, timeout=60, what="the job to start")
    seen_running = time.monotonic()
    first = 0.0
    while first <= 0 and time.monotonic() - seen_running < 25:
        first = _energy_j(sim, job_id)
    waited_s = time.monotonic() - seen_running
    print(f"energy so far {first:.1f} J visible {waited_s:.1f} s after the run was seen")
    assert first > 0, "show --json still reads 0 J 25 s into the run"
    # two intervals, plus the show command's own start-up on a loaded machine
    assert waited_s < 2 * SAMPLING_S + 6, f"energy appeared only after {waited_s:.1f} s"
    time.sleep(2 * SAMPLING_S)
    later = _energy_j(sim, job_id)
    assert sim.state(job_id) is not JobState.RUNNING or later > first, (first, later)
