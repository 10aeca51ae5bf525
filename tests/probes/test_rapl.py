"""RAPL against a fake sysfs tree: domains, sockets, wrap-around, an unreadable file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from probes.errors import DeviceLost, ProbeUnavailable
from probes.model import Method, ProbeTarget
from probes.process import ProcessTree, TreeState
from probes.rapl import PERMISSION_FIX, RaplProbe, discover, rapl_status

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAX_UJ = 262_143_328_850  # a real package's max_energy_range_uj


def zone(root: Path, zone_name: str, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    z = root / zone_name
    z.mkdir()
    (z / "name").write_text(name + "\n")
    (z / "energy_uj").write_text(f"{energy_uj}\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


def set_energy(root: Path, zone_name: str, energy_uj: int) -> None:
    (root / zone_name / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    """Two sockets with DRAM subzones, plus zones that must not be counted."""
    root = tmp_path / "powercap"
    root.mkdir()
    zone(root, "intel-rapl", "control-type-not-a-zone", 0)  # the control type directory
    zone(root, "intel-rapl:0", "package-0", 1_000_000)
    zone(root, "intel-rapl:0:0", "core", 500_000)
    zone(root, "intel-rapl:0:2", "dram", 100_000, max_uj=65_532_610_987)
    zone(root, "intel-rapl:1", "package-1", 2_000_000)
    zone(root, "intel-rapl:1:2", "dram", 200_000, max_uj=65_532_610_987)
    zone(root, "intel-rapl:2", "psys", 9_000_000)
    zone(root, "intel-rapl-mmio:0", "package-0", 7_000_000)
    return root


class FakeTree(ProcessTree):
    """A process tree whose job CPU time the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.job_cpu_s = 0.0

    def attach(self, target: ProbeTarget, key: object = None) -> TreeState:
        return self.read(key)

    def read(self, key: object = None) -> TreeState:
        return TreeState(self.job_cpu_s, 0, frozenset({1}), 0.0)

    def observe_exit(self, cpu_s: float | None) -> None:
        if cpu_s is not None:
            self.job_cpu_s = cpu_s


class MachineCpu:
    def __init__(self) -> None:
        self.busy_s = 1000.0

    def __call__(self) -> float:
        return self.busy_s


def probe_for(sysfs: Path) -> tuple[RaplProbe, FakeTree, MachineCpu]:
    tree, machine = FakeTree(), MachineCpu()
    probe = RaplProbe(sysfs, tree=tree, machine_cpu_s=machine)
    probe.begin(ProbeTarget(1, 1), T0)
    return probe, tree, machine


def test_discovers_packages_and_dram_only(sysfs: Path) -> None:
    names = [(d.name, d.kind) for d in discover(sysfs)]
    assert names == [
        ("intel-rapl:0/package-0", "cpu"),
        ("intel-rapl:0:2/dram", "dram"),
        ("intel-rapl:1/package-1", "cpu"),
        ("intel-rapl:1:2/dram", "dram"),
    ]


def test_sockets_summed_dram_separate_job_alone(sysfs: Path) -> None:
    probe, tree, machine = probe_for(sysfs)
    assert probe.roles == {"cpu", "cpu-idle", "memory"}
    set_energy(sysfs, "intel-rapl:0", 1_000_000 + 30_000_000)  # +30 J
    set_energy(sysfs, "intel-rapl:1", 2_000_000 + 20_000_000)  # +20 J
    set_energy(sysfs, "intel-rapl:0:2", 100_000 + 3_000_000)  # +3 J
    set_energy(sysfs, "intel-rapl:1:2", 200_000 + 2_000_000)  # +2 J
    set_energy(sysfs, "intel-rapl:2", 99_000_000)  # psys: ignored
    tree.job_cpu_s, machine.busy_s = 4.0, 1004.0
    samples = {s.device: s for s in probe.read(T0 + timedelta(seconds=5))}
    assert samples["cpu"].energy_j == pytest.approx(50.0)
    assert samples["dram"].energy_j == pytest.approx(5.0)
    assert all(s.method is Method.RAPL and not s.estimated for s in samples.values())
    assert samples["cpu"].start == T0 and samples["cpu"].duration_s == 5.0


