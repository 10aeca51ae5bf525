"""Pick the energy probes that work on this machine, best first, and explain the rest.

``default_probes`` never raises: a method that cannot even be constructed is left out, and
one that fails when a run begins is dropped by the sampler with a note. ``describe`` is
what ``carbonshift probes`` prints: each method, whether it works here, why not, the fix.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from probes.base import EnergyProbe
from probes.cpupower import cpu_idle_w, cpu_w_per_core
from probes.memory import DEFAULT_MEMORY_W_PER_GB, MemoryEstimateProbe
from probes.model import Method
from probes.process import ProcessTree, ProcessTreeProbe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeConfig:
    """How to measure. ``cpu_w_per_core=None`` takes it from the CPU power table.

    ``cpu_idle_share`` adds the job's share of the CPU idle power (:mod:`probes.idle`), of
    ``cpu_idle_w`` watts (``None``: an assumed fraction of the matched TDP).
    """

    cpu_w_per_core: float | None = None
    cpu_idle_share: bool = False
    cpu_idle_w: float | None = None
    memory_w_per_gb: float = DEFAULT_MEMORY_W_PER_GB
    sysfs_root: str = "/sys/class/powercap"
    use_nvml: bool = True
    use_rapl: bool = True


@dataclass(frozen=True)
class ProbeStatus:
    """Whether ``method`` works here; if not, ``reason`` says why and ``fix`` what to do."""

    method: str
    available: bool
    reason: str = ""
    fix: str = ""
    device: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def in_container() -> str | None:
    """The container runtime we seem to run in (``docker``, ``podman``, ``kubernetes``...)."""
    if Path("/.dockerenv").exists():
        return "docker"
    if Path("/run/.containerenv").exists():
        return "podman"
    try:
        cgroup = Path("/proc/1/cgroup").read_text(encoding="utf-8", errors="replace")
    except OSError:
        cgroup = ""
    for marker, name in (
        ("kubepods", "kubernetes"),
        ("docker", "docker"),
        ("containerd", "containerd"),
        ("lxc", "lxc"),
    ):
        if marker in cgroup:
            return name
    return None


def _cpu_w(config: ProbeConfig) -> tuple[float, str]:
    if config.cpu_w_per_core is not None:
        return config.cpu_w_per_core, f"configured {config.cpu_w_per_core:g} W/core"
    return cpu_w_per_core()


def _idle_w(config: ProbeConfig) -> tuple[float, str]:
    if config.cpu_idle_w is not None:
        return config.cpu_idle_w, f"configured {config.cpu_idle_w:g} W idle"
    return cpu_idle_w()


def default_probes(config: ProbeConfig) -> list[EnergyProbe]:
    """Fresh probes for one run, best methods first; they share one process-tree scan.

    GPU (NVML) first, then CPU (RAPL, then the process-tree estimate), then memory, then
    (with ``cpu_idle_share``) the idle share, whose role RAPL covers where it works. The
    sampler uses the first probe that works for each role and keeps the rest as fallbacks.
    """
    tree = ProcessTree(with_memory=True)
    probes: list[EnergyProbe] = []
    if config.use_nvml:
        try:
            from probes.nvml import NvmlProbe

            probes.append(NvmlProbe(tree=tree))
        except Exception as exc:
            log.debug("NVML probe not constructed: %s", exc)
    if config.use_rapl and Path(config.sysfs_root).is_dir():
        try:
            from probes.rapl import RaplProbe

            probes.append(RaplProbe(config.sysfs_root, tree=tree))
        except Exception as exc:
            log.debug("RAPL probe not constructed: %s", exc)
    try:
        w, source = _cpu_w(config)
        probes.append(ProcessTreeProbe(w, tree=tree, source=source))
    except Exception as exc:
        log.warning("CPU-time probe not constructed: %s", exc)
    try:
        probes.append(MemoryEstimateProbe(config.memory_w_per_gb, tree=tree))
    except Exception as exc:
        log.warning("memory probe not constructed: %s", exc)
    if config.cpu_idle_share:
        try:
            from probes.idle import CpuIdleShareProbe

            w, source = _idle_w(config)
            probes.append(CpuIdleShareProbe(w, tree=tree, source=source))
        except Exception as exc:
            log.warning("idle-share probe not constructed: %s", exc)
    return probes


def describe(config: ProbeConfig) -> list[ProbeStatus]:
    """What this machine can measure, method by method, best first, with fixes."""
    container = in_container()
    where = f" (running in a {container} container)" if container else ""
    statuses: list[ProbeStatus] = []

    if not config.use_nvml:
        statuses.append(
            ProbeStatus(
                str(Method.NVML_ENERGY_COUNTER),
                False,
                "disabled by configuration",
                "set use_nvml = true",
                "gpu",
            )
        )
    else:
        try:
            from probes.nvml import nvml_status

            for method, available, reason, fix in nvml_status():
                if not available and container:
                    fix = (
                        fix + "; " if fix else ""
                    ) + "pass the GPU into the container (--gpus all / nvidia-container-toolkit)"
                statuses.append(
                    ProbeStatus(
                        method, available, reason + ("" if available else where), fix, "gpu"
                    )
                )
        except Exception as exc:
            statuses.append(
                ProbeStatus(
                    str(Method.NVML_ENERGY_COUNTER), False, f"NVML check failed: {exc}", "", "gpu"
                )
            )

    if not config.use_rapl:
        statuses.append(
            ProbeStatus(
                str(Method.RAPL), False, "disabled by configuration", "set use_rapl = true", "cpu"
            )
        )
    else:
        try:
            from probes.rapl import rapl_status

            available, reason, fix = rapl_status(config.sysfs_root)
            if not available and container:
                fix = (
                    fix + "; " if fix else ""
                ) + "containers rarely see /sys/class/powercap: bind-mount it read-only"
            statuses.append(
                ProbeStatus(
                    str(Method.RAPL), available, reason + ("" if available else where), fix, "cpu"
                )
            )
        except Exception as exc:
            statuses.append(
                ProbeStatus(str(Method.RAPL), False, f"RAPL check failed: {exc}", "", "cpu")
            )

    w, source = _cpu_w(config)
    statuses.append(
        ProbeStatus(
            str(Method.CPU_TIME_ESTIMATE),
            True,
            f"process-tree CPU time x {w:g} W/core ({source})",
            "",
            "cpu",
        )
    )
    statuses.append(
        ProbeStatus(
            str(Method.MEMORY_ESTIMATE),
            True,
            f"resident memory x {config.memory_w_per_gb:g} W/GB",
            "",
            "memory",
        )
    )
    idle_w, idle_source = _idle_w(config)
    rule = f"job's share (by CPU time) of {idle_w:g} W CPU idle power ({idle_source})"
    statuses.append(
        ProbeStatus(
            str(Method.CPU_IDLE_SHARE),
            config.cpu_idle_share,
            ("on: " if config.cpu_idle_share else "off: ") + rule
            + ("; RAPL, where it works, includes idle power and takes precedence"
               if config.cpu_idle_share else ""),
            "" if config.cpu_idle_share else "set cpu_idle_share = true to add it",
            "cpu-idle",
        )
    )
    return statuses
