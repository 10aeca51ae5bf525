"""Run jobs on a Slurm cluster: :class:`SlurmExecutor`.

Launch
    A run becomes one batch job, submitted with ``sbatch --parsable`` and a batch script
    on stdin (no temporary file). The job is named ``cs-<job id>-<name>`` (a sweep's trial
    ``sweep-<sweep id>-<array index>``: each trial is its own batch job at its own planned
    start, where a Slurm array would share one ``--begin``); it asks for one
    task with ``--cpus-per-task``, ``--gres=gpu:N`` when the job wants GPUs, a ``--time``
    limit of the duration estimate plus a safety margin (:func:`time_limit_s`), and writes
    to the run's output paths (``%`` escaped, since Slurm expands ``%j`` and friends there).
    The Slurm job id is the run's handle. ``LaunchSpec.gpu_indices`` is not used: Slurm
    picks the GPUs and sets ``CUDA_VISIBLE_DEVICES`` for the job itself.

Environment
    ``--export=NONE``: nothing of the agent's own environment reaches the job. Slurm then
    gives the job the owner's login environment on the node (``--get-user-env``) and its
    ``SLURM_*`` variables, and the batch script exports the job's own environment
    (``LaunchSpec.env``) on top, each value shell-quoted. The Slurm commands themselves run
    with a minimal environment too (``PATH``, ``TZ=UTC``, ``LC_ALL=C`` and, if configured,
    ``SLURM_CONF``), so a stray ``SBATCH_*`` variable in the agent cannot change a job.

Command
    ``argv`` is run without a shell: the script ends with ``exec`` and every argument
    quoted with :func:`shlex.quote`, so spaces, quotes and ``$`` reach the program as they
    were given. A job submitted with ``shell=True`` runs ``/bin/sh -c "<argv joined by
    spaces>"`` instead, as the local executor does. The script changes to the job's
    directory itself and exits with 127 if it cannot: Slurm would silently fall back to
    ``/tmp``.

Planned start: ``--begin``, not hold-and-release
    A run with ``LaunchSpec.begin_at`` is submitted with ``--begin=<planned start>``
    (UTC, rounded up to the second so it never starts early). We chose this over
    ``--hold`` then ``scontrol release`` because:

    * the planned start then lives in Slurm, which is built to keep it: the job starts on
      time even if the agent is restarting, has crashed or has lost its database
      connection at that moment. With hold-and-release a dead agent leaves the job held
      forever, and a slow one starts it late;
    * there is no second timer to keep in step with the database, and nothing to
      reconcile after an agent restart: the job is simply pending with reason
      ``BeginTime``, visible to the cluster's users and admins in ``squeue``;
    * a replan moves it with one call, :meth:`SlurmExecutor.reschedule`
      (``scontrol update JobId=.. StartTime=..``), and a cancelled plan is ``scancel``.

    The agent may therefore submit a planned job early (its claim in the database then
    happens at submission) or at the planned start; either way Slurm guarantees
    "not before". The price: Slurm starts an eligible job at its next scheduling pass, so
    the start lags the planned time by up to ``bf_interval``/``sched_interval`` (30 s /
    60 s by default; 5 s / 10 s in the CI ``slurm.conf``, where jobs start 2-10 s after
    their planned time), never precedes it. Carbon windows are 30 minutes or more, so this
    is noise.

Following jobs
    :meth:`SlurmExecutor.poll_many` follows all of an agent's runs with ONE
    ``squeue -j ID1,ID2,... --states=all`` call (up to :data:`IDS_PER_CALL` ids a call), and
    the agent calls it once every ``poll_interval_s`` real seconds (config ``slurm_poll_s``,
    15 s by default), not once per job per tick: a cluster's controller answers every user,
    and admins count the RPCs. :meth:`~SlurmExecutor.poll` is the same for one run. Once a
    job has left the live states the details (state, exit code, reason) come from the first
    source that still knows it:

    1. ``scontrol show job`` -- the controller keeps finished jobs for ``MinJobAge``
       seconds (300 by default, an hour in the CI ``slurm.conf``);
    2. ``sacct`` -- one call for all the finished jobs the controller has forgotten, and
       only where accounting is configured (slurmdbd). Without slurmdbd
       ``sacct`` answers "Slurm accounting storage is disabled"; the executor notices
       (from ``scontrol show config`` or that answer) and stops asking;
    3. the job completion log when ``JobCompType=jobcomp/filetxt`` (its ``JobCompLoc``
       read from ``scontrol show config``, or given), one ``Key=Value`` line per job, read
       once for all of them.

    ``scontrol show job`` takes one id, so it runs once per job, when the job ends.

    A job that none of them knows is ``lost``, with the reason. If the controller cannot
    be reached, :class:`~scheduler.errors.ExecutorError` is raised instead: the job may
    be fine, and the caller retries later.

    Slurm states map to ours with :func:`map_slurm_state`. Exit codes follow the local
    executor and the shell: the program's exit status, or 128 + the signal number for a
    job killed by a signal (Slurm ``ExitCode=0:15`` -> ``143``).

Stopping, pausing
    :meth:`~SlurmExecutor.cancel` is ``scancel``: Slurm sends SIGTERM, then SIGKILL after
    the cluster's ``KillWait`` (that, not ``grace_s``, is the grace period).
    :meth:`~SlurmExecutor.suspend` and :meth:`~SlurmExecutor.resume` are
    ``scontrol suspend/resume``, which Slurm allows only to root, SlurmUser and operators:
    an agent running as an ordinary user gets an :class:`ExecutorError` saying so.

Energy
    Where the cluster has energy accounting (``AcctGatherEnergyType`` other than
    ``acct_gather_energy/none``) and ``sacct`` works, :meth:`~SlurmExecutor.energy`
    returns ``ConsumedEnergyRaw`` (joules, whole allocation) as one sample. Otherwise it
    returns ``None`` and the run relies on our probe wrapper on the node: given a
    ``wrapper`` (the agent passes :func:`scheduler.executors.measured.wrapper_argv`), the
    batch script runs ``<wrapper> -- <command>``, and the wrapper writes the job's samples
    to the shared database as it runs (see :mod:`scheduler.executors.measured`).

Every command runs from an argv list, without a shell, with a timeout; every failure
becomes :class:`~scheduler.errors.ExecutorError` carrying Slurm's own message. Commands
are looked up in ``bin_dir`` when given, else on ``PATH``.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from probes.model import Method, Sample
from scheduler.contracts import Executor, ExitStatus, Handle, LaunchSpec
from scheduler.domain.model import Job, JobState
from scheduler.errors import ExecutorError

__all__ = [
    "SlurmExecutor",
    "SlurmJobInfo",
    "build_batch_script",
    "format_slurm_duration",
    "map_slurm_state",
    "parse_exit_code",
    "parse_key_values",
    "slurm_job_name",
    "status_from_info",
    "time_limit_s",
]

#: Slurm job states during which the job still exists and may (again) run.
LIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "STOPPED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
    }
)

_STATE_MAP: dict[str, JobState] = {
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "PREEMPTED": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "PENDING": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "SUSPENDED": JobState.SUSPENDED,
    "STOPPED": JobState.SUSPENDED,
    "RUNNING": JobState.RUNNING,
    "CONFIGURING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
}

_FAILURE_REASONS = {
    "FAILED": "the job failed",
    "OUT_OF_MEMORY": "Slurm killed the job: out of memory",
    "NODE_FAIL": "the node running the job failed",
    "TIMEOUT": "the job hit its Slurm time limit",
    "BOOT_FAIL": "the node could not boot for the job",
    "DEADLINE": "the job missed its Slurm --deadline",
    "SPECIAL_EXIT": "the job ended in Slurm's SPECIAL_EXIT state",
}

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")
_KEY_RE = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:]*)=")
_ACCOUNTING_DISABLED = "accounting storage is disabled"
_UNKNOWN_JOB = "invalid job id"
_GONE_ON_CANCEL = ("already completing or completed", "invalid job id")
#: job ids in one ``squeue -j``/``sacct -j`` call: a poll of more runs takes several calls
IDS_PER_CALL = 500


# --------------------------------------------------------------------------- pure helpers


def map_slurm_state(raw: str) -> JobState | None:
    """Our state for a Slurm job state, ``None`` for a state we do not know.

    ``raw`` may carry decorations, as ``sacct`` prints them (``CANCELLED by 0``) or as
    ``squeue`` abbreviates them with a ``+`` (``CANCELLED+``); only the first word counts.
    PREEMPTED and REQUEUED map to ``pending``: the job must run again.
    """
    word = raw.strip().split(" ", 1)[0].rstrip("+").upper()
    return _STATE_MAP.get(word)


def slurm_state_word(raw: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``; the bare Slurm state name."""
    return raw.strip().split(" ", 1)[0].rstrip("+").upper()


