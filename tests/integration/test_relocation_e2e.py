"""Relocation and zones through the real CLI and the real daemon (issue 15, items 1 and 2).

Every command runs as a subprocess on one accelerated timeline (``CARBONSHIFT_CLOCK``),
planning on two replayed real traces: Electricity Maps' hourly DE and GB 2023 files, from
22 March 2023 08:00 UTC, when GB's grid was about four times cleaner than Germany's. The
home site ``local`` is in DE; the site ``gb`` is in GB.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.timeutil import iso

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "electricitymaps-portal"
DE = DATA / "DE-LU_2023_hourly.csv"
GB = DATA / "GB_2023_hourly.csv"
ORIGIN = datetime(2023, 3, 22, 8, 0, tzinfo=UTC)
FACTOR = 600.0  # ten simulated minutes per real second

pytestmark = pytest.mark.skipif(not (DE.exists() and GB.exists()), reason="shared data not present")


class Timeline:
    """One simulated timeline for every process a test starts, on the two replayed zones."""

    def __init__(self, tmp: Path, extra_config: str = "") -> None:
        self.tmp = tmp
        self.config = tmp / "config.toml"
        self.config.write_text(
            f'default_zone = "DE"\ndb = "sqlite:///{tmp / "cs.db"}"\ndata_dir = "{tmp / "data"}"\n'
            f"sampling_interval_s = 0.2\n{extra_config}"
            '[intensity]\nproviders = ["replay", "static"]\n'
            f'[providers.replay]\ntraces = ["DE={DE}", "GB={GB}"]\n'
        )
        self.config.chmod(0o600)
        self.t0 = time.monotonic()

    def now(self) -> datetime:
        return ORIGIN + timedelta(seconds=(time.monotonic() - self.t0) * FACTOR)

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.tmp),
            "XDG_DATA_HOME": str(self.tmp / "xdg"), "PYTHONPATH": str(REPO),
            "CARBONSHIFT_CONFIG": str(self.config), "CARBONSHIFT_CLOCK": f"{iso(self.now())}*{FACTOR:g}",
        }

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())", *args],
            env=self.env(), cwd=str(self.tmp), capture_output=True, text=True, timeout=timeout,
        )

    def ok(self, *args: str) -> str:
        r = self.cli(*args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout


def test_the_daemon_keeps_a_job_planned_on_a_cleaner_site(tmp_path: Path) -> None:
    tl = Timeline(tmp_path)
    tl.ok("site", "add", "gb", "--zone", "GB", "--gpus", "0", "--cpus", "4", "--transfer-delay", "30m")
    out = tl.ok("submit", "--site", "local,gb", "--duration", "1h", "--deadline", "6h", "--", "true")
    assert " on gb (GB)" in out.splitlines()[0]  # the site's zone, not the home's
    run = tl.cli("run", "--exit-when-idle", timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "on local" not in run.stdout, run.stdout  # the re-plan did not send it home
    (row,) = json.loads(tl.ok("history", "--format", "json"))
    assert (row["state"], row["site"]) == ("succeeded", "gb"), row


def test_json_and_show_name_the_zone_of_the_planned_site(tmp_path: Path) -> None:
    tl = Timeline(tmp_path)
    tl.ok("site", "add", "gb", "--zone", "GB", "--gpus", "0", "--cpus", "4", "--transfer-delay", "30m")
    sub = json.loads(tl.ok("submit", "--site", "local,gb", "--duration", "1h", "--deadline", "6h",
                           "--json", "--", "true"))
    # relocated from the DE home: the zone it is planned, emitted and compared in is GB's
    assert (sub["site"], sub["zone"], sub["home_zone"]) == ("gb", "GB", "DE"), sub
    plan = next(ln for ln in tl.ok("show", str(sub["id"])).splitlines() if ln.lstrip().startswith("plan"))
    assert " on gb (GB):" in plan, plan


def test_zone_picks_the_site_of_that_zone_or_is_refused(tmp_path: Path) -> None:
    tl = Timeline(tmp_path)
    r = tl.cli("submit", "--zone", "GB", "--duration", "1h", "--deadline", "6h", "--", "true")
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    (line,) = r.stderr.strip().splitlines()
    assert "local is in DE" in line and "--site" in line and "Traceback" not in r.stderr
    assert json.loads(tl.ok("queue", "--all", "--json")) == []  # nothing written

    tl.ok("site", "add", "gb", "--zone", "GB", "--gpus", "0", "--cpus", "4")
    sub = json.loads(tl.ok("submit", "--zone", "GB", "--duration", "1h", "--deadline", "6h", "--json",
                           "--", "true"))
    assert (sub["site"], sub["zone"]) == ("gb", "GB")  # planned, emitted and compared in GB
    r = tl.cli("submit", "--zone", "GB", "--site", "local", "--duration", "1h", "--", "true")
    assert r.returncode == 2 and "local is in DE" in r.stderr
    run = tl.cli("run", "--exit-when-idle", timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    (row,) = json.loads(tl.ok("history", "--format", "json"))
    assert (row["site"], row["zone"]) == ("gb", "GB"), row
    # intensity and counterfactual from one zone: GB's, so no false saving or loss
    assert row["saved_g"] is not None and row["saved_g"] >= -1e-9, row


#: relocatable jobs from the DE site, submitted at the origin: hours, GPUs, CPUs, deadline
WORKLOAD = [(1, 1, 2, 6), (2, 1, 2, 7), (1, 2, 1, 6), (1, 0, 3, 6), (2, 1, 1, 8)]


def test_simulate_and_the_daemon_pick_the_same_sites_and_starts(tmp_path: Path) -> None:
    """The same workload (relocatable, managed GPUs and CPUs, transfer costs) through
    `simulate` and through the real daemon, on the same replayed traces."""
    wl = tmp_path / "workload.csv"
    with wl.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["submit", "duration", "deadline", "gpus", "cpus", "site", "power_w"])
        for h, g, c, dl in WORKLOAD:
            w.writerow([iso(ORIGIN), f"{h}h", f"{dl}h", g, c, "DE", 300])
    tl = Timeline(tmp_path)
    sim = json.loads(tl.ok(
        "simulate", "--trace", f"{DE},{GB}", "--workload", str(wl), "--relocate", "--forecast", "perfect",
        "--gpus", "2", "--cpus", "4", "--transfer-delay", "30m", "--transfer-energy", "0.05kWh", "--json",
    ))
    expected = {j["id"]: (j["site"], j["intervals"][0][0]) for j in sim["carbon_aware_jobs"]}
    assert len({t for _, t in expected.values()}) > 2, expected  # capacity binds: starts spread

    for name in ("DE", "GB"):
        tl.ok("site", "add", name, "--zone", name, "--gpus", "2", "--cpus", "4",
              "--transfer-delay", "30m", "--transfer-energy", "0.05kWh")
    # submit on a clock that (all but) stands at the origin, as the workload says...
    frozen = {**tl.env(), "CARBONSHIFT_CLOCK": f"{iso(ORIGIN)}*0.000001"}
    for h, g, c, dl in WORKLOAD:
        r = subprocess.run(
            [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
             "submit", "--site", "DE,GB", "--gpus", str(g), "--cpus", str(c), "--power-w", "300",
             "--duration", f"{h}h", "--deadline", iso(ORIGIN + timedelta(hours=dl)), "--",
             "sleep", str(h * 3600 / FACTOR)],
            env=frozen, cwd=str(tmp_path), capture_output=True, text=True, timeout=120,
        )
        assert r.returncode == 0, r.stderr
    tl.t0 = time.monotonic()  # ...then the daemon runs from the origin on
    run = tl.cli("run", "--exit-when-idle", timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["id"]: r for r in json.loads(tl.ok("history", "--format", "json"))}
    got = {i: (r["site"], r["planned_start"]) for i, r in rows.items()}
    assert {i: (s, datetime.fromisoformat(t)) for i, (s, t) in got.items()} == {
        i: (s, datetime.fromisoformat(t)) for i, (s, t) in expected.items()}, run.stdout
    for r in rows.values():  # and each started when planned (within the clock's jitter)
        lag = datetime.fromisoformat(r["started_at"]) - datetime.fromisoformat(r["planned_start"])
        assert timedelta(0) <= lag < timedelta(minutes=20), (r, run.stdout)
