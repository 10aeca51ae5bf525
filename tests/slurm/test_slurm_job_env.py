"""A Slurm job knows itself: ``CARBONSHIFT_JOB_ID``, ``CARBONSHIFT_RUN_ID`` and
``CARBONSHIFT_SITE`` in its environment on the node (real single-node Slurm, real daemon)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.model import JobState
from tests.slurm.test_slurm_daemon import SITE, app, run_daemon, slurm_up, submit  # noqa: F401

pytestmark = pytest.mark.slurm


def test_a_slurm_job_sees_its_job_run_and_site(app: App, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "env.json"
    code = ("import json, os, sys; json.dump({k: os.environ.get(k) for k in "
            "('CARBONSHIFT_JOB_ID', 'CARBONSHIFT_RUN_ID', 'CARBONSHIFT_SITE')}, open(sys.argv[1], 'w'))")
    job_id, _ = submit(app, [sys.executable, "-c", code, str(out)], workdir=tmp_path)
    lines = run_daemon(app, until=lambda: app.store.get_job(job_id).state in
                       (JobState.SUCCEEDED, JobState.FAILED, JobState.LOST), timeout_s=150)
    assert app.store.get_job(job_id).state is JobState.SUCCEEDED, "\n".join(lines)
    (run,) = app.store.runs_for_job(job_id)
    assert json.loads(out.read_text()) == {"CARBONSHIFT_JOB_ID": str(job_id),
                                           "CARBONSHIFT_RUN_ID": str(run.id), "CARBONSHIFT_SITE": SITE}
