"""A full disk under an SQLite database: reads keep working, a write says "disk full" in
one line (exit 1) instead of calling the database unusable, and a daemon started on it
waits for space instead of exiting. The disk is a real tiny tmpfs, filled up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import CLI_ARGV as CLI
from tests.cli.conftest import offline_cli


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted in ``tmp_path`` (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder``; returns the filler file."""
    filler = folder / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_keeps_reads_and_says_disk_full(small_disk: Path, tmp_path: Path) -> None:
    db = small_disk / "cs.db"
    env, cs = offline_cli(tmp_path, db)
    job = [sys.executable, "-c", "print('ran')"]
    assert cs("submit", "--duration", "1m", "--deadline", "1h", "--", *job).returncode == 0
    filler = fill(small_disk)
    before = db.read_bytes()

    queued = cs("queue", "--json")
    assert queued.returncode == 0, queued.stderr
    assert [j["id"] for j in json.loads(queued.stdout)] == [1]
    assert cs("history").returncode == 0
    submitted = cs("submit", "--duration", "1m", "--deadline", "1h", "--", "true")
    assert submitted.returncode == 1, submitted.stdout + submitted.stderr
    lines = submitted.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk full" in lines[0], submitted.stderr
    assert "not a usable" not in lines[0] and "new file name" not in lines[0]
    assert db.read_bytes() == before

    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen([*CLI, "run", "--exit-when-idle"], env=env, cwd=tmp_path,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "disk full, retrying" not in log.read_text():
            assert daemon.poll() is None, log.read_text()  # it waits, it does not exit
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        filler.unlink()  # space again: the daemon opens the database and runs the job
        assert daemon.wait(timeout=180) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert json.loads(cs("show", "--json", "1").stdout)["state"] == "succeeded"
