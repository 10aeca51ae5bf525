"""`--db` pointing into a missing folder is refused (exit 2, naming it) and nothing is
created; only the default location gets its folders; `queue` creates nothing at all.
Through the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp / "home"),
        "XDG_DATA_HOME": str(tmp / "xdg-data"), "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())", *args],
        env={**base, **env}, cwd=str(tmp), capture_output=True, text=True, timeout=120,
    )


def test_db_in_a_missing_folder_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    for args, env in (
        (("--db", str(missing / "x.db"), "queue"), {}),
        (("--db", str(missing / "x.db"), "submit", "--duration", "1m", "--", "true"), {}),
        (("--db", f"sqlite:///{missing / 'x.db'}", "history"), {}),
        (("queue",), {"CARBONSHIFT_DB": str(missing / "x.db")}),
    ):
        r = cli(tmp_path, *args, **env)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(missing) in lines[0] and "does not exist" in lines[0], r.stderr
        assert "Traceback" not in r.stderr and "queue is empty" not in r.stdout
    assert not (tmp_path / "nonexistent").exists()


def test_db_in_an_existing_folder_is_created(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    r = cli(tmp_path, "--db", str(db), "site", "list")
    assert r.returncode == 0, r.stderr
    assert db.is_file()


def test_queue_on_the_missing_default_location_creates_nothing(tmp_path: Path) -> None:
    r = cli(tmp_path, "queue")
    assert r.returncode == 0, r.stderr
    assert "the queue is empty" in r.stdout
    assert not (tmp_path / "xdg-data").exists()
    r = cli(tmp_path, "--db", str(tmp_path / "new.db"), "queue")  # folder there, no file yet
    assert r.returncode == 0 and "the queue is empty" in r.stdout, r.stderr
    assert not (tmp_path / "new.db").exists()


def test_the_default_location_is_created_with_its_folders(tmp_path: Path) -> None:
    r = cli(tmp_path, "site", "list")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "xdg-data" / "carbonshift" / "carbonshift.db").is_file()
