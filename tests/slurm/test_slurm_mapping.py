"""Pure tests of the Slurm executor: state mapping, batch scripts, sbatch options, parsing.

No Slurm needed. The commands are replaced by small fake scripts in a bin directory (the
executor's ``bin_dir``), so the error paths run the real subprocess code.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduler.errors import ExecutorError
from scheduler.executors.base import Handle, LaunchSpec
from scheduler.executors.slurm import (
    SlurmExecutor,
    SlurmJobInfo,
    build_batch_script,
    format_slurm_duration,
    format_slurm_time,
    map_slurm_state,
    parse_exit_code,
    parse_key_values,
    parse_slurm_time,
    slurm_job_name,
    slurm_path,
    status_from_info,
    time_limit_s,
)
from scheduler.model import Job, JobState

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def make_job(argv: list[str], **kw: object) -> Job:
    fields: dict[str, object] = dict(
        name="train",
        argv=argv,
        duration_s=3600,
        zone="GB",
        submitted_at=T0,
        earliest_start=T0,
        latest_start=T0 + timedelta(hours=6),
        deadline_at=None,
        id=42,
    )
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------ state mapping


@pytest.mark.parametrize(
    ("raw", "ours"),
    [
        ("COMPLETED", JobState.SUCCEEDED),
        ("FAILED", JobState.FAILED),
        ("OUT_OF_MEMORY", JobState.FAILED),
        ("NODE_FAIL", JobState.FAILED),
        ("TIMEOUT", JobState.FAILED),
        ("CANCELLED", JobState.CANCELLED),
        ("CANCELLED by 0", JobState.CANCELLED),
        ("CANCELLED+", JobState.CANCELLED),
        ("PREEMPTED", JobState.PENDING),
        ("REQUEUED", JobState.PENDING),
        ("PENDING", JobState.PENDING),
        ("SUSPENDED", JobState.SUSPENDED),
        ("RUNNING", JobState.RUNNING),
        ("COMPLETING", JobState.RUNNING),
        ("running", JobState.RUNNING),
        ("SOMETHING_NEW", None),
        ("", None),
    ],
)
def test_map_slurm_state(raw: str, ours: JobState | None) -> None:
    assert map_slurm_state(raw) == ours


@pytest.mark.parametrize(
    ("raw", "code"),
    [("0:0", 0), ("3:0", 3), ("0:15", 143), ("0:9", 137), ("", None), ("x:y", None), ("7", 7)],
)
def test_parse_exit_code(raw: str, code: int | None) -> None:
    assert parse_exit_code(raw) == code


def info(
    state: str, exit_code: str = "0:0", reason: str = "", source: str = "scontrol"
) -> SlurmJobInfo:
    return SlurmJobInfo("7", state, source, exit_code=exit_code, reason=reason)


@pytest.mark.parametrize(
    "state", ["PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "REQUEUED", "NEW_THING"]
)
def test_live_or_unknown_states_have_no_exit_status(state: str) -> None:
    assert status_from_info(info(state)) is None


def test_completed_is_succeeded_with_code_zero() -> None:
    status = status_from_info(info("COMPLETED"))
    assert status is not None
    assert (status.state, status.exit_code, status.reason) == ("succeeded", 0, "")
    assert status.extra["slurm_state"] == "COMPLETED"


def test_failed_keeps_exit_code_and_says_why() -> None:
    status = status_from_info(info("FAILED", "3:0", reason="NonZeroExitCode"))
    assert status is not None
    assert (status.state, status.exit_code) == ("failed", 3)
    assert "exit code 3" in status.reason and "NonZeroExitCode" in status.reason


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("TIMEOUT", "time limit"),
        ("OUT_OF_MEMORY", "out of memory"),
        ("NODE_FAIL", "node"),
    ],
)
def test_failure_states_carry_a_reason(state: str, words: str) -> None:
    status = status_from_info(info(state, "0:9"))
    assert status is not None
    assert status.state == "failed"
    assert words in status.reason and "signal 9" in status.reason
    assert status.exit_code == 137


def test_cancelled_and_preempted() -> None:
    cancelled = status_from_info(info("CANCELLED by 0", "0:15"))
    assert cancelled is not None and cancelled.state == "cancelled"
    preempted = status_from_info(info("PREEMPTED", "0:15"))
    assert preempted is not None and preempted.state == "pending"
    assert "run again" in preempted.reason


# ------------------------------------------------------------------ small formats


def test_time_limit_has_a_margin_and_whole_minutes() -> None:
    assert time_limit_s(3600) == 5400  # x1.5 beats +10 min
    assert time_limit_s(60) == 660  # +10 min beats x1.5
    assert time_limit_s(61, factor=1.0, min_margin_s=0) == 120  # rounded up to minutes
    with pytest.raises(ValueError):
        time_limit_s(0)


def test_format_slurm_duration() -> None:
    assert format_slurm_duration(5400) == "0-01:30:00"
    assert format_slurm_duration(2 * 86400 + 61) == "2-00:01:01"


def test_format_slurm_time_is_utc_and_never_early() -> None:
    paris = datetime(2026, 5, 1, 14, 0, 0, 1, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert format_slurm_time(paris) == "2026-05-01T14:00:01"
    assert format_slurm_time(datetime(2026, 5, 1, 14, 0, tzinfo=UTC)) == "2026-05-01T14:00:00"
    with pytest.raises(ExecutorError, match="no timezone"):
        format_slurm_time(datetime(2026, 5, 1, 14, 0))


def test_parse_slurm_time() -> None:
    assert parse_slurm_time("2026-11-22T07:50:38") == datetime(2026, 11, 22, 7, 50, 38, tzinfo=UTC)
    assert parse_slurm_time("Unknown") is None
    assert parse_slurm_time("None") is None


def test_job_name_is_safe() -> None:
    assert slurm_job_name(make_job(["x"], name="my run; rm -rf /")) == "cs-42-my_run_rm_-rf"
    assert slurm_job_name(make_job(["x"], id=None, name="")) == "cs-new-job"
    assert slurm_job_name(make_job(["x"], name="lr[4]", sweep_id=3, array_index=4)) == "sweep-3-4"


def test_a_sweeps_trial_is_named_after_its_sweep_and_index() -> None:
    trial = make_job(["x"], name="lr-search; rm", sweep_id=3, array_index=17, sweep_limit=4)
    assert slurm_job_name(trial) == "sweep-3-17"
    assert slurm_job_name(make_job(["x"], sweep_id=3, array_index=0)) == "sweep-3-0"


def test_output_path_escapes_percent(tmp_path: Path) -> None:
    assert slurm_path(str(tmp_path / "a%jb.out")) == str(tmp_path / "a%%jb.out")
    assert os.path.isabs(slurm_path("rel.out"))


def test_parse_key_values_real_scontrol_line() -> None:
    line = (
        "JobId=1 JobName=wrap UserId=root(0) JobState=FAILED Reason=NonZeroExitCode "
        "ExitCode=3:0 AllocNode:Sid=localhost:6590 CPUs/Task=1 Command=/bin/echo a b "
        "WorkDir=/tmp StdOut=/tmp/t1.out Power="
    )
    kv = parse_key_values(line)
    assert kv["JobId"] == "1" and kv["JobState"] == "FAILED" and kv["ExitCode"] == "3:0"
    assert kv["AllocNode:Sid"] == "localhost:6590" and kv["CPUs/Task"] == "1"
    assert kv["Command"] == "/bin/echo a b" and kv["Power"] == ""


# ------------------------------------------------------------------ batch script


def run_script(script: str, tmp_path: Path) -> None:
    path = tmp_path / "job.sh"
    path.write_text(script)
    subprocess.run(["/bin/sh", str(path)], check=True, env={"PATH": os.defpath}, timeout=30)


NASTY = [
    "a b",
    "it's",
    '"quoted"',
    "$HOME",
    "`id`",
    "$(id)",
    "; touch pwned",
    "*",
    "",
    "new\nline",
    "\\",
]


def test_script_passes_arguments_and_env_verbatim(tmp_path: Path) -> None:
    code = (
        "import json, os, sys; json.dump({'argv': sys.argv[1:], 'env': os.environ.get('CS_X'),"
        " 'cwd': os.getcwd()}, open('seen.json', 'w'))"
    )
    job = make_job([sys.executable, "-c", code, *NASTY], cwd=str(tmp_path))
    script = build_batch_script(job, {"CS_X": "$(id) 'x' `y` \"z\""}, run_id=3)
    assert script.startswith("#!/bin/sh\n")
    run_script(script, tmp_path)
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {"argv": NASTY, "env": "$(id) 'x' `y` \"z\"", "cwd": str(tmp_path)}
    assert not (tmp_path / "pwned").exists()


def test_shell_job_runs_through_sh(tmp_path: Path) -> None:
    job = make_job(["echo", "$((1+2))", ">", "three.txt"], cwd=str(tmp_path), shell=True)
    run_script(build_batch_script(job, {}), tmp_path)
    assert (tmp_path / "three.txt").read_text() == "3\n"


def test_script_exits_127_when_cwd_is_missing(tmp_path: Path) -> None:
    job = make_job(["true"], cwd=str(tmp_path / "absent"))
    path = tmp_path / "job.sh"
    path.write_text(build_batch_script(job, {}))
    proc = subprocess.run(["/bin/sh", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 127
    assert "cannot change to directory" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "env", "match"),
    [
        ([], {}, "empty command"),
        (["true"], {"BAD-NAME": "1"}, "not valid in a shell"),
        (["tr\0ue"], {}, "NUL"),
    ],
)
def test_script_refuses_what_cannot_be_passed(
    argv: list[str], env: dict[str, str], match: str
) -> None:
    with pytest.raises(ExecutorError, match=match):
        build_batch_script(make_job(argv), env)


# ------------------------------------------------------------------ sbatch options


def spec_for(job: Job, tmp_path: Path, begin_at: datetime | None = None) -> LaunchSpec:
    return LaunchSpec(
        job=job,
        run_id=1,
        out_path=str(tmp_path / "o.out"),
        err_path=str(tmp_path / "o.err"),
        env={"PATH": "/usr/bin:/bin"},
        begin_at=begin_at,
    )


def test_sbatch_args(tmp_path: Path) -> None:
    job = make_job(["true"], gpus=2, cpus=4, cwd=str(tmp_path), duration_s=3600)
    ex = SlurmExecutor(partition="gpu", account="ml", extra_sbatch_args=["--qos=low"])
    args = ex.sbatch_args(spec_for(job, tmp_path, begin_at=T0 + timedelta(microseconds=5)))
    assert args[0] == "--parsable"
    assert "--job-name=cs-42-train" in args
    assert "--gres=gpu:2" in args and "--cpus-per-task=4" in args
    assert "--time=0-01:30:00" in args
    assert "--begin=2026-05-01T12:00:01" in args
    assert "--export=NONE" in args and f"--chdir={tmp_path}" in args
    assert f"--output={tmp_path}/o.out" in args and f"--error={tmp_path}/o.err" in args
    assert args[-3:] == ["--partition=gpu", "--account=ml", "--qos=low"]


def test_sbatch_args_without_gpus_or_begin(tmp_path: Path) -> None:
    args = SlurmExecutor().sbatch_args(spec_for(make_job(["true"], cwd=str(tmp_path)), tmp_path))
    assert not any(a.startswith(("--gres", "--begin", "--partition")) for a in args)


# ------------------------------------------------------------------ fake Slurm commands


def fake_bin(tmp_path: Path, **scripts: str) -> str:
    """A bin dir holding shell scripts named like Slurm's commands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(bin_dir)


