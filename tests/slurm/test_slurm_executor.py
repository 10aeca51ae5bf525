"""The Slurm executor against a real Slurm: jobs are submitted, run, held, cancelled.

Needs a running single-node cluster (``.ci/slurm-setup.sh`` starts one). Without it these
tests are skipped on a workstation and FAIL in CI (``CI`` set): CI must never pass by
skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.errors import ExecutorError
from scheduler.executors.base import ExitStatus, Handle, LaunchSpec
from scheduler.executors.slurm import SlurmExecutor
from scheduler.model import Job, JobState

pytestmark = pytest.mark.slurm

#: Slurm starts an eligible job at its next scheduling pass: allow for it.
SCHEDULER_LAG_S = 120
#: How late after its planned start a held job may start (the CI slurm.conf schedules
#: every 5-10 s; Slurm's defaults would be 30-60 s).
START_LAG_BOUND_S = 60


def _slurm_problem() -> str | None:
    """Why the tests cannot run here, or ``None`` if a node is up and answering."""
    if shutil.which("sinfo") is None:
        return "sinfo not found: Slurm is not installed (run .ci/slurm-setup.sh)"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s: slurmctld is not responding"
    if proc.returncode != 0:
        return f"sinfo failed: {proc.stderr.strip() or proc.returncode}"
    states = proc.stdout.split()
    # busy (alloc), finishing a job (comp) or idle with a job planned on it later (plnd:
    # another test's held job with a future --begin) is up too
    if not any(s in ("idle", "mix", "alloc", "comp", "plnd") for s in states):
        return f"no usable Slurm node (node states: {states or 'none'})"
    return None


@pytest.fixture(scope="module")
def slurm() -> SlurmExecutor:
    problem = _slurm_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"Slurm is required in CI and is not usable: {problem}", pytrace=False)
        pytest.skip(f"no usable Slurm here: {problem}")
    return SlurmExecutor(timeout_s=30)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    # slurmd runs jobs as the submitting user on this host, so tmp_path is reachable.
    return tmp_path


_next_id = iter(range(9000, 10000))


def make_spec(
    workdir: Path,
    argv: list[str],
    *,
    begin_at: datetime | None = None,
    env: dict[str, str] | None = None,
    **kw: object,
) -> LaunchSpec:
    now = datetime.now(UTC)
    fields: dict[str, object] = dict(
        name="slurmtest",
        argv=argv,
        duration_s=60,
        zone="GB",
        submitted_at=now,
        earliest_start=now,
        latest_start=now + timedelta(hours=1),
        deadline_at=None,
        id=next(_next_id),
        cwd=str(workdir),
    )
    fields.update(kw)
    job = Job(**fields)  # type: ignore[arg-type]
    return LaunchSpec(
        job=job,
        run_id=1,
        out_path=str(workdir / "job.out"),
        err_path=str(workdir / "job.err"),
        env=env if env is not None else {"PATH": "/usr/local/bin:/usr/bin:/bin"},
        begin_at=begin_at,
    )


def wait_end(ex: SlurmExecutor, handle: Handle, timeout_s: float = SCHEDULER_LAG_S) -> ExitStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = ex.poll(handle)
        if status is not None:
            return status
        time.sleep(0.5)
    raise AssertionError(f"Slurm job {handle.handle} did not end within {timeout_s}s")


def wait_state(ex: SlurmExecutor, handle: Handle, want: JobState, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = ex.state(handle)
        if seen == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"Slurm job {handle.handle} is {seen}, not {want}, after {timeout_s}s")


@pytest.fixture
def cleanup(slurm: SlurmExecutor) -> Iterator[list[Handle]]:
    """Handles to scancel after the test, whatever happened."""
    handles: list[Handle] = []
    yield handles
    for handle in handles:
        try:
            slurm.cancel(handle)
        except ExecutorError:
            pass


def test_job_that_writes_a_file_succeeds(
    slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]
) -> None:
    spec = make_spec(workdir, ["/bin/sh", "-c", "echo made > result.txt; echo to-stdout"])
    handle = slurm.launch(spec)
    cleanup.append(handle)
    assert handle.handle.isdigit()
    status = wait_end(slurm, handle)
    assert (status.state, status.exit_code) == ("succeeded", 0), status
    assert (workdir / "result.txt").read_text() == "made\n"
    assert (workdir / "job.out").read_text() == "to-stdout\n"
    assert status.extra["source"] in ("squeue", "scontrol")
    assert not slurm.alive(handle)
    assert slurm.energy(handle) is None  # no energy accounting on the CI cluster


def test_exit_3_fails_with_exit_code_3(
    slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]
) -> None:
    handle = slurm.launch(make_spec(workdir, ["/bin/sh", "-c", "echo oops >&2; exit 3"]))
    cleanup.append(handle)
    status = wait_end(slurm, handle)
    assert (status.state, status.exit_code) == ("failed", 3), status
    assert "exit code 3" in status.reason
    assert (workdir / "job.err").read_text() == "oops\n"


def test_job_does_not_start_before_its_planned_start(
    slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]
) -> None:
    begin = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    code = "import time; open('started', 'w').write(repr(time.time()))"
    handle = slurm.launch(make_spec(workdir, [sys.executable, "-c", code], begin_at=begin))
    cleanup.append(handle)
    # Held by Slurm until then: pending, alive, no exit status.
    assert slurm.state(handle) == JobState.PENDING
    assert slurm.alive(handle)
    assert slurm.poll(handle) is None
    status = wait_end(slurm, handle, timeout_s=20 + SCHEDULER_LAG_S)
    assert status.state == "succeeded", status
    started = float((workdir / "started").read_text())
    assert started >= begin.timestamp(), f"started {begin.timestamp() - started:.1f}s early"
    slurm_start = datetime.fromisoformat(status.extra["slurm_start"])
    assert slurm_start >= begin
    # ...and starts at its next scheduling pass, not much later.
    assert started - begin.timestamp() < START_LAG_BOUND_S


def test_reschedule_moves_the_planned_start(
    slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]
) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    handle = slurm.launch(make_spec(workdir, ["/bin/true"], begin_at=later))
    cleanup.append(handle)
    time.sleep(1)
    assert slurm.state(handle) == JobState.PENDING
    slurm.reschedule(handle, datetime.now(UTC) + timedelta(seconds=1))
    status = wait_end(slurm, handle)
    assert status.state == "succeeded", status


def test_each_trial_of_a_sweep_is_its_own_batch_job_named_sweep_id_index(
    slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]
) -> None:
    # two trials of sweep 7 planned an hour apart: two sbatch calls, each with its own
    # --begin (a Slurm array would share one), named as squeue users know arrays
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    begins = {0: base, 5: base + timedelta(hours=1)}
    seen = {}
    for index, begin in begins.items():
        spec = make_spec(workdir, ["/bin/true"], begin_at=begin, name="lr search",
                         sweep_id=7, array_index=index, sweep_limit=2)
        handle = slurm.launch(spec)
        cleanup.append(handle)
        out = subprocess.run(["scontrol", "show", "job", "-o", handle.handle], capture_output=True,
                             text=True, timeout=30, check=True,
                             env={**os.environ, "TZ": "UTC"}).stdout
        fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
        seen[index] = (fields["JobName"], fields["StartTime"], fields.get("ArrayJobId"))
    assert seen == {
        0: ("sweep-7-0", base.strftime("%Y-%m-%dT%H:%M:%S"), None),
        5: ("sweep-7-5", (base + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), None),
    }


def test_cancel_a_sleeping_job(slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]) -> None:
    handle = slurm.launch(make_spec(workdir, ["sleep", "300"], duration_s=600))
    cleanup.append(handle)
    wait_state(slurm, handle, JobState.RUNNING)
    slurm.cancel(handle)
    status = wait_end(slurm, handle, timeout_s=60)
    assert status.state == "cancelled", status
    slurm.cancel(handle)  # cancelling again is harmless


def test_cancel_a_pending_job(slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    handle = slurm.launch(make_spec(workdir, ["/bin/true"], begin_at=later))
    cleanup.append(handle)
    slurm.cancel(handle)
    status = wait_end(slurm, handle, timeout_s=30)
    assert status.state == "cancelled", status


def test_suspend_and_resume(slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]) -> None:
    handle = slurm.launch(make_spec(workdir, ["sleep", "300"], duration_s=600))
    cleanup.append(handle)
    wait_state(slurm, handle, JobState.RUNNING)
    slurm.suspend(handle)
    wait_state(slurm, handle, JobState.SUSPENDED, timeout_s=30)
    assert slurm.poll(handle) is None  # suspended is not ended
    slurm.resume(handle)
    wait_state(slurm, handle, JobState.RUNNING, timeout_s=30)


NASTY = ["a b", "it's", '"quoted"', "$HOME", "`id`", "$(touch pwned)", "; touch pwned2", "*", ""]


def test_arguments_and_env_survive_without_shell_injection(
    slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]
) -> None:
    code = (
        "import json, os, sys; json.dump({'argv': sys.argv[1:], 'x': os.environ.get('CS_X'),"
        " 'leak': os.environ.get('CS_DAEMON_ONLY')}, open('seen.json', 'w'))"
    )
    env = {"PATH": "/usr/bin:/bin", "CS_X": "$(id) 'q' `w` \"e\" $HOME"}
    os.environ["CS_DAEMON_ONLY"] = "must not reach the job"
    try:
        handle = slurm.launch(make_spec(workdir, [sys.executable, "-c", code, *NASTY], env=env))
    finally:
        del os.environ["CS_DAEMON_ONLY"]
    cleanup.append(handle)
    status = wait_end(slurm, handle)
    assert status.state == "succeeded", (status, (workdir / "job.err").read_text())
    seen = json.loads((workdir / "seen.json").read_text())
    assert seen == {"argv": NASTY, "x": env["CS_X"], "leak": None}
    assert not (workdir / "pwned").exists() and not (workdir / "pwned2").exists()


@pytest.mark.parametrize(
    ("kwargs", "job_kw", "words"),
    [
        ({"partition": "no_such_partition"}, {}, "Invalid partition"),
        ({}, {"gpus": 64}, "gres"),
    ],
    ids=["bad-partition", "impossible-gres"],
)
def test_sbatch_refusal_is_an_executor_error_with_slurms_message(
    slurm: SlurmExecutor, workdir: Path, kwargs: dict[str, Any], job_kw: dict[str, Any], words: str
) -> None:
    ex = SlurmExecutor(**kwargs)
    with pytest.raises(ExecutorError) as caught:
        ex.launch(make_spec(workdir, ["/bin/true"], **job_kw))
    message = str(caught.value)
    assert "sbatch refused job" in message
    assert words.lower() in message.lower(), message


def test_job_id_that_never_existed_is_lost(slurm: SlurmExecutor) -> None:
    handle = Handle(handle="999999999")  # above Slurm's default MaxJobId
    assert not slurm.alive(handle)
    status = slurm.poll(handle)
    assert status is not None
    assert status.state == "lost"
    assert "999999999" in status.reason and "vanished" in status.reason


def test_finished_job_is_found_in_the_jobcomp_log(
    slurm: SlurmExecutor, workdir: Path, cleanup: list[Handle]
) -> None:
    """After MinJobAge the controller forgets a job: the completion log still has it."""
    handle = slurm.launch(make_spec(workdir, ["/bin/sh", "-c", "exit 4"]))
    cleanup.append(handle)
    wait_end(slurm, handle)
    if slurm.config().get("JobCompType", "").endswith("/filetxt"):
        found = slurm._jobcomp_lookup([handle.handle]).get(handle.handle)
        assert found is not None
        assert (found.state, found.exit_code) == ("FAILED", "4:0")
    else:
        pytest.skip("this cluster has no jobcomp/filetxt log")
