"""The idle share (``cpu_idle_share``): its rule, its probe on a real process, and its place
among the probes (its own role; RAPL, whose figure includes idle power, covers it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from probe_helpers import BURN_PRELUDE, FakeClock, reap, spawn

from probes.cpupower import IDLE_FRACTION_OF_TDP, cpu_idle_w
from probes.detect import ProbeConfig, default_probes, describe
from probes.idle import CpuIdleShareProbe, idle_share_j
from probes.model import Method, ProbeTarget, Sample
from probes.process import ProcessTree
from probes.sampler import Sampler

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_rule_is_idle_power_times_seconds_times_the_jobs_part_of_busy_cpu() -> None:
    assert idle_share_j(20.0, 10.0, job_cpu_s=5.0, machine_cpu_s=20.0) == pytest.approx(50.0)
    # alone on the machine: all of it; a lagging machine figure never gives more than all
    assert idle_share_j(20.0, 10.0, job_cpu_s=5.0, machine_cpu_s=5.0) == pytest.approx(200.0)
    assert idle_share_j(20.0, 10.0, job_cpu_s=5.0, machine_cpu_s=3.0) == pytest.approx(200.0)
    # no CPU used in the interval (waiting on a GPU or I/O): none
    assert idle_share_j(20.0, 10.0, job_cpu_s=0.0, machine_cpu_s=8.0) == 0.0
    assert idle_share_j(20.0, 0.0, job_cpu_s=1.0, machine_cpu_s=8.0) == 0.0


def test_default_idle_power_is_the_assumed_fraction_of_the_matched_tdp(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("".join(
        f"processor\t: {i}\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
        f"physical id\t: {i // 128}\nsiblings\t: 128\nflags\t: fpu sse\n\n"
        for i in range(256)
    ))
    w, source = cpu_idle_w(cpuinfo_path=str(cpuinfo))
    assert w == pytest.approx(IDLE_FRACTION_OF_TDP * 280.0 * 2)  # the 7763's 280 W TDP, 2 sockets
    assert "7763" in source and "2 package(s)" in source and "assumed" in source
    virtual = tmp_path / "vm"
    virtual.write_text(cpuinfo.read_text().replace("fpu sse", "fpu hypervisor"))
    w, source = cpu_idle_w(cpuinfo_path=str(virtual))
    assert w == pytest.approx(IDLE_FRACTION_OF_TDP * 4.0 * (os.cpu_count() or 1))
    assert "virtual machine" in source


def test_probe_charges_a_real_burn_its_share_of_idle_power() -> None:
    proc = spawn(BURN_PRELUDE + "burn(0.3)\n")
    machine = {"s": 0.0}
    tree = ProcessTree(with_memory=False)
    probe = CpuIdleShareProbe(10.0, tree=tree, machine_cpu_s=lambda: machine["s"])
    try:
        probe.begin(ProbeTarget(pid=proc.pid), T0)
        cpu_s = reap(proc)
        probe.observe_exit(cpu_s=cpu_s)
        machine["s"] = 4 * cpu_s  # the machine was four times as busy as the job
        (sample,) = probe.end(T0 + timedelta(seconds=1))
    finally:
        probe.close()
    assert sample.device == "cpu-idle" and sample.method == Method.CPU_IDLE_SHARE
    assert sample.estimated is True and "share 0.250" in sample.note
    real_s = float(sample.note.rsplit(" x ", 1)[1].split(" s")[0])
    assert sample.energy_j == pytest.approx(10.0 * real_s * 0.25, rel=0.05)
    assert sample.energy_j > 0


def test_off_by_default_and_its_own_role_when_on() -> None:
    off = default_probes(ProbeConfig(use_nvml=False, use_rapl=False))
    assert all(p.method != Method.CPU_IDLE_SHARE for p in off)
    on = default_probes(ProbeConfig(use_nvml=False, use_rapl=False, cpu_idle_share=True, cpu_idle_w=7.0))
    (idle,) = [p for p in on if p.method == Method.CPU_IDLE_SHARE]
    assert idle.roles == {"cpu-idle"}  # not a standby of the CPU-time estimate: additive
    statuses = {s.method: s for s in describe(ProbeConfig(cpu_idle_share=True, cpu_idle_w=7.0))}
    assert statuses["cpu_idle_share"].available and "7 W" in statuses["cpu_idle_share"].reason
    assert not {s.method: s for s in describe(ProbeConfig())}["cpu_idle_share"].available


def test_rapl_covers_the_idle_role_so_idle_power_is_not_counted_twice(
    tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "powercap"
    z = root / "intel-rapl:0"
    z.mkdir(parents=True)
    (z / "name").write_text("package-0\n")
    (z / "energy_uj").write_text("1000000\n")
    (z / "max_energy_range_uj").write_text("262143328850\n")
    config = ProbeConfig(use_nvml=False, sysfs_root=str(root), cpu_idle_share=True, cpu_idle_w=7.0)
    proc = spawn(BURN_PRELUDE + "burn(0.2)\n")
    got: list[Sample] = []
    sampler = Sampler(ProbeTarget(pid=proc.pid, pgid=proc.pid), now=clock, sink=got.extend,
                      interval_s=60, probes=default_probes(config))
    sampler.start()
    (z / "energy_uj").write_text("3000000\n")
    sampler.stop(final_cpu_s=reap(proc))
    assert "rapl" in sampler.methods and "cpu_idle_share" not in sampler.methods
    assert "cpu-idle" not in {s.device for s in got}


def _cli(tmp_path: Path, *args: str, idle: bool) -> str:
    repo = Path(__file__).resolve().parents[2]
    config = tmp_path / "config.toml"
    config.write_text('default_zone = "DE"\nsampling_interval_s = 0.1\nuse_nvml = false\n'
                      'use_rapl = false\n[intensity]\nproviders = ["static"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(repo), CARBONSHIFT_CONFIG=str(config),
               CARBONSHIFT_CPU_IDLE_SHARE="true" if idle else "false")
    r = subprocess.run(
        [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
         "--db", f"sqlite:///{tmp_path / ('on.db' if idle else 'off.db')}", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("idle", [True, False])
def test_measure_cli_adds_the_labelled_idle_share_only_when_on(tmp_path: Path, idle: bool) -> None:
    data = json.loads(_cli(tmp_path, "measure", "--json", "--", sys.executable, "-c",
                           BURN_PRELUDE + "burn(0.3)\n", idle=idle))
    devices = {d["device"]: d for d in data["devices"]}
    (history,) = json.loads(_cli(tmp_path, "history", "--format", "json", idle=idle))
    if idle:
        assert devices["cpu-idle"]["method"] == "cpu_idle_share"
        assert devices["cpu-idle"]["estimated"] is True and devices["cpu-idle"]["energy_j"] > 0
        assert "cpu_idle_share" in data["methods"]
        assert "cpu_idle_share" in history["energy_method"].split("+")
    else:
        assert "cpu-idle" not in devices and "cpu_idle_share" not in history["energy_method"]
    assert data["energy_j"] == pytest.approx(sum(d["energy_j"] for d in data["devices"]))
    assert history["energy_kwh"] * 3.6e6 == pytest.approx(data["energy_j"])
    probes = {p["method"]: p for p in json.loads(_cli(tmp_path, "probes", "--json", idle=idle))}
    assert probes["cpu_idle_share"]["available"] is idle
    assert probes["cpu_idle_share"]["reason"].startswith("on:" if idle else "off:")


def test_the_daemon_adds_the_idle_share_to_a_jobs_accounting_when_on(tmp_path: Path) -> None:
    from tests.public.offline import cs, offline_env

    env = offline_env(tmp_path, CARBONSHIFT_CPU_IDLE_SHARE="true", CARBONSHIFT_CPU_IDLE_W="5")
    sub = cs(tmp_path, "submit", "--now", "--duration", "1m", "--json", "--",
             sys.executable, "-c", BURN_PRELUDE + "burn(0.3)\n", env=env)
    assert sub.returncode == 0, sub.stderr
    daemon = cs(tmp_path, "run", "--exit-when-idle", env=env, timeout=300)
    assert daemon.returncode == 0, daemon.stderr[-3000:]
    (row,) = json.loads(cs(tmp_path, "history", "--format", "json", env=env).stdout)
    assert row["state"] == "succeeded"
    assert "cpu_idle_share" in row["energy_method"].split("+")


@pytest.mark.parametrize(("var", "value"), [("CARBONSHIFT_CPU_IDLE_W", "0"),
                                            ("CARBONSHIFT_CPU_IDLE_SHARE", "maybe")])
def test_a_bad_idle_setting_is_one_line_exit_2(tmp_path: Path, var: str, value: str) -> None:
    from tests.public.offline import cs, offline_env

    r = cs(tmp_path, "probes", env={**offline_env(tmp_path), var: value})
    assert r.returncode == 2 and var in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