def parse_exit_code(raw: str) -> int | None:
    """Slurm's ``ExitCode`` ``status:signal`` as a shell-style exit code.

    ``3:0`` -> ``3``; ``0:15`` (killed by SIGTERM) -> ``143`` (128 + signal, as the local
    executor reports it); empty or bad -> ``None``.
    """
    raw = raw.strip()
    if not raw:
        return None
    status, _, signal = raw.partition(":")
    try:
        code = int(status)
        sig = int(signal) if signal else 0
    except ValueError:
        return None
    return 128 + sig if sig else code


def time_limit_s(duration_s: int, *, factor: float = 1.5, min_margin_s: int = 600) -> int:
    """The ``--time`` limit for an estimated duration: the larger of ``duration x factor``
    and ``duration + min_margin_s``, rounded up to whole minutes (Slurm's granularity)."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, not {duration_s}")
    limit = max(duration_s * factor, duration_s + min_margin_s)
    return math.ceil(limit / 60.0) * 60


def format_slurm_duration(seconds: int) -> str:
    """Seconds as Slurm's ``D-HH:MM:SS`` (``5400`` -> ``0-01:30:00``)."""
    if seconds < 0:
        raise ValueError(f"seconds must not be negative, not {seconds}")
    days, rem = divmod(int(seconds), 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def format_slurm_time(value: datetime) -> str:
    """A UTC instant for Slurm (read with ``TZ=UTC``), rounded up to the whole second."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ExecutorError(f"planned start {value.isoformat()!r} has no timezone")
    value = value.astimezone(UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def parse_slurm_time(raw: str) -> datetime | None:
    """A time printed by a Slurm command run with ``TZ=UTC``; ``Unknown``/``None`` -> None."""
    raw = raw.strip()
    try:
        return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def slurm_job_name(job: Job) -> str:
    """``cs-<job id>-<name>``, with characters Slurm tools display badly replaced by ``_``;
    a sweep's trial is ``sweep-<sweep id>-<index>`` (one ``sbatch`` per trial, each at its
    own planned start: a Slurm array would share one ``--begin``)."""
    if job.sweep_id is not None and job.array_index is not None:
        return f"sweep-{job.sweep_id}-{job.array_index}"
    name = _NAME_UNSAFE_RE.sub("_", job.name).strip("_") or "job"
    ident = job.id if job.id is not None else "new"
    return f"cs-{ident}-{name}"[:120]


def slurm_path(path: str) -> str:
    """An output path for ``--output``/``--error``: absolute, ``%`` escaped as ``%%``."""
    return os.path.abspath(path).replace("%", "%%")


def build_batch_script(
    job: Job,
    env: Mapping[str, str],
    *,
    run_id: int | None = None,
    wrapper: Sequence[str] = (),
) -> str:
    """The batch script for one run: export ``env``, change to the job's directory, exec.

    Every value and argument is quoted with :func:`shlex.quote`; with ``job.shell`` the
    arguments, joined by spaces, are the text given to ``/bin/sh -c``. A ``wrapper`` (an
    argv prefix, ``{run_id}`` replaced) runs the command as ``<wrapper> -- <command>``.
    """
    if not job.argv:
        raise ExecutorError(f"job {job.id} has an empty command")
    for text in (*job.argv, job.cwd, *env.keys(), *env.values()):
        if "\0" in text:
            raise ExecutorError(f"job {job.id}: a NUL byte in {text!r} cannot be passed on")
    lines = [
        "#!/bin/sh",
        f"# carbonshift job {job.id} run {run_id}: generated, do not edit",
    ]
    for key in sorted(env):
        if not _ENV_NAME_RE.match(key):
            raise ExecutorError(
                f"job {job.id}: environment variable name {key!r} is not valid in a shell"
            )
        lines.append(f"export {key}={shlex.quote(env[key])}")
    cwd = os.path.abspath(job.cwd)
    lines.append(
        f"cd -- {shlex.quote(cwd)} || "
        f"{{ echo {shlex.quote(f'carbonshift: cannot change to directory {cwd}')} >&2; exit 127; }}"
    )
    prefix = ""
    if wrapper:
        ident = "" if run_id is None else str(run_id)
        prefix = shlex.join([part.replace("{run_id}", ident) for part in wrapper]) + " -- "
    if job.shell:
        lines.append(f"exec {prefix}/bin/sh -c {shlex.quote(' '.join(job.argv))}")
    else:
        lines.append(f"exec {prefix}" + shlex.join(job.argv))
    return "\n".join(lines) + "\n"


def parse_key_values(line: str) -> dict[str, str]:
    """``Key=Value Key2=Value with spaces`` (``scontrol show -o``, jobcomp/filetxt) -> dict.

    A value runs up to the next `` Key=``; keys may hold ``/`` and ``:`` as Slurm's do
    (``CPUs/Task``, ``AllocNode:Sid``).
    """
    matches = list(_KEY_RE.finditer(line))
    out: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        out[match.group(1)] = line[match.end() : end].strip()
    return out


@dataclass(frozen=True, slots=True)
class SlurmJobInfo:
    """What one Slurm source (``squeue``, ``scontrol``, ``sacct``, jobcomp) says of a job."""

    job_id: str
    state: str
    source: str
    exit_code: str = ""
    reason: str = ""
    start: datetime | None = None
    end: datetime | None = None
    energy_j: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """Whether Slurm may still run (or is running) the job."""
        return slurm_state_word(self.state) in LIVE_STATES


def status_from_info(info: SlurmJobInfo) -> ExitStatus | None:
    """How a run ended, from what Slurm says; ``None`` while the job is live.

    An unknown state counts as live (a newer Slurm's state must not end a job early).
    A finished PREEMPTED job ends as ``pending``: it must run again.
    """
    word = slurm_state_word(info.state)
    ours = map_slurm_state(word)
    if info.live or ours is None:
        return None
    code = parse_exit_code(info.exit_code)
    extra = {"slurm_state": info.state, "slurm_exit_code": info.exit_code, "source": info.source}
    if info.start is not None:
        extra["slurm_start"] = info.start.isoformat()
    if info.end is not None:
        extra["slurm_end"] = info.end.isoformat()
    detail = info.reason if info.reason and info.reason not in ("None", "(null)") else ""
    if ours is JobState.SUCCEEDED:
        return ExitStatus(exit_code=0 if code is None else code, state=ours.value, extra=extra)
    if ours is JobState.CANCELLED:
        reason = f"cancelled in Slurm ({info.state})"
        return ExitStatus(exit_code=code, state=ours.value, reason=reason, extra=extra)
    if ours is JobState.PENDING:
        reason = f"Slurm ended the job as {word}: it must run again"
        return ExitStatus(exit_code=code, state=ours.value, reason=reason, extra=extra)
    reason = _FAILURE_REASONS.get(word, f"Slurm job state {word}")
    signal = info.exit_code.partition(":")[2].strip()
    if signal and signal != "0":
        reason += f", killed by signal {signal}"
    elif code:
        reason += f" with exit code {code}"
    if detail:
        reason += f" ({detail})"
    return ExitStatus(exit_code=code, state=JobState.FAILED.value, reason=reason, extra=extra)


def _chunks(job_ids: Sequence[str]) -> list[Sequence[str]]:
    """``job_ids`` in slices of :data:`IDS_PER_CALL` (one Slurm command each)."""
    return [job_ids[i : i + IDS_PER_CALL] for i in range(0, len(job_ids), IDS_PER_CALL)]


def _ids_text(job_ids: Sequence[str]) -> str:
    """``123`` or ``123, 124 and 3 more`` for an error message."""
    shown = ", ".join(job_ids[:2])
    return shown + (f" and {len(job_ids) - 2} more" if len(job_ids) > 2 else "")


# --------------------------------------------------------------------------- executor


@dataclass(frozen=True, slots=True)
class _Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).replace("\n", "; ")
        return text or f"exit status {self.returncode}"


class SlurmExecutor(Executor):
    """Submits runs as Slurm batch jobs and follows them; see the module documentation.

    ``bin_dir``: where ``sbatch``, ``squeue``... live (else ``PATH``, or ``search_path``).
    ``partition``/``account``/``extra_sbatch_args``: added to every ``sbatch``.
    ``slurm_conf``: passed as ``SLURM_CONF`` to every command.
    ``time_factor``/``time_min_margin_s``: the ``--time`` limit (:func:`time_limit_s`).
    ``timeout_s``: limit for each Slurm command.
    ``use_sacct``: ``None`` asks ``scontrol show config`` whether accounting is on.
    ``jobcomp_path``: the jobcomp/filetxt log; ``None`` asks ``scontrol show config``.
    ``wrapper``: argv prefix measuring the job on the node when Slurm accounts no energy.
    ``poll_interval_s``: real seconds the agent waits between two :meth:`poll_many` calls.
    """

    name = "slurm"
    host_bound = False  # Slurm holds the run: any agent may follow it; scontrol suspends it

    def __init__(
        self,
        *,
        bin_dir: str | None = None,
        partition: str | None = None,
        account: str | None = None,
        extra_sbatch_args: Sequence[str] = (),
        slurm_conf: str | None = None,
        search_path: str = "/usr/local/bin:/usr/bin:/bin",
        time_factor: float = 1.5,
        time_min_margin_s: int = 600,
        timeout_s: float = 30.0,
        use_sacct: bool | None = None,
        jobcomp_path: str | None = None,
        wrapper: Sequence[str] = (),
        poll_interval_s: float = 15.0,
    ) -> None:
        self.bin_dir = bin_dir
        self.partition = partition
        self.account = account
        self.extra_sbatch_args = list(extra_sbatch_args)
        self.slurm_conf = slurm_conf
        self.search_path = search_path
        self.time_factor = time_factor
        self.time_min_margin_s = time_min_margin_s
        self.timeout_s = timeout_s
        self._use_sacct = use_sacct
        self._jobcomp_path = jobcomp_path
        self._config: dict[str, str] | None = None
        self.wrapper = list(wrapper)
        self.poll_interval_s = poll_interval_s

    # ---------------------------------------------------------------- commands

    def _command_env(self) -> dict[str, str]:
        path = self.search_path
        if self.bin_dir:
            path = f"{self.bin_dir}:{path}"
        env = {"PATH": path, "TZ": "UTC", "LC_ALL": "C"}
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env

    def _exe(self, name: str) -> str:
        return os.path.join(self.bin_dir, name) if self.bin_dir else name

    def _run(self, name: str, args: Sequence[str], *, stdin: str | None = None) -> _Result:
        argv = [self._exe(name), *args]
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                env=self._command_env(),
                check=False,
            )
        except FileNotFoundError as exc:
            raise ExecutorError(
                f"Slurm command {argv[0]!r} not found: install Slurm's client tools "
                "or set the Slurm bin directory"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise ExecutorError(
                f"{name} did not answer within {self.timeout_s:g}s: is slurmctld up?"
            ) from exc
        except OSError as exc:
            raise ExecutorError(f"cannot run {argv[0]!r}: {exc}") from exc
        return _Result(argv, proc.returncode, proc.stdout, proc.stderr)

    def config(self) -> dict[str, str]:
        """The running cluster's configuration (``scontrol show config``), read once."""
        if self._config is None:
            result = self._run("scontrol", ["show", "config"])
            if result.returncode != 0:
                raise ExecutorError(f"scontrol show config failed: {result.message}")
            conf: dict[str, str] = {}
            for line in result.stdout.splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    conf[key.strip()] = value.strip()
            self._config = conf
        return self._config

    def _sacct_enabled(self) -> bool:
        if self._use_sacct is None:
            storage = self.config().get("AccountingStorageType", "")
            self._use_sacct = bool(storage) and not storage.endswith("/none")
        return self._use_sacct

    def _jobcomp(self) -> str | None:
        if self._jobcomp_path is None:
            conf = self.config()
            if conf.get("JobCompType", "").endswith("/filetxt"):
                self._jobcomp_path = conf.get("JobCompLoc", "")
            else:
                self._jobcomp_path = ""
        return self._jobcomp_path or None

    # ---------------------------------------------------------------- launch

    def sbatch_args(self, spec: LaunchSpec) -> list[str]:
        """The ``sbatch`` options for ``spec`` (the script itself goes on stdin)."""
        job = spec.job
        if job.cpus < 1:
            raise ExecutorError(f"job {job.id} asks for {job.cpus} CPUs; it needs at least 1")
        limit = time_limit_s(
            job.duration_s, factor=self.time_factor, min_margin_s=self.time_min_margin_s
        )
        args = [
            "--parsable",
            f"--job-name={slurm_job_name(job)}",
            "--nodes=1",
            "--ntasks=1",
            f"--cpus-per-task={job.cpus}",
            f"--time={format_slurm_duration(limit)}",
            f"--output={slurm_path(spec.out_path)}",
            f"--error={slurm_path(spec.err_path)}",
            f"--chdir={os.path.abspath(job.cwd)}",
            "--export=NONE",
        ]
        if job.gpus > 0:
            args.append(f"--gres=gpu:{job.gpus}")
        if spec.begin_at is not None:
            args.append(f"--begin={format_slurm_time(spec.begin_at)}")
        if self.partition:
            args.append(f"--partition={self.partition}")
        if self.account:
            args.append(f"--account={self.account}")
        args.extend(self.extra_sbatch_args)
        return args

    def launch(self, spec: LaunchSpec) -> Handle:
        """Submit the run with ``sbatch``; a refusal raises ExecutorError with Slurm's words."""
        for path in (spec.out_path, spec.err_path):  # Slurm fails a job whose log dir is missing
            try:
                os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
            except OSError as exc:
                raise ExecutorError(f"cannot create the log directory of {path}: {exc}") from exc
        wrapper = self.wrapper if self.wrapper and not self.accounts_energy() else ()
        script = build_batch_script(spec.job, spec.env, run_id=spec.run_id, wrapper=wrapper)
        result = self._run("sbatch", self.sbatch_args(spec), stdin=script)
        if result.returncode != 0:
            raise ExecutorError(f"sbatch refused job {spec.job.id}: {result.message}")
        first = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
        job_id, _, cluster = first.partition(";")
        if not job_id.isdigit():
            raise ExecutorError(
                f"sbatch accepted job {spec.job.id} but printed no job id: {result.message}"
            )
        return Handle(handle=job_id, host=cluster)

    # ---------------------------------------------------------------- following

    @staticmethod
    def _job_id(handle: Handle) -> str:
        job_id = handle.handle.strip()
        if not job_id.isdigit():
            raise ExecutorError(f"{handle.handle!r} is not a Slurm job id")
        return job_id

    def _squeue(self, job_ids: Sequence[str]) -> dict[str, SlurmJobInfo]:
        """What ``squeue`` says of each of ``job_ids`` it still knows: one call for all."""
        out: dict[str, SlurmJobInfo] = {}
        for chunk in _chunks(job_ids):
            result = self._run(
                "squeue", ["-h", "-j", ",".join(chunk), "--states=all", "-o", "%A|%T|%r"]
            )
            if result.returncode != 0:
                if _UNKNOWN_JOB in result.message.lower():  # a single id Slurm forgot
                    continue
                raise ExecutorError(
                    f"squeue failed for Slurm job {_ids_text(chunk)}: {result.message}"
                )
            wanted = set(chunk)
            for line in result.stdout.splitlines():
                job_id, _, rest = line.partition("|")
                state, _, reason = rest.partition("|")
                if job_id.strip() in wanted:
                    out[job_id.strip()] = SlurmJobInfo(
                        job_id.strip(), state.strip(), "squeue", reason=reason.strip()
                    )
        return out

    def _scontrol(self, job_id: str) -> SlurmJobInfo | None:
        result = self._run("scontrol", ["show", "job", "-o", job_id])
        if result.returncode != 0:
            if _UNKNOWN_JOB in result.message.lower():
                return None
            raise ExecutorError(f"scontrol show job {job_id} failed: {result.message}")
        for line in result.stdout.splitlines():
            fields = parse_key_values(line)
            if fields.get("JobId") == job_id:
                return SlurmJobInfo(
                    job_id,
                    fields.get("JobState", ""),
                    "scontrol",
                    exit_code=fields.get("ExitCode", ""),
                    reason=fields.get("Reason", ""),
                    start=parse_slurm_time(fields.get("StartTime", "")),
                    end=parse_slurm_time(fields.get("EndTime", "")),
                    extra={"node": fields.get("NodeList", "")},
                )
        return None

    def _sacct(self, job_ids: Sequence[str]) -> dict[str, SlurmJobInfo]:
        """What accounting says of each of ``job_ids``: one call for all (none without it)."""
        out: dict[str, SlurmJobInfo] = {}
        if not job_ids or not self._sacct_enabled():
            return out
        columns = "JobIDRaw,State,ExitCode,ConsumedEnergyRaw,Start,End,NodeList"
        for chunk in _chunks(job_ids):
            result = self._run("sacct", ["-n", "-P", "-X", "-j", ",".join(chunk), "-o", columns])
            if result.returncode != 0:
                if _ACCOUNTING_DISABLED in result.message.lower():
                    self._use_sacct = False
                    return out
                raise ExecutorError(
                    f"sacct failed for Slurm job {_ids_text(chunk)}: {result.message}"
                )
            wanted = set(chunk)
            for line in result.stdout.splitlines():  # the last record of a job wins
                parts = (line.split("|") + [""] * 7)[:7]
                job_id, state, exit_code, energy, start, end, node = parts
                if job_id.strip() not in wanted:
                    continue
                try:
                    energy_j: float | None = float(energy) if energy.strip() else None
                except ValueError:
                    energy_j = None
                out[job_id.strip()] = SlurmJobInfo(
                    job_id.strip(),
                    state,
                    "sacct",
                    exit_code=exit_code,
                    start=parse_slurm_time(start),
                    end=parse_slurm_time(end),
                    energy_j=energy_j,
                    extra={"node": node},
                )
        return out

    def _jobcomp_lookup(self, job_ids: Sequence[str]) -> dict[str, SlurmJobInfo]:
        """What the job completion log says of each of ``job_ids``: the file read once."""
        path = self._jobcomp() if job_ids else None
        if not path:
            return {}
        wanted = set(job_ids)
        found: dict[str, dict[str, str]] = {}
        try:
            with open(path, encoding="utf-8", errors="replace") as log:
                for line in log:
                    if not line.startswith("JobId="):
                        continue
                    job_id = line[len("JobId=") :].split(" ", 1)[0]
                    if job_id in wanted:
                        found[job_id] = parse_key_values(line)  # the last record wins (requeues)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ExecutorError(f"cannot read Slurm's job completion log {path}: {exc}") from exc
        return {
            job_id: SlurmJobInfo(
                job_id,
                fields.get("JobState", ""),
                "jobcomp",
                exit_code=fields.get("ExitCode", ""),
                start=parse_slurm_time(fields.get("StartTime", "")),
                end=parse_slurm_time(fields.get("EndTime", "")),
                extra={"node": fields.get("NodeList", "")},
            )
            for job_id, fields in found.items()
        }

    def infos(self, job_ids: Sequence[str]) -> dict[str, SlurmJobInfo | None]:
        """For each job, everything the first source that knows it says; ``None`` if none does.

        Live jobs are answered by one ``squeue`` call for all; finished ones by
        ``scontrol`` (one call each), then one ``sacct`` call, then the jobcomp log.
        """
        ids = list(dict.fromkeys(job_ids))
        queued = self._squeue(ids)
        out: dict[str, SlurmJobInfo | None] = {
            job_id: queued[job_id] for job_id in ids if job_id in queued and queued[job_id].live
        }
        for job_id in ids:
            if job_id not in out and (found := self._scontrol(job_id)) is not None:
                out[job_id] = found
        for lookup in (self._sacct, self._jobcomp_lookup):
            out.update(lookup([job_id for job_id in ids if job_id not in out]))
        return {job_id: out.get(job_id, queued.get(job_id)) for job_id in ids}

    def info(self, handle: Handle) -> SlurmJobInfo | None:
        """:meth:`infos` of one job."""
        job_id = self._job_id(handle)
        return self.infos([job_id])[job_id]

    def state(self, handle: Handle) -> JobState:
        """Our state for the job now, ``lost`` if Slurm no longer knows it."""
        found = self.info(handle)
        if found is None:
            return JobState.LOST
        return map_slurm_state(found.state) or JobState.RUNNING

    def poll_many(self, handles: Sequence[Handle]) -> dict[Handle, ExitStatus | None]:
        """:meth:`poll` of every run, with one ``squeue`` call for all of them."""
        ids = {handle: self._job_id(handle) for handle in handles}
        found = self.infos(list(ids.values()))
        return {handle: self._status(handle, found[job_id]) for handle, job_id in ids.items()}

    def poll(self, handle: Handle) -> ExitStatus | None:
        """``None`` while Slurm may still run the job; else how it ended, or ``lost``."""
        return self._status(handle, self.info(handle))

    def _status(self, handle: Handle, found: SlurmJobInfo | None) -> ExitStatus | None:
        if found is None:
            sources = ["squeue", "scontrol"]
            if self._use_sacct:
                sources.append("sacct")
            if self._jobcomp_path:
                sources.append("the jobcomp log")
            return ExitStatus(
                exit_code=None,
                state=JobState.LOST.value,
                reason=f"Slurm job {handle.handle} vanished: unknown to {', '.join(sources)}",
            )
        if found.live and found.source not in ("squeue", "scontrol"):
            # Accounting says live but the controller has forgotten the job.
            return ExitStatus(
                exit_code=None,
                state=JobState.LOST.value,
                reason=(
                    f"Slurm job {handle.handle} is {found.state} in {found.source} "
                    "but unknown to the controller"
                ),
                extra={"slurm_state": found.state, "source": found.source},
            )
        return status_from_info(found)

    def alive(self, handle: Handle) -> bool:
        """Whether the job is still pending, running or suspended in Slurm."""
        job_id = self._job_id(handle)
        found = self._squeue([job_id]).get(job_id)
        return found is not None and found.live

    # ---------------------------------------------------------------- control

    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        """``scancel`` the job; one already finished or unknown is left alone.

        Slurm sends SIGTERM, then SIGKILL after the cluster's ``KillWait``; ``grace_s``
        is not used (Slurm has no per-job grace period).
        """
        job_id = self._job_id(handle)
        result = self._run("scancel", [job_id])
        if result.returncode != 0 or result.stderr.strip():
            text = result.message.lower()
            if any(gone in text for gone in _GONE_ON_CANCEL):
                return
            if result.returncode != 0:
                raise ExecutorError(f"scancel {job_id} failed: {result.message}")

    def _scontrol_action(self, action: str, job_id: str) -> None:
        result = self._run("scontrol", [action, job_id])
        if result.returncode != 0:
            hint = ""
            if "access" in result.message.lower() or "permission" in result.message.lower():
                hint = " (only root, SlurmUser and Slurm operators may do this)"
            raise ExecutorError(f"scontrol {action} {job_id} failed: {result.message}{hint}")

    def suspend(self, handle: Handle) -> None:
        """``scontrol suspend``: needs root, SlurmUser or a Slurm operator."""
        self._scontrol_action("suspend", self._job_id(handle))

    def resume(self, handle: Handle) -> None:
        """``scontrol resume``: needs root, SlurmUser or a Slurm operator."""
        self._scontrol_action("resume", self._job_id(handle))

    def reschedule(self, handle: Handle, begin_at: datetime) -> None:
        """Move a pending job's planned start (``scontrol update StartTime``)."""
        job_id = self._job_id(handle)
        result = self._run(
            "scontrol", ["update", f"JobId={job_id}", f"StartTime={format_slurm_time(begin_at)}"]
        )
        if result.returncode != 0:
            raise ExecutorError(f"cannot move Slurm job {job_id}'s start: {result.message}")

    # ---------------------------------------------------------------- energy

    def accounts_energy(self) -> bool:
        """Whether Slurm measures jobs' energy and ``sacct`` can say how much."""
        energy_type = self.config().get("AcctGatherEnergyType", "")
        return bool(energy_type) and not energy_type.endswith("/none") and self._sacct_enabled()

    def energy(self, handle: Handle) -> list[Sample] | None:
        """``ConsumedEnergyRaw`` from ``sacct`` as one sample, when Slurm accounts energy."""
        energy_type = self.config().get("AcctGatherEnergyType", "")
        if not energy_type or energy_type.endswith("/none"):
            return None
        job_id = self._job_id(handle)
        found = self._sacct([job_id]).get(job_id)
        if found is None or found.energy_j is None or found.start is None or found.end is None:
            return None
        if found.energy_j <= 0:
            return None
        node = found.extra.get("node", "")
        return [
            Sample(
                start=found.start,
                end=found.end,
                device=f"node:{node}" if node else "node",
                energy_j=found.energy_j,
                method=Method.SLURM_ACCOUNTING,
                note=f"sacct ConsumedEnergyRaw ({energy_type})",
            )
        ]
