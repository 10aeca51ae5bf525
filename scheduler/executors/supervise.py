"""The job supervisor: ``python -m scheduler.executors.supervise --exit-file F -- argv...``.

It is the leader of the job's own session and process group. It starts the job's command
(never through a shell unless the scheduler asked for one), relays its stdout and stderr
into log files capped at ``--max-bytes`` (rotating to ``.1``), reaps it with ``wait4`` and
writes ``{"exit_code", "cpu_s", "finished_at"}`` atomically to the exit file, so a daemon
that restarted can still learn how its job ended. Signals it receives (SIGTERM, SIGINT,
SIGUSR1...) are passed to the job. It exits with the job's exit code.

With ``--agent-file F --orphan-grace S`` it also watches the agent that launched it: ``F``
holds that agent's pid (an agent that adopts the run after a restart writes its own; one
that stops cleanly writes ``detached``). When the pid in ``F`` is gone for ``S`` seconds
(the agent was killed and nobody adopted the run), the supervisor stops the job (SIGTERM,
SIGKILL 5 s later) and records it as lost. ``S`` is shorter than the run's lease, so the
job is dead before any other agent may reclaim the run and start the job again: a job
never runs twice at once (see ``scheduler/dispatch.py``).

With ``--lease-file F --fence-before S``, it fences by lease time as well: ``F`` holds
the end (Unix seconds) of the run's lease as its agent last renewed it in the database (or
``parked``). An agent that is stopped (SIGSTOP) or hung keeps its pid but renews nothing:
when less than ``S`` of the lease is left, the job is stopped the same way (SIGTERM, then
SIGKILL ``--kill-grace`` seconds later), before other agents may reclaim the run
(``scheduler.leader.LeaseTiming`` sets the margins).

With ``--resume-file F``: when the agent pauses an interruptible job with SIGSTOP (to the
whole group; the supervisor is continued at once) it writes into ``F`` the real time
(Unix seconds) by which the job must be running again. If that time passes and ``F`` is
still there (nobody resumed the job: its agent stopped and no successor came), the
supervisor continues the job itself: a stopped job is never left stopped forever.

Standard library only (and our own standard-library-only modules): it starts in a few tens
of milliseconds. It is started isolated from the job's folder and ``PYTHONPATH``
(:func:`scheduler.executors.helper.helper_argv`); the job gets both as given.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO

from scheduler.executors import contain
from scheduler.executors.identity import identity, same_process, split_identity, with_identity


class CappedLog:
    """A log file that rotates to ``<path>.1`` when it reaches ``max_bytes``.

    If the directory disappears under it, it is created again; if writing fails for good
    (disk full), output is dropped and counted rather than blocking the job.
    """

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self.dropped = 0
        self.fh: IO[bytes] | None = None
        self._open()

    def _open(self) -> None:
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self.fh = os.fdopen(fd, "ab", buffering=0)
            self.size = os.fstat(fd).st_size
        except OSError:
            self.fh = None

    def write(self, data: bytes) -> None:
        if self.fh is None or not os.path.exists(self.path):
            self._close()
            self._open()
        if self.fh is None:
            self.dropped += len(data)
            return
        if self.max_bytes > 0 and self.size + len(data) > self.max_bytes:
            self._close()
            try:
                os.replace(self.path, self.path + ".1")
            except OSError:
                pass
            self._open()
            if self.fh is None:
                self.dropped += len(data)
                return
        try:
            self.fh.write(data)
            self.size += len(data)
        except OSError:
            self.dropped += len(data)

    def _close(self) -> None:
        if self.fh is not None:
            try:
                self.fh.close()
            except OSError:
                pass
        self.fh = None

    def close(self) -> None:
        self._close()


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass


class AgentWatch:
    """Notices when the agent that holds this run's lease is gone and nobody adopted it."""

    def __init__(self, path: str, grace_s: float) -> None:
        self.path = path
        self.grace_s = grace_s
        self.gone_since: float | None = None
        self._next_check = 0.0
        self.agent = ""

    def _agent_alive(self) -> bool:
        try:
            with open(self.path, encoding="ascii", errors="replace") as f:
                text = f.read().strip()
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell: do not stop a job on a doubt
        if text == "detached":
            return True  # a cleanly stopped agent left it for its successor
        text, ident = split_identity(text)
        if not text.isdigit():
            return True
        self.agent = text
        try:
            os.kill(int(text), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        if not same_process(int(text), ident):
            return False  # the agent's pid now names another process: the agent is gone
        try:  # a zombie agent is a dead one
            with open(f"/proc/{text}/stat", "rb") as f:
                return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
        except (OSError, IndexError):
            return True

    def orphaned(self) -> bool:
        """Whether the agent has been gone for longer than the grace (checked twice a second)."""
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + 0.5
        if self._agent_alive():
            self.gone_since = None
            return False
        if self.gone_since is None:
            self.gone_since = now
        return now - self.gone_since >= self.grace_s

    def reason(self) -> str:
        who = f"its agent (pid {self.agent})" if self.agent else "its agent"
        return (f"{who} died and no agent adopted the run within {self.grace_s:g} s: stopped, "
                "so that the job does not run twice when the run's lease is reclaimed")


class LeaseWatch:
    """Notices when the lease this run holds is about to end without a renewal.

    Its agent writes each renewed expiry (Unix seconds) into the file, or ``parked`` when it
    stops cleanly (the lease has no end until a successor renews it). An agent that is alive
    but stopped, hung or cut off renews nothing: once less than ``before_s`` is left, the
    job must stop, since other agents reclaim the run when the lease has ended (see
    ``scheduler.leader.LeaseTiming``). A missing or unreadable file fences nothing.
    """

    def __init__(self, path: str, before_s: float) -> None:
        self.path = path
        self.before_s = before_s
        self.until: float | None = None
        self._next_check = 0.0

    def ending(self) -> bool:
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + 0.5
        try:
            with open(self.path, encoding="ascii", errors="replace") as f:
                until = float(f.read().strip())
        except (OSError, ValueError):  # parked, or nothing written
            return False
        self.until = until
        return time.time() > until - self.before_s

    def reason(self) -> str:
        at = datetime.fromtimestamp(self.until or 0.0, UTC).isoformat(timespec="seconds")
        return (f"its agent stopped renewing the run's lease (it ends {at}): stopped "
                f"{self.before_s:g} s before its end, so that the job does not run twice when "
                "another agent reclaims the run")


#: signals the supervisor passes on to the job (a job's pause signal is one of them)
FORWARDED_SIGNALS = (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGQUIT, signal.SIGALRM, signal.SIGXCPU,
)

#: disk space claimed for the exit record when the job starts (see :func:`_reserve_exit`)
EXIT_RESERVE_BYTES = 4096


def _reserve_exit(path: str) -> None:
    """Claim the exit record's disk space up front: a disk that fills up while the job runs
    (its own logs, say) must not cost the record of how it ended, without which the run
    would count as lost and be run again."""
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        fd = os.open(path + ".reserve", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(b" " * EXIT_RESERVE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass


def _write_exit(path: str, payload: dict[str, object]) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    reserve = path + ".reserve"
    data = json.dumps(payload).encode()
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        # disk full: write into the space reserved at start instead (no new blocks needed)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        try:
            with open(reserve, "r+b") as f:
                f.write(data)
                f.truncate(len(data))
                f.flush()
                os.fsync(f.fileno())
            os.replace(reserve, path)
        except OSError:
            pass
    try:
        os.unlink(reserve)
    except OSError:
        pass


def contain_file_for(exit_file: str) -> str:
    """The file naming the run's cgroup while it runs (for ``cancel``)."""
    base = exit_file[: -len(".exit.json")] if exit_file.endswith(".exit.json") else exit_file
    return base + ".cgroup"


def _halt(pid: int, timeout_s: float = 2.0) -> bool:
    """Stop child ``pid`` (SIGSTOP, to it alone) and wait until it is stopped or has
    exited; return whether it exited (on its own: it did before the stop took hold).

    Once it is stopped it cannot exit by itself any more, so whatever ends it after that
    is what the caller does to it. Nothing is reaped (``WNOWAIT``). If it neither stops
    nor exits within ``timeout_s`` (stuck in the kernel), ``False``.
    """
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return True  # reaped already
    except PermissionError:
        return False
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True  # reaped already (by Popen, when a signal was forwarded)
        except InterruptedError:
            continue
        if info is not None:
            return info.si_code in (os.CLD_EXITED, os.CLD_KILLED, os.CLD_DUMPED)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def _preexec(enter: Callable[[], None] | None, uid: int | None, gid: int | None,
             groups: str) -> Callable[[], None] | None:
    """The job's ``preexec_fn``: into its cgroup (as root, which may), then, with ``uid``,
    down to its owner's groups, gid and uid. Not Popen's ``user=``: CPython switches
    user before ``preexec_fn``, and the owner may not move itself into our cgroup."""
    if uid is None:
        return enter
    extra = [int(g) for g in groups.split(",") if g]
    group = uid if gid is None else gid

    def run() -> None:
        if enter is not None:
            enter()
        os.setgroups(extra)
        os.setresgid(group, group, group)
        os.setresuid(uid, uid, uid)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carbonshift-supervise")
    parser.add_argument("--exit-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--err", required=True)
    parser.add_argument("--pid-file", help="write this process's pid here first")
    parser.add_argument("--max-bytes", type=int, default=100 * 1024 * 1024)
    parser.add_argument("--shell", action="store_true")
    parser.add_argument("--agent-file", help="holds the pid of the agent following this run")
    parser.add_argument("--orphan-grace", type=float, default=10.0,
                        help="seconds the agent may be gone before the job is stopped")
    parser.add_argument("--resume-file", help="holds the time by which a stopped job must run again")
    parser.add_argument("--lease-file", help="holds the end (Unix seconds) of the run's lease")
    parser.add_argument("--fence-before", type=float, default=0.0,
                        help="stop the job when its lease has less than this left (seconds)")
    parser.add_argument("--kill-grace", type=float, default=5.0,
                        help="seconds between the fence's SIGTERM and SIGKILL")
    parser.add_argument("--no-cgroup", action="store_true",
                        help="contain the job as child subreaper only, even where cgroup v2 is writable")
    parser.add_argument("--uid", type=int, help="run the job (only it) as this user (the agent is root)")
    parser.add_argument("--gid", type=int, help="with --uid: the job's group")
    parser.add_argument("--groups", default="", help="with --uid: the job's supplementary groups, comma-separated")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        print("carbonshift-supervise: no command", file=sys.stderr)
        return 2
    if args.pid_file:  # with who this pid is: a pid reused later is not taken for this run
        _write_atomic(args.pid_file, with_identity(str(os.getpid()), identity(os.getpid())))
    _reserve_exit(args.exit_file)
    out = CappedLog(args.out, args.max_bytes)
    err = CappedLog(args.err, args.max_bytes)
    started = time.time()
    # the job's environment as given (PYTHONPATH included): this interpreter ignored it
    # (started isolated, see scheduler/executors/helper.py); the job gets it whole
    env = dict(os.environ)
    # containment (scheduler/executors/contain.py): orphaned descendants re-parent to us;
    # the job goes into its own cgroup, where there is a writable cgroup v2
    subreaper = contain.set_subreaper()
    cgroup = contain.run_cgroup(None if args.no_cgroup else os.path.abspath(args.exit_file))
    try:
        child = subprocess.Popen(
            ["/bin/sh", "-c", " ".join(cmd)] if args.shell else cmd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            preexec_fn=_preexec(contain.entering(cgroup), args.uid, args.gid, args.groups),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        if cgroup is not None:
            contain.remove_cgroup(cgroup)
        msg = f"carbonshift: cannot start {cmd[0]!r}: {getattr(exc, 'strerror', None) or exc}\n".encode()
        err.write(msg)
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        _write_exit(args.exit_file, {
            "exit_code": code, "cpu_s": 0.0, "finished_at": datetime.now(UTC).isoformat(),
            "error": msg.decode().strip(),
        })
        return code

    if cgroup is not None and not contain.in_cgroup(child.pid, cgroup):
        contain.remove_cgroup(cgroup)  # could not move it there: the subreaper alone
        cgroup = None
    containment = (f"cgroup {cgroup}" if cgroup is not None
                   else "child subreaper" if subreaper else "process group only")
    if cgroup is not None:
        _write_atomic(contain_file_for(args.exit_file), cgroup)
    orphans_cpu_s = 0.0  # CPU time of the descendants we reaped (not the job's own)
    status: int | None = None
    usage: resource.struct_rusage | None = None

    def forward(signum: int, _frame: object) -> None:
        try:
            child.send_signal(signum)
        except OSError:
            pass

    def reap() -> None:
        """Reap the job, if it ended, and any orphaned descendant re-parented to us."""
        nonlocal status, usage, orphans_cpu_s
        while True:
            try:
                pid, st, ru = os.wait4(-1, os.WNOHANG)
            except InterruptedError:
                continue
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == child.pid:
                status, usage = st, ru
            else:
                orphans_cpu_s += ru.ru_utime + ru.ru_stime
        if status is None and child.returncode is not None:
            status, usage = 0, None  # reaped by Popen (a forwarded signal): see below

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)

    sel = selectors.DefaultSelector()
    assert child.stdout is not None and child.stderr is not None
    sel.register(child.stdout, selectors.EVENT_READ, out)
    sel.register(child.stderr, selectors.EVENT_READ, err)
    open_streams = 2
    drain_until: float | None = None
    watch = AgentWatch(args.agent_file, args.orphan_grace) if args.agent_file else None
    lease = LeaseWatch(args.lease_file, args.fence_before) if args.lease_file else None
    lost_reason: str | None = None
    kill_at: float | None = None
    leader = os.getpgrp() == os.getpid()
    next_resume_check = 0.0

    def continue_group() -> None:
        if leader:  # the job's whole group (ourselves included: harmless)
            try:
                os.killpg(os.getpgrp(), signal.SIGCONT)
            except OSError:
                pass
        else:
            forward(signal.SIGCONT, None)

    def overdue_resume() -> None:
        """Continue a stopped job whose resume-by time has passed (checked twice a second)."""
        nonlocal next_resume_check
        if args.resume_file is None or status is not None or time.monotonic() < next_resume_check:
            return
        next_resume_check = time.monotonic() + 0.5
        try:
            with open(args.resume_file, encoding="ascii") as f:
                at = float(f.read().strip() or "inf")
        except (OSError, ValueError):
            return
        if time.time() < at:
            return
        try:
            os.unlink(args.resume_file)
        except OSError:
            pass
        continue_group()
        err.write(b"carbonshift: the job was paused past its planned resumption and no agent "
                  b"resumed it: continued by its supervisor\n")

    def fence_reason() -> str | None:
        """Why the job must stop now: its agent is gone for good, or its lease is ending
        unrenewed (an agent that is stopped or hung keeps its pid)."""
        if watch is not None and watch.orphaned():
            return watch.reason()
        if lease is not None and lease.ending():
            return lease.reason()
        return None

    def fence() -> None:
        """Stop the job once :func:`fence_reason` says so (SIGTERM, then SIGKILL).

        The job may exit on its own at any moment up to the signal: it is halted first
        (:func:`_halt`), so that an exit that came before is recorded as the job's own,
        never as lost (which would run a job that succeeded a second time)."""
        nonlocal lost_reason, kill_at
        if status is not None or (watch is None and lease is None):
            return
        if lost_reason is None and (why := fence_reason()) is not None:
            if _halt(child.pid):
                return  # it ended by itself: the loop reaps it and records its exit
            lost_reason = why
            err.write(f"carbonshift: {lost_reason}\n".encode())
            if leader:  # the job's whole group, not ourselves
                previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
                try:
                    os.killpg(os.getpgrp(), signal.SIGTERM)
                finally:
                    signal.signal(signal.SIGTERM, previous)
            else:
                forward(signal.SIGTERM, None)
            continue_group()  # a stopped (halted, paused) job must run to handle SIGTERM
            kill_at = time.monotonic() + args.kill_grace
        elif kill_at is not None and time.monotonic() > kill_at:
            forward(signal.SIGKILL, None)
            kill_at = None
    # Relay output until both pipes close. Once the job's own process has exited, keep
    # draining for a moment only: a background child it left behind may hold the pipes
    # open forever (the daemon cleans up the process group afterwards).
    while open_streams:
        if status is None:
            reap()
            if status is not None:
                drain_until = time.monotonic() + 1.0
        if drain_until is not None and time.monotonic() > drain_until:
            break
        fence()
        overdue_resume()
        try:
            events = sel.select(timeout=0.2)
        except InterruptedError:
            continue
        for key, _ in events:
            try:
                chunk = os.read(key.fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            key.data.write(chunk)
    for stream in (child.stdout, child.stderr):
        try:
            stream.close()
        except OSError:
            pass
    while status is None:  # poll: the job may outlive its closed pipes
        reap()
        if status is None:
            fence()
            overdue_resume()
            time.sleep(0.2)
    # what the job left behind (daemons it forked, in its group or not) ends with it
    left_behind = contain.end_leftovers(os.getpid(), cgroup, reap)
    # usage is None when Popen reaped the child first (a signal forwarded after it ended):
    # its returncode then holds the status
    code = os.waitstatus_to_exitcode(status) if usage is not None else (child.returncode or 0)
    child.returncode = code
    if code < 0:
        code = 128 - code  # killed by a signal: the shell convention, 128 + signal number
    cpu_s = (usage.ru_utime + usage.ru_stime + orphans_cpu_s) if usage is not None else None
    if cgroup is not None:  # exact, whatever left the tree
        cpu_s = contain.cgroup_cpu_s(cgroup) or cpu_s
        contain.remove_cgroup(cgroup)
        try:
            os.unlink(contain_file_for(args.exit_file))
        except OSError:
            pass
    out.close()
    err.close()
    record: dict[str, object] = {
        "exit_code": code,
        "cpu_s": cpu_s,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "log_dropped_bytes": out.dropped + err.dropped,
        "containment": containment,
        "left_behind": left_behind,
    }
    if lost_reason is not None:
        record.update(lost=True, error=lost_reason)
    _write_exit(args.exit_file, record)
    return code


if __name__ == "__main__":
    sys.exit(main())
