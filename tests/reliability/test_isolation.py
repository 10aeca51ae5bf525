"""A job's folder and PYTHONPATH never shadow carbonshift's helpers (issues 15.3, 16.9).

The job's folder holds ``scheduler.py``, ``intensity.py``, ``probes/__init__.py``,
``signal.py``, ``selectors.py`` and ``json.py``, and its ``PYTHONPATH`` a folder with the
same, all raising on import: the supervisor and the measured wrapper must import ours and
the standard library's, while the job still imports from its folder and its PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scheduler.executors.helper import helper_argv
from scheduler.executors.measured import wrapper_argv
from scheduler.model import JobState
from tests.reliability.conftest import Sim

SHADOWS = ("scheduler.py", "intensity.py", "probes/__init__.py", "signal.py", "selectors.py", "json.py")

JOB = """\
import os, sys
import mine, theirs  # the job's own modules: from its folder, from its PYTHONPATH
x = 0
for i in range(3_000_000):
    x += i
with open("seen.txt", "w") as f:
    f.write(os.environ.get("PYTHONPATH", "") + "\\n" + os.getcwd() + "\\n" + mine.NAME + theirs.NAME)
"""


def shadowed_folder(path: Path) -> Path:
    for name in SHADOWS:
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"raise RuntimeError('shadowed: {name} imported from the job folder')\n")
    return path


def _job_folders(tmp: Path) -> tuple[Path, Path]:
    proj = shadowed_folder(tmp / "proj")
    (proj / "mine.py").write_text("NAME = 'mine'\n")
    (proj / "job.py").write_text(JOB)
    lib = shadowed_folder(tmp / "lib")
    (lib / "theirs.py").write_text("NAME = 'theirs'\n")
    return proj, lib


def test_shadowing_files_in_the_job_folder_and_pythonpath_do_not_reach_the_daemons_helpers(
    sim: Sim,
) -> None:
    proj, lib = _job_folders(sim.tmp)
    sub = sim.cli("submit", "--now", "--duration", "2m", "--name", "shadowed", "--cwd", str(proj),
                  "--env", f"PYTHONPATH={lib}", "--", sys.executable, "job.py")
    assert sub.returncode == 0, sub.stderr
    daemon = sim.start_daemon("--exit-when-idle")
    assert daemon.wait(120) == 0, sim.daemon_log()
    (job,) = sim.app.store.list_jobs()
    assert job.state is JobState.SUCCEEDED, (job.note, sim.daemon_log()[-3000:])
    pythonpath, cwd, names = (proj / "seen.txt").read_text().split("\n")
    assert pythonpath == str(lib) and Path(cwd) == proj and names == "minetheirs"
    (run,) = sim.app.store.runs_for_job(job.id)  # type: ignore[arg-type]
    assert run.exit_code == 0
    samples = sim.app.store.samples_for_run(run.id)  # type: ignore[arg-type]
    assert samples and sum(s.energy_j for s in samples) > 0, "the job was not measured"


def test_the_measured_wrapper_runs_isolated_too(tmp_path: Path) -> None:
    """The Slurm wrapper's argv, run in a shadowing folder with a shadowing PYTHONPATH."""
    proj, lib = _job_folders(tmp_path)
    db = tmp_path / "w.db"
    argv = [a.replace("{run_id}", "1") for a in wrapper_argv(f"sqlite:///{db}", interval_s=0.2)]
    env = dict(os.environ, PYTHONPATH=str(lib))
    done = subprocess.run([*argv, "--", sys.executable, "job.py"], cwd=proj, env=env,
                          capture_output=True, text=True, timeout=120)
    # no run 1 in an empty database: the job runs unmeasured, and says so in one line
    assert done.returncode == 0, done.stderr
    assert "shadowed" not in done.stderr
    assert (proj / "seen.txt").read_text().split("\n")[0] == str(lib)


def test_helper_argv_imports_our_modules_whatever_the_folder(tmp_path: Path) -> None:
    shadowed_folder(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run(
        [*helper_argv("scheduler.executors.supervise", stdlib_only=True), "--help"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "carbonshift-supervise" in out.stdout
    assert json.loads("1") == 1  # (this test's own json is the real one)
