"""CPU package and DRAM energy from RAPL counters in ``/sys/class/powercap`` (``rapl``).

Each ``intel-rapl:N`` zone named ``package-N`` is a socket; a ``dram`` zone (a subzone on
servers) measures its memory. ``core``/``uncore`` are parts of a package and ``psys`` is the
whole platform: both are skipped so nothing is counted twice. ``energy_uj`` counters wrap at
``max_energy_range_uj``; sockets are summed into device ``cpu`` and ``dram``.

RAPL measures the whole machine, so the job is given its share: its process tree's CPU
time over the machine's busy CPU time in the interval (``/proc/stat``), for both package
and DRAM. A shared figure is flagged ``estimated`` with the share in its note; a job alone
on its machine gets the whole package, idle power included.

Since Linux 5.10 ``energy_uj`` is readable by root only (CVE-2020-8694); the error names
the file and the fix. The sysfs root is injectable, which is how the tests fake it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil

from probes.base import EnergyProbe
from probes.energy import counter_delta, share
from probes.errors import DeviceLost, ProbeError, ProbeUnavailable
from probes.model import Method, ProbeTarget, Sample
from probes.process import ProcessTree

DEFAULT_SYSFS_ROOT = "/sys/class/powercap"

PERMISSION_FIX = (
    "give the daemon's user read access to the RAPL counters: a udev rule such as "
    '/etc/udev/rules.d/99-carbonshift-rapl.rules with SUBSYSTEM=="powercap", ACTION=="add", '
    'RUN+="/bin/chgrp carbonshift /sys%p/energy_uj", RUN+="/bin/chmod g+r /sys%p/energy_uj" '
    "and the user in group carbonshift; or, until the next reboot, "
    "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj`"
)


@dataclass(frozen=True, slots=True)
class RaplDomain:
    """One counter: ``kind`` is ``cpu`` (a package) or ``dram``."""

    path: Path
    name: str
    kind: str
    max_range_uj: float | None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except PermissionError as exc:
        raise ProbeUnavailable(f"permission denied reading {path}; fix: {PERMISSION_FIX}") from exc
    except FileNotFoundError as exc:
        raise DeviceLost(f"{path} disappeared") from exc
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ProbeUnavailable(
                f"permission denied reading {path}; fix: {PERMISSION_FIX}"
            ) from exc
        raise ProbeError(f"cannot read {path}: {exc}") from exc


def discover(root: str | Path = DEFAULT_SYSFS_ROOT) -> list[RaplDomain]:
    """The package and DRAM domains under ``root``, sockets in order.

    Raises :class:`ProbeUnavailable` when ``root`` has none.
    """
    base = Path(root)
    if not base.is_dir():
        raise ProbeUnavailable(f"{base} does not exist (no powercap driver, or not visible here)")
    domains: list[RaplDomain] = []
    for zone in sorted(base.glob("intel-rapl:*")):
        try:
            name = (zone / "name").read_text(encoding="ascii").strip()
        except OSError:
            continue
        if name.startswith("package"):
            kind = "cpu"
        elif name == "dram":
            kind = "dram"
        else:
            continue  # core/uncore are inside a package; psys is the whole platform
        try:
            max_range: float | None = float(
                (zone / "max_energy_range_uj").read_text(encoding="ascii")
            )
        except (OSError, ValueError):
            max_range = None
        domains.append(RaplDomain(zone / "energy_uj", f"{zone.name}/{name}", kind, max_range))
    if not any(d.kind == "cpu" for d in domains):
        raise ProbeUnavailable(
            f"no RAPL package domain (intel-rapl:N named package-N) under {base}"
        )
    return domains


def read_energy_uj(domain: RaplDomain) -> float:
    """The domain's counter in microjoules (errors mapped to ours)."""
    text = _read(domain.path)
    try:
        return float(text)
    except ValueError as exc:
        raise ProbeError(f"{domain.path} holds {text!r}, not a number") from exc


def machine_busy_cpu_s() -> float:
    """The machine's busy CPU seconds since boot, all CPUs (``/proc/stat`` less idle, iowait)."""
    t = psutil.cpu_times()
    return sum(
        v for k, v in t._asdict().items() if k not in ("idle", "iowait", "guest", "guest_nice")
    )


