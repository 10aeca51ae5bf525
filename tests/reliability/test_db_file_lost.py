"""The SQLite file deleted under a running daemon: it notices (device and inode checked
every tick), launches nothing more, says so in one line at most a minute, follows the
running job to its end, keeps a copy of what it recorded and exits with status 1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.conftest import CLI_ARGV as CLI
from tests.cli.conftest import offline_cli


def test_deleting_the_database_under_a_running_daemon(tmp_path: Path) -> None:
    db = tmp_path / "cs.db"
    env, run_cli = offline_cli(tmp_path, db)

    def cs(*args: str, db_path: Path = db) -> subprocess.CompletedProcess[str]:
        return run_cli("--db", str(db_path), *args)

    flag = tmp_path / "go"
    job = [sys.executable, "-c",
           f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.1)\n"
           "print('done')"]
    assert cs("submit", "--duration", "1m", "--deadline", "1h", "--", *job).returncode == 0
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen([*CLI, "run"], env=env, cwd=tmp_path, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while json.loads(cs("show", "--json", "1").stdout)["state"] != "running":
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        # a submit now lands in a new file the daemon does not see: it must not run
        assert cs("submit", "--duration", "1m", "--deadline", "1h", "--", "true").returncode == 0
        while "under this daemon: launching nothing" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        flag.touch()  # the running job ends; its outcome goes into the copy
        assert daemon.wait(timeout=120) == 1, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    text = log.read_text()
    warnings = [ln for ln in text.splitlines() if "under this daemon: launching nothing" in ln]
    assert 1 <= len(warnings) <= 3, text  # once, again when the job ended; not every tick
    copies = list(tmp_path.glob("cs.db.lost-*"))
    assert len(copies) == 1, text
    shown = json.loads(cs("show", "--json", "1", db_path=copies[0]).stdout)
    assert shown["state"] == "succeeded", shown
    new = json.loads(cs("show", "--json", "1").stdout)  # the new file's own job 1
    assert new["argv"] == ["true"] and new["state"] in ("pending", "planned"), new
