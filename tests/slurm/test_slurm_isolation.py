"""A shadowing job folder and PYTHONPATH on Slurm: the measured wrapper is isolated (15.3).

The folder holds ``scheduler.py``, ``probes/__init__.py``, ``intensity.py``, ``signal.py``,
``selectors.py`` and ``json.py`` raising on import, and so does the folder in the job's
PYTHONPATH: the job succeeds in Slurm and our wrapper on the node still measures it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from probes.model import Method
from scheduler.app import App
from scheduler.model import JobState
from tests.reliability.test_isolation import _job_folders
from tests.slurm.test_slurm_daemon import app, run_daemon, slurm_up, submit  # noqa: F401 (fixtures)


def test_shadowing_folder_does_not_unmeasure_a_slurm_job(app: App, tmp_path: Path) -> None:  # noqa: F811
    proj, lib = _job_folders(tmp_path)
    job_id, _ = submit(app, ["env", f"PYTHONPATH={lib}", sys.executable, "job.py"], workdir=proj)

    def done() -> bool:
        return app.store.get_job(job_id).state in (JobState.SUCCEEDED, JobState.FAILED, JobState.LOST)

    lines = run_daemon(app, until=done, timeout_s=150)
    job = app.store.get_job(job_id)
    assert job.state is JobState.SUCCEEDED, "\n".join(lines)
    assert (proj / "seen.txt").read_text().split("\n")[0] == str(lib)
    (run,) = app.store.runs_for_job(job_id)
    samples = app.store.samples_for_run(run.id or 0)
    assert any(s.method is Method.CPU_TIME_ESTIMATE and s.energy_j > 0 for s in samples), "\n".join(lines)
