"""Containment of a job's processes (standard library only: the supervisor imports it).

A job may leave its process group and session (``setsid``) and fork again: such a
daemonized grandchild would outlive the job and ``cancel``, and go unmeasured. Two ways to
keep hold of every process a job starts, best first:

- **cgroup v2**: where this process's own cgroup (v2) is writable, each run gets its own
  child cgroup (``carbonshift-<hash of the run's exit file>``); the job is moved into it
  before it runs (so all it forks is in it), its CPU time is the cgroup's ``cpu.stat``
  (exact, dead processes included) and ending it kills the whole cgroup (``cgroup.kill``).
- **child subreaper**: the supervisor sets ``PR_SET_CHILD_SUBREAPER``, so orphaned
  descendants re-parent to it instead of init: they stay its descendants (found by parent
  pid, measured by the process-tree probe), it reaps them (their CPU time is added to the
  job's) and kills those left when the job ends.

The supervisor is always a subreaper; the cgroup is used on top where the machine allows.
:func:`containment` names what a run gets here, for logs and ``show``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import time
from collections.abc import Callable

#: ``prctl`` option making this process the reaper of its orphaned descendants
PR_SET_CHILD_SUBREAPER = 36


def set_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); whether it worked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _cgroup2_parent() -> str | None:
    """This process's own cgroup v2 folder, if it may create child cgroups and move
    processes into them; ``None`` otherwise (no cgroup v2, or not writable)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            mounts = [line.split() for line in f]
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            own = next((line.strip()[3:] for line in f if line.startswith("0::")), None)
    except OSError:
        return None
    mount = next((m[1] for m in mounts if len(m) > 2 and m[2] == "cgroup2"), None)
    if mount is None or own is None:
        return None
    parent = os.path.normpath(os.path.join(mount, own.lstrip("/")))
    procs = os.path.join(parent, "cgroup.procs")
    if os.access(parent, os.W_OK) and os.access(procs, os.W_OK):
        return parent
    return None


def cgroup_for(key: str) -> str | None:
    """The cgroup folder a run named by ``key`` (its exit file) gets here, or ``None``."""
    parent = _cgroup2_parent()
    if parent is None:
        return None
    return os.path.join(parent, "carbonshift-" + hashlib.sha256(key.encode()).hexdigest()[:16])


def containment(*, use_cgroup: bool = True) -> str:
    """What contains a job's processes on this host, in words."""
    if not use_cgroup:
        return "child subreaper"
    parent = _cgroup2_parent()
    if parent is not None:
        return f"cgroup v2 under {parent}"
    return "child subreaper (no writable cgroup v2)"


#: an empty run cgroup older than this is left over (its supervisor was killed): removed
STALE_CGROUP_S = 120.0


def sweep_stale(path: str) -> None:
    """Remove empty run cgroups beside ``path`` left by supervisors that were killed
    (SIGKILL leaves no chance to ``rmdir``). A populated one cannot be removed, and a
    fresh one may be about to receive its job, so only those older than
    :data:`STALE_CGROUP_S` are tried."""
    parent = os.path.dirname(path)
    try:
        names = [n for n in os.listdir(parent) if n.startswith("carbonshift-")]
    except OSError:
        return
    now = time.time()
    for name in names:
        full = os.path.join(parent, name)
        try:
            if full != path and now - os.stat(full).st_mtime > STALE_CGROUP_S:
                os.rmdir(full)  # EBUSY while it holds a process
        except OSError:
            continue


def make_cgroup(path: str) -> bool:
    sweep_stale(path)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    except OSError:
        return False
    return True


def enter_cgroup(path: str) -> None:
    """Move the calling process into cgroup ``path`` (in a child before ``exec``); quiet."""
    try:
        fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError:
        pass


def in_cgroup(pid: int, path: str) -> bool:
    """Whether process ``pid`` is in cgroup ``path``."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            own = next((line.strip()[3:] for line in f if line.startswith("0::")), "")
    except OSError:
        return False
    rel = own.rstrip("/")
    return bool(rel) and path.rstrip("/").endswith(rel)


def cgroup_pids(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def cgroup_cpu_s(path: str) -> float | None:
    """CPU time used in cgroup ``path`` so far, dead processes included (``cpu.stat``)."""
    try:
        with open(os.path.join(path, "cpu.stat"), encoding="ascii") as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == "usage_usec":
                    return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None


def kill_cgroup(path: str) -> None:
    """SIGKILL every process in cgroup ``path`` (``cgroup.kill``, or one by one)."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w", encoding="ascii") as f:
            f.write("1")
        return
    except OSError:
        pass
    for _ in range(20):  # without cgroup.kill (before Linux 5.14): until nobody is left
        pids = cgroup_pids(path)
        if not pids:
            return
        for pid in pids:
            _kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def remove_cgroup(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root``, by parent pid (``/proc``)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
            fields = data[data.rfind(b")") + 2 :].split()
            if fields[0] in (b"Z", b"X"):
                continue
            children.setdefault(int(fields[1]), []).append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child != root and child not in out:
                out.append(child)
                todo.append(child)
    return out


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(root: int, cgroup: str | None, sig: int = signal.SIGKILL) -> int:
    """Signal every process of a run: its cgroup's, and ``root``'s descendants (not
    ``root`` itself). Returns how many were signalled."""
    pids = set(descendants(root))
    if cgroup is not None:
        pids.update(cgroup_pids(cgroup))
    pids.discard(root)
    if cgroup is not None and sig == signal.SIGKILL:
        kill_cgroup(cgroup)
    for pid in pids:
        _kill(pid, sig)
    return len(pids)


def run_cgroup(key: str | None) -> str | None:
    """The cgroup of the run named by ``key``, made (``None``: no key, or none here)."""
    cgroup = cgroup_for(key) if key is not None else None
    return cgroup if cgroup is not None and make_cgroup(cgroup) else None


def entering(cgroup: str | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` moving the job into ``cgroup`` before it runs (so all it forks is
    in it); ``None`` without a cgroup."""
    if cgroup is None:
        return None
    return lambda: enter_cgroup(cgroup)


def end_leftovers(root: int, cgroup: str | None, reap: Callable[[], None], grace_s: float = 2.0) -> int:
    """End what a job left running once it exited (daemons it forked, in its group or not:
    ``cgroup``'s processes and ``root``'s descendants, ``root`` being the subreaper that
    started it): SIGTERM, SIGKILL after ``grace_s``; ``reap`` collects them. Returns how
    many there were."""
    count = kill_tree(root, cgroup, signal.SIGTERM)
    if not count:
        return 0

    def gone(timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            reap()
            if not descendants(root) and not (cgroup and cgroup_pids(cgroup)):
                return True
            time.sleep(0.02)
        return False

    if not gone(grace_s):
        kill_tree(root, cgroup, signal.SIGKILL)
        gone(5.0)
    reap()  # the last ones died as zombies of ``root``: their CPU time is the job's
    return count


__all__ = [
    "cgroup_cpu_s", "cgroup_for", "cgroup_pids", "containment", "descendants", "end_leftovers",
    "enter_cgroup", "entering", "in_cgroup", "kill_cgroup", "kill_tree", "make_cgroup",
    "remove_cgroup", "run_cgroup", "set_subreaper",
]
