"""Choosing probes, describing what works, and the CPU power table."""

from __future__ import annotations

from pathlib import Path

import pytest

from probes.cpupower import (
    DEFAULT_CPU_W_PER_CORE,
    cpu_model_name,
    cpu_table,
    cpu_w_per_core,
    lookup,
)
from probes.detect import ProbeConfig, default_probes, describe
from probes.memory import MemoryEstimateProbe
from probes.model import Method
from probes.process import ProcessTreeProbe
from probes.rapl import RaplProbe


def make_sysfs(root: Path) -> Path:
    z = root / "powercap" / "intel-rapl:0"
    z.mkdir(parents=True)
    (z / "name").write_text("package-0\n")
    (z / "energy_uj").write_text("123\n")
    (z / "max_energy_range_uj").write_text("1000000\n")
    return root / "powercap"


def test_default_probes_best_first_sharing_one_tree(tmp_path: Path) -> None:
    config = ProbeConfig(
        cpu_w_per_core=7.0, memory_w_per_gb=0.5, sysfs_root=str(make_sysfs(tmp_path))
    )
    probes = default_probes(config)
    methods = [p.method for p in probes]
    assert methods == [
        Method.NVML_ENERGY_COUNTER,
        Method.RAPL,
        Method.CPU_TIME_ESTIMATE,
        Method.MEMORY_ESTIMATE,
    ]
    cpu = next(p for p in probes if isinstance(p, ProcessTreeProbe))
    mem = next(p for p in probes if isinstance(p, MemoryEstimateProbe))
    rapl = next(p for p in probes if isinstance(p, RaplProbe))
    assert cpu.cpu_w_per_core == 7.0 and mem.memory_w_per_gb == 0.5
    assert cpu.tree is mem.tree is rapl.tree


def test_default_probes_skip_disabled_and_absent_methods() -> None:
    probes = default_probes(ProbeConfig(use_nvml=False, sysfs_root="/nonexistent/powercap"))
    assert [p.method for p in probes] == [Method.CPU_TIME_ESTIMATE, Method.MEMORY_ESTIMATE]


def test_default_probes_never_raise_on_bad_values() -> None:
    probes = default_probes(
        ProbeConfig(cpu_w_per_core=-1.0, memory_w_per_gb=-1.0, use_nvml=False, use_rapl=False)
    )
    assert probes == []


def test_describe_explains_each_method(tmp_path: Path) -> None:
    statuses = {
        s.method: s
        for s in describe(ProbeConfig(sysfs_root=str(make_sysfs(tmp_path)), use_nvml=False))
    }
    assert statuses["nvml_energy_counter"].available is False
    assert "disabled" in statuses["nvml_energy_counter"].reason
    assert statuses["rapl"].available and "1 package domain" in statuses["rapl"].reason
    assert (
        statuses["cpu_time_estimate"].available and "W/core" in statuses["cpu_time_estimate"].reason
    )
    assert statuses["memory_estimate"].to_dict()["device"] == "memory"


def test_describe_without_rapl_gives_a_fix(tmp_path: Path) -> None:
    rapl = next(
        s for s in describe(ProbeConfig(sysfs_root=str(tmp_path / "none"))) if s.method == "rapl"
    )
    assert not rapl.available and "does not exist" in rapl.reason and rapl.fix


@pytest.mark.parametrize(
    ("cpuinfo_name", "model"),
    [
        ("Intel(R) Xeon(R) CPU E5-2683 v4 @ 2.10GHz", "Intel Xeon E5-2683 v4"),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763"),
        ("AMD EPYC 9654P 96-Core Processor", "AMD EPYC 9654P"),
        ("AMD Ryzen 9 7950X 16-Core Processor", "AMD Ryzen 9 7950X"),
    ],
)
def test_cpu_table_matches_real_model_names(cpuinfo_name: str, model: str) -> None:
    row = lookup(cpuinfo_name)
    assert row is not None and row.model == model


def test_cpu_table_does_not_match_a_longer_model_number() -> None:
    assert lookup("AMD EPYC 77630") is None
    assert lookup("AMD EPYC") is None


def _cpuinfo(tmp_path: Path, model: str, *, siblings: int, packages: int = 1, vm: bool = False) -> Path:
    flags = "fpu sse2 avx2" + (" hypervisor" if vm else "")
    text = "".join(
        f"processor\t: {p * siblings + i}\nmodel name\t: {model}\nphysical id\t: {p}\n"
        f"siblings\t: {siblings}\nflags\t\t: {flags}\n\n"
        for p in range(packages) for i in range(siblings))
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_watts_per_core_from_the_table_and_this_hosts_threads(tmp_path: Path) -> None:
    cpuinfo = _cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", siblings=128, packages=2)
    assert cpu_model_name(str(cpuinfo)) == "AMD EPYC 7763 64-Core Processor"
    w, source = cpu_w_per_core(cpuinfo_path=str(cpuinfo))
    assert w == pytest.approx(280 / 128)
    assert "'AMD EPYC 7763' (280 W TDP) / 128 threads per package" in source
    w, source = cpu_w_per_core("Some Future CPU", cpuinfo_path=str(cpuinfo))
    assert w == DEFAULT_CPU_W_PER_CORE and "not in CodeCarbon's table" in source
    assert cpu_w_per_core(cpuinfo_path=str(tmp_path / "missing"))[0] == DEFAULT_CPU_W_PER_CORE


def test_a_virtual_machine_does_not_divide_a_package_tdp_by_its_few_vcpus(tmp_path: Path) -> None:
    cpuinfo = _cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", siblings=2, vm=True)
    w, source = cpu_w_per_core(cpuinfo_path=str(cpuinfo))
    assert w == DEFAULT_CPU_W_PER_CORE  # not 280 W / 2 vCPUs
    assert "virtual machine" in source and "'AMD EPYC 7763'" in source


def test_table_is_codecarbons_whole_table() -> None:
    rows = cpu_table()
    assert len(rows) > 4800
    assert all(0 < r.tdp_w < 1000 for r in rows)