def test_wrap_around_uses_max_energy_range(sysfs: Path) -> None:
    set_energy(sysfs, "intel-rapl:0", MAX_UJ - 1_000_000)
    probe, tree, machine = probe_for(sysfs)
    set_energy(sysfs, "intel-rapl:0", 4_000_000)  # wrapped: 1 J before the top + 4 J after
    tree.job_cpu_s, machine.busy_s = 1.0, 1001.0
    cpu = next(s for s in probe.read(T0 + timedelta(seconds=1)) if s.device == "cpu")
    assert cpu.energy_j == pytest.approx(5.0)


def test_job_share_by_cpu_time_is_flagged(sysfs: Path) -> None:
    probe, tree, machine = probe_for(sysfs)
    set_energy(sysfs, "intel-rapl:0", 1_000_000 + 40_000_000)
    tree.job_cpu_s, machine.busy_s = 1.0, 1004.0  # the job used 1 of 4 busy CPU seconds
    cpu = next(s for s in probe.read(T0 + timedelta(seconds=1)) if s.device == "cpu")
    assert cpu.energy_j == pytest.approx(10.0)
    assert cpu.estimated and "job share 0.250" in cpu.note


def test_final_rusage_feeds_the_last_share(sysfs: Path) -> None:
    probe, _tree, machine = probe_for(sysfs)
    set_energy(sysfs, "intel-rapl:0", 1_000_000 + 8_000_000)
    machine.busy_s = 1002.0
    probe.observe_exit(cpu_s=1.0)
    cpu = next(s for s in probe.end(T0 + timedelta(seconds=1)) if s.device == "cpu")
    assert cpu.energy_j == pytest.approx(4.0)


def test_counter_that_disappears_mid_run_is_a_lost_device(sysfs: Path) -> None:
    probe, _tree, _machine = probe_for(sysfs)
    shutil.rmtree(sysfs / "intel-rapl:1")
    with pytest.raises(DeviceLost):
        probe.read(T0 + timedelta(seconds=1))


def test_missing_root_or_packages_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ProbeUnavailable, match="does not exist"):
        discover(tmp_path / "nope")
    zone(tmp_path, "intel-rapl:0", "psys", 1)
    with pytest.raises(ProbeUnavailable, match="no RAPL package domain"):
        discover(tmp_path)
    available, reason, fix = rapl_status(tmp_path)
    assert not available and "no RAPL package domain" in reason and fix


def test_status_lists_domains(sysfs: Path) -> None:
    assert rapl_status(sysfs) == (True, f"2 package domain(s) + dram under {sysfs}", "")


def _run_without_read_override(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python that file permissions apply to, even when we are root."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE")
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--", *cmd]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_unreadable_counter_names_the_file_and_the_fix(sysfs: Path) -> None:
    unreadable = sysfs / "intel-rapl:1" / "energy_uj"
    unreadable.chmod(0o000)
    code = textwrap.dedent(
        f"""
        from datetime import datetime, timezone
        from probes.errors import ProbeUnavailable
        from probes.model import ProbeTarget
        from probes.rapl import RaplProbe, rapl_status
        print(rapl_status({str(sysfs)!r}))
        try:
            RaplProbe({str(sysfs)!r}).begin(ProbeTarget(1, 1), datetime.now(timezone.utc))
        except ProbeUnavailable as exc:
            print("UNAVAILABLE", exc)
        """
    )
    out = _run_without_read_override(code)
    assert out.returncode == 0, out.stderr
    status_line, error_line = out.stdout.strip().splitlines()
    assert "(False, 'permission denied reading " + str(unreadable) in status_line
    assert error_line.startswith(f"UNAVAILABLE permission denied reading {unreadable}; fix: ")
    assert "udev" in error_line and "chmod" in error_line
    assert "udev rule" in PERMISSION_FIX
