"""Watts per CPU-second for the CPU-time estimate, from CodeCarbon's CPU power table.

The table (``probes/data/codecarbon_cpu_power.csv``, MIT, see ``probes/data/README.md``)
gives each known model's TDP; the estimate is ``tdp_w / threads`` watts per CPU-second,
``threads`` being the package's hardware threads as this host sees them. Unknown CPUs, and
virtual machines (whose vCPUs are a share of a package the guest cannot see), use
:data:`DEFAULT_CPU_W_PER_CORE`. :func:`cpu_w_per_core` says which row matched and why.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

#: Watts per CPU-second for a CPU not in the table (or seen from a VM): about the median
#: per-thread TDP of server parts (3.5 W), rounded up.
DEFAULT_CPU_W_PER_CORE = 4.0
TABLE = "data/codecarbon_cpu_power.csv"


@dataclass(frozen=True, slots=True)
class CpuPower:
    """A table row: a model and its thermal design power."""

    model: str
    tdp_w: float


@dataclass(frozen=True, slots=True)
class HostCpu:
    """What ``/proc/cpuinfo`` says: the model, threads per package, whether it is a VM."""

    model: str | None
    threads_per_package: int | None
    virtual: bool
    packages: int = 1


def _normalise(name: str) -> str:
    name = re.sub(r"\((r|tm)\)", " ", name.lower())
    name = re.sub(r"@.*$", " ", name)
    name = re.sub(r"\b(cpu|processor|\d+-core)\b", " ", name)
    return " ".join(name.split())


@lru_cache(maxsize=1)
def cpu_table() -> tuple[CpuPower, ...]:
    """The shipped table's rows (CodeCarbon's ``Name``, ``TDP``)."""
    text = resources.files("probes").joinpath(TABLE).read_text(encoding="utf-8")
    rows = []
    for r in csv.DictReader(text.splitlines()):
        try:
            rows.append(CpuPower(r["Name"].strip(), float(r["TDP"])))
        except (KeyError, ValueError):
            continue
    return tuple(row for row in rows if row.model and row.tdp_w > 0)


@lru_cache(maxsize=1)
def _index() -> dict[str, CpuPower]:
    """Normalised name -> row (the first row of a name wins)."""
    out: dict[str, CpuPower] = {}
    for row in cpu_table():
        out.setdefault(_normalise(row.model), row)
    return out


def lookup(model_name: str) -> CpuPower | None:
    """The row whose normalised name is the longest run of whole words of ``model_name``."""
    words = _normalise(model_name).split()
    index = _index()
    for n in range(len(words), 0, -1):  # longest first
        for i in range(len(words) - n + 1):
            row = index.get(" ".join(words[i:i + n]))
            if row is not None:
                return row
    return None


def host_cpu(cpuinfo_path: str = "/proc/cpuinfo") -> HostCpu:
    """This host's CPU model, threads per package and whether it runs under a hypervisor."""
    model: str | None = None
    siblings: int | None = None
    packages: set[str] = set()
    processors = 0
    virtual = False
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and model is None:
                    model = value or None
                elif key == "siblings" and siblings is None and value.isdigit():
                    siblings = int(value)
                elif key == "physical id":
                    packages.add(value)
                elif key == "processor":
                    processors += 1
                elif key == "flags" and " hypervisor" in f" {value} ":
                    virtual = True
    except OSError:
        return HostCpu(None, None, False)
    threads = siblings
    if threads is None and processors:
        threads = max(1, processors // max(1, len(packages)))
    return HostCpu(model, threads, virtual, max(1, len(packages)))


def cpu_model_name(cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """The first ``model name`` of ``/proc/cpuinfo``, or ``None`` where there is none."""
    return host_cpu(cpuinfo_path).model


def cpu_w_per_core(
    model_name: str | None = None, *, cpuinfo_path: str = "/proc/cpuinfo"
) -> tuple[float, str]:
    """Watts per CPU-second for this machine's CPU (or ``model_name``), and where it came from."""
    host = host_cpu(cpuinfo_path)
    name = model_name if model_name is not None else host.model
    row = lookup(name) if name else None
    default = f"default {DEFAULT_CPU_W_PER_CORE:g} W/core"
    if row is None:
        return DEFAULT_CPU_W_PER_CORE, f"{default}: CPU {name or 'unknown'!r} not in CodeCarbon's table"
    matched = f"CodeCarbon's table row {row.model!r} ({row.tdp_w:g} W TDP)"
    if host.virtual:
        return (DEFAULT_CPU_W_PER_CORE,
                f"{default}: {matched}, but this is a virtual machine: its vCPUs are an unknown "
                "share of the package (set cpu_w_per_core to override)")
    threads = host.threads_per_package or os.cpu_count() or 1
    return row.tdp_w / threads, f"{matched} / {threads} threads per package on this host"


#: Idle power of a CPU package as a fraction of its TDP, for the idle share when no RAPL
#: counter is readable. An assumption, not a measurement: SPECpower_ssj2008 results of
#: recent servers idle at roughly a quarter to a third of their full-load power, and
#: CodeCarbon, without RAPL, takes half the TDP as the CPU's mean power whatever the load.
#: 0.3 sits between the two; set ``cpu_idle_w`` where the machine's idle power is known.
IDLE_FRACTION_OF_TDP = 0.3


def cpu_idle_w(
    model_name: str | None = None, *, cpuinfo_path: str = "/proc/cpuinfo"
) -> tuple[float, str]:
    """The machine's CPU idle power (all packages) in watts, and where it came from.

    :data:`IDLE_FRACTION_OF_TDP` x the matched row's TDP x the packages; for a CPU not in
    the table, or seen from a virtual machine, that fraction of the default per-thread power
    x the threads this host sees (its share of a package it cannot see).
    """
    host = host_cpu(cpuinfo_path)
    name = model_name if model_name is not None else host.model
    row = lookup(name) if name else None
    pct = f"{IDLE_FRACTION_OF_TDP:g} x"
    if row is not None and not host.virtual:
        w = IDLE_FRACTION_OF_TDP * row.tdp_w * host.packages
        return w, (f"{pct} {row.tdp_w:g} W TDP of CodeCarbon's row {row.model!r}"
                   f" x {host.packages} package(s) (assumed idle fraction)")
    threads = os.cpu_count() or 1
    why = "virtual machine" if row is not None else f"CPU {name or 'unknown'!r} not in CodeCarbon's table"
    w = IDLE_FRACTION_OF_TDP * DEFAULT_CPU_W_PER_CORE * threads
    return w, (f"{pct} {DEFAULT_CPU_W_PER_CORE:g} W/thread x {threads} threads"
               f" (assumed idle fraction; {why})")
