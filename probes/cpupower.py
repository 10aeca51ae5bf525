"""Watts per CPU-second for the CPU-time estimate, from the shipped CPU power table.

The table (``probes/data/cpu_power.csv``, see ``probes/data/README.md`` for its sources and
licence) gives each known model's TDP and hardware threads; the estimate is
``tdp_w / threads`` watts per CPU-second. Unknown CPUs use :data:`DEFAULT_CPU_W_PER_CORE`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

#: Watts per CPU-second for a CPU not in the table: the median of the table's per-thread
#: TDP (3.5 W) rounded up.
DEFAULT_CPU_W_PER_CORE = 4.0


@dataclass(frozen=True, slots=True)
class CpuPower:
    """A table row: ``tdp_w`` over ``threads`` hardware threads."""

    model: str
    tdp_w: float
    cores: int
    threads: int
    source: str

    @property
    def w_per_thread(self) -> float:
        return self.tdp_w / self.threads


def _normalise(name: str) -> str:
    name = re.sub(r"\((r|tm)\)", " ", name.lower())
    name = re.sub(r"@.*$", " ", name)
    name = re.sub(r"\b(cpu|processor|\d+-core)\b", " ", name)
    return " ".join(name.split())


@lru_cache(maxsize=1)
def cpu_table() -> tuple[CpuPower, ...]:
    """The shipped table's rows."""
    text = resources.files("probes").joinpath("data/cpu_power.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return tuple(
        CpuPower(r["model"], float(r["tdp_w"]), int(r["cores"]), int(r["threads"]), r["source"])
        for r in rows
    )


def lookup(model_name: str) -> CpuPower | None:
    """The table row whose (normalised) name is the longest one contained in ``model_name``."""
    wanted = _normalise(model_name)
    best: CpuPower | None = None
    for row in cpu_table():
        key = _normalise(row.model)
        if re.search(rf"(^|\s){re.escape(key)}($|\s)", wanted) and (
            best is None or len(key) > len(_normalise(best.model))
        ):
            best = row
    return best


def cpu_model_name(cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """The first ``model name`` of ``/proc/cpuinfo``, or ``None`` where there is none."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip() or None
    except OSError:
        return None
    return None


def cpu_w_per_core(
    model_name: str | None = None, *, cpuinfo_path: str = "/proc/cpuinfo"
) -> tuple[float, str]:
    """Watts per CPU-second for this machine's CPU (or ``model_name``), and where it came from."""
    name = model_name if model_name is not None else cpu_model_name(cpuinfo_path)
    row = lookup(name) if name else None
    if row is None:
        return (
            DEFAULT_CPU_W_PER_CORE,
            f"default {DEFAULT_CPU_W_PER_CORE:g} W/core: CPU {name or 'unknown'!r} not in the table",
        )
    return row.w_per_thread, f"{row.model}: {row.tdp_w:g} W TDP / {row.threads} threads"