def rapl_status(root: str | Path = DEFAULT_SYSFS_ROOT) -> tuple[bool, str, str]:
    """``(available, reason, fix)`` for ``carbonshift probes``."""
    try:
        domains = discover(root)
        for d in domains:
            read_energy_uj(d)
    except ProbeUnavailable as exc:
        text = str(exc)
        if "permission denied" in text:
            path = text.split("; fix:")[0]
            return False, path, PERMISSION_FIX
        return (
            False,
            text,
            "RAPL needs bare metal or a VM that exposes it (Intel, or AMD Zen with Linux >= 5.8)",
        )
    except ProbeError as exc:
        return False, str(exc), ""
    sockets = sum(1 for d in domains if d.kind == "cpu")
    dram = any(d.kind == "dram" for d in domains)
    return True, f"{sockets} package domain(s){' + dram' if dram else ''} under {root}", ""


class RaplProbe(EnergyProbe):
    """Package (device ``cpu``) and DRAM (device ``dram``) energy, the job's share of it.

    The package figure includes its idle power, so the probe also covers the ``cpu-idle``
    role: the idle-share estimate (:mod:`probes.idle`) stands by behind it.
    """

    method = Method.RAPL
    roles = frozenset({"cpu", "cpu-idle"})

    def __init__(
        self,
        root: str | Path = DEFAULT_SYSFS_ROOT,
        *,
        tree: ProcessTree | None = None,
        machine_cpu_s: Callable[[], float] = machine_busy_cpu_s,
    ) -> None:
        self.root = Path(root)
        self.tree = tree if tree is not None else ProcessTree(with_memory=False)
        self._machine_cpu_s = machine_cpu_s
        self._domains: list[RaplDomain] = []
        self._prev_uj: list[float] = []
        self._prev_job_cpu_s = 0.0
        self._prev_machine_cpu_s = 0.0
        self._prev_at: datetime | None = None

    def begin(self, target: ProbeTarget, now: datetime) -> None:
        self._domains = discover(self.root)
        self._prev_uj = [read_energy_uj(d) for d in self._domains]
        if any(d.kind == "dram" for d in self._domains):
            self.roles = frozenset({"cpu", "cpu-idle", "memory"})
        state = self.tree.attach(target, key=now)
        self._prev_job_cpu_s = state.job_cpu_s
        self._prev_machine_cpu_s = self._machine_cpu_s()
        self._prev_at = now

    def observe_exit(self, *, cpu_s: float | None) -> None:
        self.tree.observe_exit(cpu_s)

    def read(self, now: datetime) -> list[Sample]:
        if self._prev_at is None:
            raise ProbeError("RAPL probe read before begin")
        current = [read_energy_uj(d) for d in self._domains]
        state = self.tree.read(key=now)
        machine_s = self._machine_cpu_s()
        job_delta_s = max(0.0, state.job_cpu_s - self._prev_job_cpu_s)
        machine_delta_s = max(0.0, machine_s - self._prev_machine_cpu_s)
        job_share = share(job_delta_s, max(machine_delta_s, job_delta_s))
        totals_uj: dict[str, float] = {}
        for domain, prev, cur in zip(self._domains, self._prev_uj, current, strict=True):
            totals_uj[domain.kind] = totals_uj.get(domain.kind, 0.0) + counter_delta(
                prev, cur, domain.max_range_uj
            )
        start = self._prev_at
        self._prev_uj, self._prev_at = current, now
        self._prev_job_cpu_s, self._prev_machine_cpu_s = (
            max(self._prev_job_cpu_s, state.job_cpu_s),
            machine_s,
        )
        estimated = job_share < 0.999
        samples = []
        for kind in ("cpu", "dram"):
            if kind not in totals_uj:
                continue
            machine_j = totals_uj[kind] / 1e6
            note = (
                f"job share {job_share:.3f} of {machine_j:.1f} J by CPU time" if estimated else ""
            )
            samples.append(
                Sample(start, now, kind, machine_j * job_share, self.method, estimated, note)
            )
        return samples
