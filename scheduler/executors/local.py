"""Local executor: runs a job on this host under the supervisor, in its own process group.

The command runs as argv (no shell unless the job asked for one) in the job's cwd with the
job's environment only. Stdout and stderr go to capped log files. ``cancel`` sends SIGTERM
to the whole process group and SIGKILL after a grace period; ``suspend``/``resume`` send
SIGSTOP/SIGCONT to the group. A run is found again after a daemon restart by its pid and
the supervisor's exit file.

A suspended group keeps its supervisor running (it is stopped with the group, then
continued alone), so that it still watches the agent, and it continues the job itself
when a *resume-by* time written by the agent (:meth:`LocalExecutor.resume_by`) passes with
nobody having resumed it: a stopped job is never left stopped forever, even when its agent
stopped and no successor came.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scheduler.contracts import Executor, ExitStatus, Handle, LaunchSpec
from scheduler.domain.model import JobState
from scheduler.errors import ExecutorError
from scheduler.executors import contain
from scheduler.executors.helper import helper_argv
from scheduler.executors.identity import identity, same_process, split_identity, with_identity
from scheduler.executors.supervise import contain_file_for
from scheduler.leader import LeaseTiming


@dataclass(frozen=True)
class Owner:
    """Who a job runs as under ``run_as_owner``: a Unix user of this machine."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def switches_user(run_as_owner: bool) -> bool:
    """Whether ``run_as_owner`` takes effect: only an agent running as root can switch."""
    return run_as_owner and os.geteuid() == 0


def job_owner(name: str | None, job_id: int | None, *, root_jobs: bool) -> Owner:
    """The Unix user ``name`` a job of theirs runs as; :class:`ExecutorError` (the job
    fails, saying why) for a user unknown on this machine, or root unless ``root_jobs``."""
    if not name:
        raise ExecutorError(f"job {job_id} has no owner to run as (run_as_owner is on): "
                            "submit it again as a user of this machine")
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise ExecutorError(f"job {job_id} is owned by {name!r}, not a user of this machine "
                            "(run_as_owner is on): create the user here, or submit it as one") from None
    if pw.pw_uid == 0 and not root_jobs:
        raise ExecutorError(f"job {job_id} is owned by {name!r} (root) and run_as_owner does not run "
                            "root's jobs: submit it as another user, or set run_as_owner_root_jobs = true")
    return Owner(name, pw.pw_uid, pw.pw_gid, tuple(os.getgrouplist(name, pw.pw_gid)), pw.pw_dir)


def exit_file_for(out_path: str) -> str:
    base = out_path[:-4] if out_path.endswith(".out") else out_path
    return base + ".exit.json"


def private_dirs(path: Path) -> None:
    """``mkdir -p`` with every directory it creates readable by its owner only (0700);
    ``Path.mkdir(mode=...)`` applies the mode to the last one alone."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
        else:
            os.chmod(d, 0o700)  # whatever the umask


def pid_file_for(out_path: str) -> str:
    return exit_file_for(out_path)[: -len(".exit.json")] + ".pid"


def _write_pid(path: str, pid: int) -> None:
    """Write ``pid`` with its identity (a pid reused later is not taken for it)."""
    _write_text(path, with_identity(str(pid), identity(pid)))


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"  # the heartbeat thread writes too
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass


def resume_file_for(exit_file: str) -> str:
    """The file holding the real time by which a stopped job must be running again."""
    return exit_file[: -len(".exit.json")] + ".resume-by"


def agent_file_for(exit_file: str) -> str:
    """The file naming the agent that follows a run (see ``supervise.AgentWatch``)."""
    return exit_file[: -len(".exit.json")] + ".agent"


def lease_file_for(exit_file: str) -> str:
    """The file holding the end of the run's lease (see ``supervise.LeaseWatch``)."""
    return exit_file[: -len(".exit.json")] + ".lease"


