"""The job's process tree, and the CPU-time energy estimate made from it (psutil).

A job runs in its own session and process group (the executor starts it with
``start_new_session=True``, so ``pgid == sid == pid`` of its root). Its members are found
by the process group *and* the session id of every process on the machine, so a
daemonized grandchild that left the tree (re-parented to init) but kept the group or
session is still measured, and by descent from the root: a grandchild that left both
(``setsid``) is still a descendant where the root is a child subreaper (the local
supervisor is one: orphans re-parent to it). One read of ``/proc/<pid>/stat`` per process
finds the members and gives their figures.

CPU time is counted as the sum of ``user + system + children_user + children_system`` over
the live members. When a member reaps a child, the child's time moves into the parent's
``children_*`` fields, so the sum stays continuous. When a member disappears without a
member having reaped it (an orphan reaped by init, or the root reaped by the executor),
its last known time is added back. The job's figure is the high-water mark of that
account, so increments are never negative: processes that disappear never make energy
negative, and a scan that races a reap is not counted twice.

At exit the executor passes the reaped job's rusage (``ru_utime + ru_stime``, which
includes every descendant it waited for); with it a short job's figure is exact even if
it ended between two readings. The figure is then that rusage, plus what orphans outside
its lineage used, less the baseline. Under the local executor the session's root is the
supervisor and the rusage is its child's, the job's: the supervisor's own relaying time
is left out of the final figure unless a reading already counted it (figures never go
down). Members are found by group and session only where the job has its own; a job in
the sampler's own group is followed by its descendants instead.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import psutil

from probes.base import EnergyProbe
from probes.errors import ProbeError, ProbeUnavailable
from probes.model import Method, ProbeTarget, Sample

_Key = object


@dataclass(frozen=True, slots=True)
class Member:
    """A live member of the job: its parent, CPU time (own and reaped children's), RSS."""

    ppid: int
    cpu_s: float
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class TreeState:
    """One reading of the job's tree.

    ``job_cpu_s`` is the job's cumulative CPU time since :meth:`ProcessTree.attach`
    (monotonic, never decreasing); ``rss_bytes`` the resident memory of the live members
    now; ``pids`` the live members; ``monotonic_s`` when it was read (real seconds).
    """

    job_cpu_s: float
    rss_bytes: int
    pids: frozenset[int]
    monotonic_s: float


def account(
    previous: Mapping[int, Member], current: Mapping[int, Member], root: int
) -> tuple[float, float]:
    """CPU time that left the job's account between two scans: ``(left_s, orphans_s)``.

    A member that disappeared while its parent is a live member was reaped by it: its time
    moved into the parent's ``children_*`` fields and is still in the sum. One whose parent
    disappeared too went with that parent (reaped by it, we assume, as parents usually
    wait for their children). Any other member that disappeared (an orphan reaped by init,
    or the root reaped by the executor) took its last known time out of the sum: that is
    ``left_s``. ``orphans_s`` is the part of it outside the root's lineage, which no
    rusage of the root will ever report.
    """
    left_s = orphans_s = 0.0
    for pid, old in previous.items():
        if pid in current:
            continue
        fate = _fate(pid, previous, current, root)
        if fate == "reaped":
            continue
        left_s += old.cpu_s
        if fate == "orphan":
            orphans_s += old.cpu_s
    return left_s, orphans_s


def _fate(
    pid: int, previous: Mapping[int, Member], current: Mapping[int, Member], root: int
) -> str:
    """``reaped`` (time kept by a live member), ``root`` (in the root's rusage) or ``orphan``."""
    seen: set[int] = set()
    while True:
        if pid == root:
            return "root"
        seen.add(pid)
        ppid = previous[pid].ppid
        if ppid in current and ppid != pid:
            return "reaped"
        if ppid in previous and ppid not in seen:
            pid = ppid  # the parent went too: the child's time went with it
            continue
        return "orphan"


class ProcessTree:
    """Finds a job's processes and accounts their CPU time; shared by several probes.

    Readings are cached per ``key`` (the sampler's timestamp), so the CPU-time estimate,
    the memory estimate, RAPL's job share and NVML's process attribution of one tick cost
    one scan of the machine's process table.
    """

    def __init__(
        self,
        *,
        with_memory: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._with_memory = with_memory
        self._monotonic = monotonic
        self._root = 0
        self._pgid: int | None = None
        self._sid: int | None = None
        self._attached = False
        self._procs: dict[int, psutil.Process] = {}
        self._last: dict[int, Member] = {}
        self._baseline_cpu_s = 0.0
        self._cumulative_cpu_s = 0.0
        self._orphan_cpu_s = 0.0
        self._left_cpu_s = 0.0
        self._final: bool = False
        self._final_cpu_s: float | None = None
        self._cache_key: _Key | None = None
        self._cache: TreeState | None = None

    @property
    def attached(self) -> bool:
        """Whether :meth:`attach` has been called."""
        return self._attached

    def attach(self, target: ProbeTarget, key: _Key | None = None) -> TreeState:
        """Start following ``target`` and take the baseline reading.

        Raises :class:`ProbeUnavailable` if the root process does not exist.
        """
        if self._attached:
            if self._root != target.pid:
                raise ProbeError(f"process tree already follows pid {self._root}, not {target.pid}")
            return self.read(key)
        self._root = target.pid
        try:
            pgid = target.pgid if target.pgid is not None else os.getpgid(target.pid)
            sid: int | None = os.getsid(target.pid)
        except ProcessLookupError as exc:
            raise ProbeUnavailable(f"process {target.pid} does not exist") from exc
        except OSError as exc:
            raise ProbeUnavailable(f"cannot read process {target.pid}: {exc}") from exc
        own_pgid, own_sid = os.getpgid(0), os.getsid(0)
        # Match by group/session only where the job has its own; otherwise we would count
        # the sampler's process and everything in its terminal: follow descendants instead.
        self._pgid = pgid if pgid != own_pgid else None
        self._sid = sid if sid != own_sid else None
        self._attached = True
        members = self._scan()
        self._last = members
        self._baseline_cpu_s = sum(m.cpu_s for m in members.values())
        state = TreeState(
            0.0, sum(m.rss_bytes for m in members.values()), frozenset(members), self._monotonic()
        )
        self._cache_key, self._cache = key, state
        return state

    def read(self, key: _Key | None = None) -> TreeState:
        """Scan the tree and advance the CPU account (cached for a repeated ``key``)."""
        if not self._attached:
            raise ProbeError("process tree read before attach")
        if key is not None and key == self._cache_key and self._cache is not None:
            return self._cache
        if self._final and self._cache is not None:
            return self._cache
        if self._final_cpu_s is not None:
            return self.finalize(self._final_cpu_s, key)
        members = self._scan()
        self._advance(members)
        state = TreeState(
            self._cumulative_cpu_s,
            sum(m.rss_bytes for m in members.values()),
            frozenset(members),
            self._monotonic(),
        )
        self._cache_key, self._cache = key, state
        return state

    def observe_exit(self, cpu_s: float | None) -> None:
        """The reaped root's rusage CPU time: the next :meth:`read` closes the account with it."""
        if cpu_s is not None and cpu_s >= 0:
            self._final_cpu_s = cpu_s

    def finalize(self, final_cpu_s: float, key: _Key | None = None) -> TreeState:
        """Close the account with the reaped root's rusage CPU time (exact for its lineage).

        The job's total is then ``final_cpu_s`` plus what orphans that left the lineage
        used (those that died, and those still alive), minus the baseline.
        """
        if not self._attached:
            raise ProbeError("process tree finalized before attach")
        if self._final and self._cache is not None:
            return self._cache
        members = self._scan()
        self._advance(members)
        alive_not_root = sum(m.cpu_s for pid, m in members.items() if pid != self._root)
        total_cpu_s = final_cpu_s + self._orphan_cpu_s + alive_not_root - self._baseline_cpu_s
        self._cumulative_cpu_s = max(self._cumulative_cpu_s, total_cpu_s)
        self._final = True
        state = TreeState(
            self._cumulative_cpu_s,
            sum(m.rss_bytes for m in members.values()),
            frozenset(members),
            self._monotonic(),
        )
        self._cache_key, self._cache = key, state
        return state

    # -- internals -----------------------------------------------------------------------

    def _advance(self, members: dict[int, Member]) -> None:
        # The running account (live members + what left it) is not clamped step by step:
        # a scan racing a reap can miss a child's time for one scan, and clamping that dip
        # would count the time twice when it comes back. The job's figure is the account's
        # high-water mark, so it never decreases either.
        left_s, orphans_s = account(self._last, members, self._root)
        self._left_cpu_s += left_s
        self._orphan_cpu_s += orphans_s
        running_s = sum(m.cpu_s for m in members.values()) + self._left_cpu_s
        self._cumulative_cpu_s = max(self._cumulative_cpu_s, running_s - self._baseline_cpu_s)
        self._last = members

    def _is_member(self, pid: int) -> bool:
        try:
            if self._pgid is not None and os.getpgid(pid) == self._pgid:
                return True
            return self._sid is not None and os.getsid(pid) == self._sid
        except OSError:
            return False

    def _candidate_pids(self) -> list[int]:
        if self._pgid is None and self._sid is None:
            try:
                root = self._proc(self._root)
                return [self._root, *(c.pid for c in root.children(recursive=True))]
            except psutil.Error:
                return []
        return [pid for pid in psutil.pids() if self._is_member(pid)]

    def _proc(self, pid: int) -> psutil.Process:
        proc = self._procs.get(pid)
        if proc is None:
            proc = psutil.Process(pid)
            self._procs[pid] = proc
        return proc

    def _stat_members(self) -> dict[int, bytes]:
        """``/proc/<pid>/stat`` of every member: in the job's group or session, or a
        descendant of its root (a daemon that left both with ``setsid`` stays one where
        the root is a child subreaper, as the local supervisor is). One read per process."""
        stats: dict[int, bytes] = {}
        children: dict[int, list[int]] = {}
        members: list[int] = []
        pgid, sid = str(self._pgid).encode(), str(self._sid).encode()
        for pid in psutil.pids():
            data = _read_stat(pid)
            if data is None:
                continue
            # "pid (comm) state ppid pgrp session ..."
            fields = data[data.rfind(b")") + 2 :].split(None, 4)
            if len(fields) < 4:
                continue
            stats[pid] = data
            if (self._pgid is not None and fields[2] == pgid) or (
                self._sid is not None and fields[3] == sid
            ):
                members.append(pid)
            else:
                children.setdefault(int(fields[1]), []).append(pid)
        out = dict.fromkeys(members)
        todo = [*members, self._root]
        while todo:
            for child in children.pop(todo.pop(), ()):
                out[child] = None
                todo.append(child)
        return {pid: stats[pid] for pid in out if pid in stats}

    def _scan(self) -> dict[int, Member]:
        members: dict[int, Member] = {}
        if _FAST_PROC and (self._pgid is not None or self._sid is not None):
            for pid, data in self._stat_members().items():
                member = _parse_stat(data) or self._read_psutil(pid)
                if member is not None:
                    members[pid] = member
            self._procs = {pid: proc for pid, proc in self._procs.items() if pid in members}
            return members
        for pid in self._candidate_pids():
            member = _read_proc_stat(pid) if _FAST_PROC else None
            if member is None:
                member = self._read_psutil(pid)
            if member is not None:
                members[pid] = member
        for pid in list(self._procs):
            if pid not in members:
                del self._procs[pid]
        return members

    def _read_psutil(self, pid: int) -> Member | None:
        try:
            proc = self._proc(pid)
            with proc.oneshot():
                t = proc.cpu_times()
                ppid = proc.ppid()
                rss = 0
                if self._with_memory:
                    try:
                        rss = proc.memory_info().rss
                    except psutil.Error:
                        rss = 0
        except psutil.Error:
            self._procs.pop(pid, None)
            return None
        return Member(ppid, t.user + t.system + t.children_user + t.children_system, rss)


# On Linux one read of /proc/<pid>/stat gives the parent, the four CPU times and the RSS:
# a third of what psutil's separate calls cost, which keeps a tick on a 50-process job
# well under the 0.5%-of-a-core budget. Elsewhere (or if /proc looks different) psutil.
_FAST_PROC = sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if _FAST_PROC else 100
_PAGE_B = os.sysconf("SC_PAGE_SIZE") if _FAST_PROC else 4096


def _read_stat(pid: int) -> bytes | None:
    """The text of ``/proc/<pid>/stat`` (``None`` if it cannot be read)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_proc_stat(pid: int) -> Member | None:
    """``Member`` from ``/proc/<pid>/stat`` (``None`` if it cannot be read or parsed)."""
    data = _read_stat(pid)
    return _parse_stat(data) if data is not None else None


def _parse_stat(data: bytes) -> Member | None:
    """``Member`` from the text of a ``/proc/<pid>/stat``."""
    # "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    #  utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ..."
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        return Member(int(fields[1]), ticks / _CLK_TCK, int(fields[21]) * _PAGE_B)
    except (IndexError, ValueError):
        return None


class ProcessTreeProbe(EnergyProbe):
    """CPU energy estimated as the job's CPU seconds x watts per core (``estimated=True``).

    ``cpu_w_per_core`` comes from :mod:`probes.cpupower` (the CPU power table) unless given.
    Device ``cpu``, method ``cpu_time_estimate``.
    """

    method = Method.CPU_TIME_ESTIMATE
    roles = frozenset({"cpu"})

    def __init__(
        self, cpu_w_per_core: float, *, tree: ProcessTree | None = None, source: str = ""
    ) -> None:
        if cpu_w_per_core <= 0:
            raise ValueError(f"cpu_w_per_core must be positive, got {cpu_w_per_core}")
        self.cpu_w_per_core = cpu_w_per_core
        self.tree = tree if tree is not None else ProcessTree()
        self.source = source
        self._prev_cpu_s = 0.0
        self._prev_at: datetime | None = None

    def begin(self, target: ProbeTarget, now: datetime) -> None:
        state = self.tree.attach(target, key=now)
        self._prev_cpu_s = state.job_cpu_s
        self._prev_at = now

    def read(self, now: datetime) -> list[Sample]:
        return self._sample(now, self.tree.read(key=now))

    def observe_exit(self, *, cpu_s: float | None) -> None:
        self.tree.observe_exit(cpu_s)

    def _sample(self, now: datetime, state: TreeState) -> list[Sample]:
        if self._prev_at is None:
            raise ProbeError("process-tree probe read before begin")
        start = self._prev_at
        cpu_s = max(0.0, state.job_cpu_s - self._prev_cpu_s)
        self._prev_cpu_s = max(self._prev_cpu_s, state.job_cpu_s)
        self._prev_at = now
        note = f"{cpu_s:.3f} CPU s x {self.cpu_w_per_core:g} W/core"
        if self.source:
            note += f" ({self.source})"
        return [Sample(start, now, "cpu", cpu_s * self.cpu_w_per_core, self.method, True, note)]
