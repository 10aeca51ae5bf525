"""A job that exits cleanly just as its supervisor finds its agent gone (issue 16.3).

The supervisor checks the agent (reads the agent file), decides the run is orphaned and
stops the job. If the job exited 0 between the supervisor's last look at it and that
decision, the exit was recorded ``lost`` and the job ran a second time. The test forces
that interleaving: the agent file is a FIFO that the job itself feeds, and it is closed
(so the supervisor's read returns, naming a dead agent) only once the job is a zombie.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scheduler.executors.helper import helper_argv
from scheduler.executors.local import LocalExecutor
from scheduler.model import JobState

JOB = """\
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)  # blocks until the supervisor reads its agent file
os.write(fd, b"999999999")              # an agent pid that exists no more
me = os.getpid()
if os.fork() == 0:  # holds the FIFO open until the job is dead, then lets the read end
    while True:
        try:
            with open(f"/proc/{me}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state in ("Z", "X"):
            break
        time.sleep(0.001)
    os._exit(0)
os._exit(0)
"""


def test_a_clean_exit_racing_the_orphan_check_is_not_recorded_lost(tmp_path: Path) -> None:
    agent = tmp_path / "run.agent"
    os.mkfifo(agent)
    (tmp_path / "job.py").write_text(JOB)
    exit_file = tmp_path / "run.exit.json"
    sup = subprocess.run(
        [*helper_argv("scheduler.executors.supervise", stdlib_only=True),
         "--exit-file", str(exit_file), "--out", str(tmp_path / "run.out"),
         "--err", str(tmp_path / "run.err"), "--agent-file", str(agent), "--orphan-grace", "0",
         "--", sys.executable, "job.py", str(agent)],
        cwd=tmp_path, start_new_session=True, timeout=60,
    )
    record = json.loads(exit_file.read_text())
    assert record["exit_code"] == 0 and not record.get("lost"), record
    assert sup.returncode == 0
    status = LocalExecutor()._read_exit(str(exit_file))
    assert status is not None and status.state == JobState.SUCCEEDED.value