class LocalExecutor(Executor):
    """Runs jobs as child process groups of this host.

    With ``lease`` (the agent's :class:`~scheduler.leader.LeaseTiming`), each run's
    supervisor watches the agent that launched (or adopted) it and stops the job when that
    agent has been gone ``orphan_grace_s`` without anyone adopting the run, or when the run's
    lease comes within ``fence_before_s`` of its end unrenewed (an agent that is stopped or
    hung keeps its pid): the job is gone before another agent may reclaim the run and start
    the job again.

    Each run is contained (``scheduler/executors/contain.py``): in its own cgroup where
    cgroup v2 is writable (``use_cgroup``), its supervisor a child subreaper in any case,
    so daemons the job forks (``setsid`` and all) are measured and end with it.
    """

    name = "local"
    host_bound = True
    can_ask = True

    def __init__(
        self,
        *,
        log_max_bytes: int = 100 * 1024 * 1024,
        python: str | None = None,
        lease: LeaseTiming | None = None,
        use_cgroup: bool = True,
        run_as_owner: bool = False,
        owner_root_jobs: bool = False,
    ) -> None:
        self.log_max_bytes = log_max_bytes
        #: each job runs as its owner (``job_owner``); only when this agent is root
        self.run_as_owner = switches_user(run_as_owner)
        self.owner_root_jobs = owner_root_jobs
        self.python = python or sys.executable
        self.lease = lease
        self.use_cgroup = use_cgroup
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self.host = socket.gethostname()

    def containment(self) -> str:
        """What holds a run's processes together here (``scheduler/executors/contain.py``)."""
        return contain.containment(use_cgroup=self.use_cgroup)

    def launch(self, spec: LaunchSpec) -> Handle:
        job = spec.job
        # refused before anything is written: the job fails at once, saying why
        owner = job_owner(job.owner, job.id, root_jobs=self.owner_root_jobs) if self.run_as_owner else None
        for p in (spec.out_path, spec.err_path):
            private_dirs(Path(p).parent)
        exit_file = exit_file_for(spec.out_path)
        try:
            os.unlink(exit_file)
        except FileNotFoundError:
            pass
        pid_file = pid_file_for(spec.out_path)
        cmd = helper_argv(
            # stdlib_only: the supervisor needs no site-packages; skipping site saves ~25% of its start
            "scheduler.executors.supervise",
            "--exit-file", exit_file, "--pid-file", pid_file,
            "--out", spec.out_path, "--err", spec.err_path,
            "--max-bytes", str(self.log_max_bytes),
            python=self.python, stdlib_only=True,
        )
        if job.shell:
            cmd.append("--shell")
        if not self.use_cgroup:
            cmd.append("--no-cgroup")
        if self.lease is not None:
            agent_file = agent_file_for(exit_file)
            _write_pid(agent_file, os.getpid())
            lease_file = lease_file_for(exit_file)
            self._write_lease(lease_file, spec.lease_until_epoch_s)
            cmd += ["--agent-file", agent_file, "--orphan-grace", f"{self.lease.orphan_grace_s:g}",
                    "--lease-file", lease_file, "--fence-before", f"{self.lease.fence_before_s:g}",
                    "--kill-grace", f"{self.lease.kill_grace_s:g}"]
        cmd += ["--resume-file", resume_file_for(exit_file)]
        env = dict(spec.env, CARBONSHIFT_PROGRESS_FILE=exit_file[: -len(".exit.json")] + ".progress.json")  # progress protocol: scheduler/progress.py
        if owner is not None:
            # the supervisor stays root (it writes the logs, measures, contains, fences);
            # the job's own process drops to its owner
            cmd += ["--uid", str(owner.uid), "--gid", str(owner.gid),
                    "--groups", ",".join(str(g) for g in owner.groups)]
            env.update(HOME=owner.home, USER=owner.name, LOGNAME=owner.name)
        cmd += ["--", *job.argv]
        if spec.gpu_indices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in spec.gpu_indices)
        if not os.path.isdir(job.cwd):
            raise ExecutorError(f"working directory {job.cwd!r} of job {job.id} does not exist")
        try:
            proc = subprocess.Popen(
                cmd, cwd=job.cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError as exc:
            raise ExecutorError(f"cannot start job {job.id}: {exc.strerror}") from exc
        self._children[proc.pid] = proc
        # who the pid is (start time, boot): a pid reused after a crash or a reboot is not
        # taken for this run (scheduler/executors/identity.py)
        ident = identity(proc.pid)
        _write_text(pid_file, with_identity(str(proc.pid), ident))  # the supervisor writes it too, should we die first
        return Handle(handle=with_identity(f"{proc.pid}:{exit_file}", ident), host=self.host, pid=proc.pid)

    def find(self, out_path: str) -> Handle | None:
        """The handle of a run launched with ``out_path`` whose handle was never recorded
        (the daemon died between starting it and saving it), from its pid file."""
        try:
            pid_text, ident = split_identity(Path(pid_file_for(out_path)).read_text().strip())
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return Handle(handle=with_identity(f"{pid}:{exit_file_for(out_path)}", ident),
                      host=self.host, pid=pid)

    def detach(self, handle: Handle) -> None:
        """This agent stops cleanly: the run keeps running, waiting for its next agent."""
        _, exit_file, _ = self._parse(handle)
        if os.path.exists(agent_file_for(exit_file)):
            _write_text(agent_file_for(exit_file), "detached")

    def adopt(self, handle: Handle) -> None:
        """This agent follows the run from now on (after a restart)."""
        _, exit_file, _ = self._parse(handle)
        if os.path.exists(agent_file_for(exit_file)):
            _write_pid(agent_file_for(exit_file), os.getpid())

    def renewed(self, handle: Handle, until_epoch_s: float | None) -> None:
        """Tell the run's supervisor how long its lease now lasts (``None``: parked)."""
        _, exit_file, _ = self._parse(handle)
        self._write_lease(lease_file_for(exit_file), until_epoch_s)

    @staticmethod
    def _write_lease(path: str, until_epoch_s: float | None) -> None:
        _write_text(path, "parked" if until_epoch_s is None else f"{until_epoch_s:.3f}")

    @staticmethod
    def _parse(handle: Handle) -> tuple[int, str, str | None]:
        """``(pid, exit file, identity)`` of ``pid:exit_file[|identity]`` (handles stored
        before identities were recorded have none)."""
        text, ident = split_identity(handle.handle)
        pid_text, _, exit_file = text.partition(":")
        return int(pid_text), exit_file, ident

    def _pid(self, handle: Handle) -> int | None:
        """The run's supervisor pid, or ``None`` when that pid is now another process's
        (reused after a crash or a reboot): such a pid is never adopted nor signalled."""
        pid, _, ident = self._parse(handle)
        if pid in self._children or same_process(pid, ident):
            return pid
        return None

    def _read_exit(self, exit_file: str) -> ExitStatus | None:
        try:
            data = json.loads(Path(exit_file).read_text())
        except (OSError, ValueError):
            return None
        code = data.get("exit_code")
        state = JobState.SUCCEEDED if code == 0 else JobState.FAILED
        if data.get("lost"):
            state = JobState.LOST  # stopped by its supervisor: the agent was gone
        reason = data.get("error") or ("" if code == 0 else f"exit code {code}")
        left = data.get("left_behind")
        if isinstance(left, int) and left > 0:
            note = (f"{left} process{'es' if left > 1 else ''} the job left running ended with it "
                    f"({data.get('containment') or 'process group'})")
            reason = f"{reason}; {note}" if reason else note
        dropped = data.get("log_dropped_bytes")
        if isinstance(dropped, int) and dropped > 0:
            note = (f"{dropped} bytes of the job's output could not be logged "
                    "(disk full or log directory not writable)")
            reason = f"{reason}; {note}" if reason else note
        cpu = data.get("cpu_s")
        return ExitStatus(exit_code=code, state=state.value, reason=reason,
                          cpu_s=float(cpu) if cpu is not None else None)

    def poll(self, handle: Handle) -> ExitStatus | None:
        pid, exit_file, _ = self._parse(handle)
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return None
            self._children.pop(pid, None)
        elif self._pid(handle) is not None and _pid_alive(pid):
            return None
        status = self._read_exit(exit_file)
        if status is not None:
            return status
        if child is not None and child.returncode is not None:
            rc = child.returncode
            return ExitStatus(
                exit_code=None, state=JobState.LOST.value,
                reason=f"supervisor ended ({rc}) without recording the job's exit",
            )
        return ExitStatus(
            exit_code=None, state=JobState.LOST.value,
            reason="process is gone and left no exit record (killed with the host or by SIGKILL)",
        )

    def alive(self, handle: Handle) -> bool:
        pid, _, _ = self._parse(handle)
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        return self._pid(handle) is not None and _pid_alive(pid)

    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        pid, _, _ = self._parse(handle)
        if not self.alive(handle):
            return
        _killpg(pid, signal.SIGCONT)  # a suspended group must run to handle SIGTERM
        _killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not self.alive(handle) and not _group_alive(pid):
                return
            time.sleep(0.05)
        # the supervisor did not end the job in time: everything of the run, its
        # descendants and cgroup first (daemons that left the group), then the group
        _, exit_file, _ = self._parse(handle)
        contain.kill_tree(pid, _cgroup_of(exit_file))
        _killpg(pid, signal.SIGKILL)
        child = self._children.get(pid)
        if child is not None:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def suspend(self, handle: Handle) -> None:
        """Stop the job's processes (SIGSTOP to the group), all but the supervisor, which
        is continued at once: it must go on watching the agent and the resume-by time."""
        pid = self._pid(handle)
        if pid is None:
            return
        _killpg(pid, signal.SIGSTOP)
        try:
            os.kill(pid, signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass

    def resume(self, handle: Handle) -> None:
        pid = self._pid(handle)
        self.resume_by(handle, None)
        if pid is not None:
            _killpg(pid, signal.SIGCONT)

    def resume_by(self, handle: Handle, at_epoch_s: float | None) -> bool:
        """Tell the supervisor of a stopped run to continue the job by itself at this real
        time (``time.time()`` seconds) unless resumed first; ``None`` takes it back."""
        _, exit_file, _ = self._parse(handle)
        path = resume_file_for(exit_file)
        if at_epoch_s is None:
            try:
                os.unlink(path)
            except OSError:
                pass
            return True
        _write_text(path, f"{at_epoch_s:.3f}")
        return True

    def stopped(self, handle: Handle) -> bool:
        """Whether a process of the run's group other than its supervisor is stopped."""
        pid = self._pid(handle)
        if pid is None:
            return False
        return any(state == b"T" for member, state in _group_states(pid) or [] if member != pid)

    def ask(self, handle: Handle, signum: int) -> None:
        """Send ``signum`` to the job once (its pause signal): to its supervisor, which
        passes it on. Sent to the whole group it would reach the job twice."""
        pid = self._pid(handle)
        if pid is None:
            return
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def signal(self, handle: Handle, signum: int) -> None:
        pid = self._pid(handle)
        if pid is not None:
            _killpg(pid, signum)

    def cleanup_group(self, handle: Handle, grace_s: float = 2.0) -> bool:
        """Kill what is left of a finished run (daemons it forked): its cgroup, should its
        supervisor have died before ending them, and its process group.

        Returns whether anything was left (the supervisor's own ending of them included)."""
        pid = self._pid(handle)
        if pid is None:
            return False
        _, exit_file, _ = self._parse(handle)
        left = False
        cgroup = _cgroup_of(exit_file)
        if cgroup is not None:
            left = bool(contain.cgroup_pids(cgroup))
            contain.kill_cgroup(cgroup)
            contain.remove_cgroup(cgroup)
        if _group_alive(pid):
            left = True
            _killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and _group_alive(pid):
                time.sleep(0.05)
            if _group_alive(pid):
                _killpg(pid, signal.SIGKILL)
        if not left:
            try:
                record = json.loads(Path(exit_file).read_text())
            except (OSError, ValueError):
                return False
            left = isinstance(record, dict) and bool(record.get("left_behind"))
        return left


def _cgroup_of(exit_file: str) -> str | None:
    """The cgroup a run's supervisor put its job in, while it runs (``None``: none)."""
    try:
        path = Path(contain_file_for(exit_file)).read_text().strip()
    except OSError:
        return None
    ours = os.path.basename(path).startswith("carbonshift-")
    return path if ours and path.startswith("/") and os.path.isdir(path) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0] != b"Z"
    except OSError:
        return False


def _group_states(pgid: int) -> list[tuple[int, bytes]] | None:
    """``(pid, state letter)`` of every process in the group, from ``/proc`` (``None``
    when ``/proc`` cannot be read)."""
    out: list[tuple[int, bytes]] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            out.append((int(name), fields[0]))
    return out


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count: where PID 1
    reaps nothing, as in many containers, an orphaned supervisor stays a zombie)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    states = _group_states(pgid)
    return True if states is None else any(state != b"Z" for _, state in states)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