NO_ACCOUNTING = (
    "echo 'AccountingStorageType   = accounting_storage/none'; "
    "echo 'AcctGatherEnergyType    = acct_gather_energy/none'; "
    "echo 'JobCompType             = jobcomp/none'"
)


def test_sbatch_refusal_carries_slurms_message(tmp_path: Path) -> None:
    bin_dir = fake_bin(
        tmp_path,
        sbatch="cat >/dev/null; echo 'sbatch: error: Batch job submission failed: "
        "Invalid partition name specified' >&2; exit 1",
    )
    job = make_job(["true"], cwd=str(tmp_path))
    with pytest.raises(ExecutorError, match=r"sbatch refused job 42: .*Invalid partition name"):
        SlurmExecutor(bin_dir=bin_dir).launch(spec_for(job, tmp_path))


def test_sbatch_gets_the_script_and_a_clean_environment(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    bin_dir = fake_bin(
        tmp_path, sbatch=f"cat > {seen}.script; env > {seen}.env; echo '1234;clusterA'"
    )
    job = make_job(["echo", "hi there"], cwd=str(tmp_path))
    handle = SlurmExecutor(bin_dir=bin_dir, slurm_conf="/etc/x.conf").launch(
        spec_for(job, tmp_path)
    )
    assert handle == Handle(handle="1234", host="clusterA")
    assert Path(f"{seen}.script").read_text().endswith("exec echo 'hi there'\n")
    env = dict(
        line.split("=", 1) for line in Path(f"{seen}.env").read_text().splitlines() if "=" in line
    )
    assert env["TZ"] == "UTC" and env["SLURM_CONF"] == "/etc/x.conf"
    assert env["PATH"].startswith(bin_dir)
    assert not {k for k in env if k.startswith(("SBATCH_", "SLURM_JOB"))}


def test_sbatch_without_job_id_is_an_error(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, sbatch="cat >/dev/null; echo 'hello'")
    with pytest.raises(ExecutorError, match="no job id"):
        SlurmExecutor(bin_dir=bin_dir).launch(spec_for(make_job(["true"]), tmp_path))


def test_missing_command_and_timeout_are_executor_errors(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError, match="not found"):
        SlurmExecutor(bin_dir=str(tmp_path / "nowhere")).alive(Handle("1"))
    bin_dir = fake_bin(tmp_path, squeue="sleep 5")
    with pytest.raises(ExecutorError, match="did not answer"):
        SlurmExecutor(bin_dir=bin_dir, timeout_s=0.3).alive(Handle("1"))


def test_unreachable_controller_is_an_error_not_lost(tmp_path: Path) -> None:
    bin_dir = fake_bin(
        tmp_path,
        squeue="echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1",
    )
    with pytest.raises(ExecutorError, match="Unable to contact"):
        SlurmExecutor(bin_dir=bin_dir).poll(Handle("5"))


def test_bad_handle_is_refused() -> None:
    with pytest.raises(ExecutorError, match="not a Slurm job id"):
        SlurmExecutor().poll(Handle("12; rm -rf /"))


def test_live_job_is_answered_by_squeue(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, squeue="echo '5|PENDING|BeginTime'")
    ex = SlurmExecutor(bin_dir=bin_dir)
    assert ex.poll(Handle("5")) is None
    assert ex.alive(Handle("5"))
    assert ex.state(Handle("5")) == JobState.PENDING


def test_finished_job_found_in_the_jobcomp_log(tmp_path: Path) -> None:
    log = tmp_path / "jobcomp.log"
    log.write_text(
        "JobId=5 UserId=root(0) Name=cs-1-a JobState=COMPLETED StartTime=2026-11-22T07:49:59 "
        "EndTime=2026-11-22T07:50:00 NodeList=vm ExitCode=0:0\n"
        "JobId=55 UserId=root(0) Name=cs-2-b JobState=FAILED ExitCode=1:0\n"
        "JobId=5 UserId=root(0) Name=cs-1-a JobState=FAILED StartTime=2026-11-22T08:00:00 "
        "EndTime=2026-11-22T08:00:05 NodeList=vm DerivedExitCode=0:0 ExitCode=2:0\n"
    )
    gone = "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"
    bin_dir = fake_bin(
        tmp_path,
        squeue=gone,
        scontrol=f'if [ "$1" = show ] && [ "$2" = config ]; then '
        f"echo 'AccountingStorageType = accounting_storage/none'; "
        f"echo 'JobCompType = jobcomp/filetxt'; echo 'JobCompLoc = {log}'; exit 0; fi; {gone}",
    )
    status = SlurmExecutor(bin_dir=bin_dir).poll(Handle("5"))
    assert status is not None
    assert (status.state, status.exit_code) == ("failed", 2)  # the last record wins
    assert status.extra["source"] == "jobcomp"
    assert status.extra["slurm_start"] == "2026-11-22T08:00:00+00:00"


def test_job_unknown_everywhere_is_lost(tmp_path: Path) -> None:
    gone = "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"
    bin_dir = fake_bin(
        tmp_path,
        squeue=gone,
        scontrol=f'if [ "$2" = config ]; then {NO_ACCOUNTING}; exit 0; fi; {gone}',
    )
    ex = SlurmExecutor(bin_dir=bin_dir)
    status = ex.poll(Handle("77"))
    assert status is not None and status.state == "lost"
    assert "vanished" in status.reason and "77" in status.reason
    assert ex.state(Handle("77")) == JobState.LOST
    assert ex.energy(Handle("77")) is None


def test_sacct_disabled_answer_is_remembered(tmp_path: Path) -> None:
    gone = "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"
    calls = tmp_path / "sacct.calls"
    bin_dir = fake_bin(
        tmp_path,
        squeue=gone,
        scontrol=gone,
        sacct=f"echo x >> {calls}; echo 'Slurm accounting storage is disabled' >&2; exit 1",
    )
    ex = SlurmExecutor(bin_dir=bin_dir, use_sacct=True, jobcomp_path="")
    for _ in range(2):
        status = ex.poll(Handle("9"))
        assert status is not None and status.state == "lost"
    assert calls.read_text().count("x") == 1


def test_sacct_energy_is_one_sample(tmp_path: Path) -> None:
    bin_dir = fake_bin(
        tmp_path,
        scontrol="echo 'AccountingStorageType = accounting_storage/slurmdbd'; "
        "echo 'AcctGatherEnergyType = acct_gather_energy/rapl'",
        sacct="echo '3|COMPLETED|0:0|36000|2026-11-22T08:00:00|2026-11-22T08:01:00|node1'",
    )
    samples = SlurmExecutor(bin_dir=bin_dir).energy(Handle("3"))
    assert samples is not None and len(samples) == 1
    (sample,) = samples
    assert sample.energy_j == 36000 and sample.device == "node:node1"
    assert sample.method.value == "slurm_accounting" and sample.power_w == pytest.approx(600)


def test_cancel_of_a_finished_job_is_quiet(tmp_path: Path) -> None:
    bin_dir = fake_bin(
        tmp_path,
        scancel="echo 'scancel: error: Kill job error on job id 4: "
        "Job/step already completing or completed' >&2; exit 1",
    )
    SlurmExecutor(bin_dir=bin_dir).cancel(Handle("4"))


def test_suspend_permission_error_says_who_may(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, scontrol="echo 'Access/permission denied for job 4' >&2; exit 1")
    with pytest.raises(ExecutorError, match="operators"):
        SlurmExecutor(bin_dir=bin_dir).suspend(Handle("4"))


def test_poll_many_asks_squeue_once_for_all_and_the_controller_for_the_finished(
    tmp_path: Path,
) -> None:
    calls = tmp_path / "calls"
    bin_dir = fake_bin(
        tmp_path,
        squeue=f'echo "squeue $*" >> {calls}; echo "5|RUNNING|None"; echo "6|PENDING|BeginTime"; '
        'echo "7|COMPLETED|None"',
        scontrol=f'echo "scontrol $*" >> {calls}; if [ "$2" = config ]; then {NO_ACCOUNTING}; '
        'exit 0; fi; echo "JobId=7 JobName=cs-1-a JobState=COMPLETED Reason=None ExitCode=0:0"',
    )
    handles = [Handle("5"), Handle("6"), Handle("7"), Handle("8")]
    statuses = SlurmExecutor(bin_dir=bin_dir).poll_many(handles)
    assert statuses[Handle("5")] is None and statuses[Handle("6")] is None
    done, gone = statuses[Handle("7")], statuses[Handle("8")]
    assert done is not None and (done.state, done.exit_code) == ("succeeded", 0)
    assert done.extra["source"] == "scontrol"
    assert gone is not None and gone.state == "lost" and "8 vanished" in gone.reason
    lines = calls.read_text().splitlines()
    assert [ln for ln in lines if ln.startswith("squeue")] == [
        "squeue -h -j 5,6,7,8 --states=all -o %A|%T|%r"
    ]
    # the controller is asked only of the jobs that left the live states
    assert [ln for ln in lines if ln.startswith("scontrol show job")] == [
        "scontrol show job -o 7", "scontrol show job -o 8"
    ]


def test_sacct_is_one_call_for_the_jobs_the_controller_forgot(tmp_path: Path) -> None:
    gone = "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"
    calls = tmp_path / "sacct.calls"
    bin_dir = fake_bin(
        tmp_path,
        squeue="true",
        scontrol=gone,
        sacct=f'echo "$*" >> {calls}; echo "11|FAILED|3:0||||n1"; echo "12|COMPLETED|0:0||||n1"',
    )
    ex = SlurmExecutor(bin_dir=bin_dir, use_sacct=True, jobcomp_path="")
    statuses = ex.poll_many([Handle("11"), Handle("12")])
    failed, ok = statuses[Handle("11")], statuses[Handle("12")]
    assert failed is not None and (failed.state, failed.exit_code) == ("failed", 3)
    assert ok is not None and ok.state == "succeeded" and ok.extra["source"] == "sacct"
    (call,) = calls.read_text().splitlines()
    assert " -j 11,12 " in call
