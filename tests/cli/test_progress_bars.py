"""Long work shows progress on a terminal, and nothing extra elsewhere (issue 18).

Each command runs as a real subprocess with its standard error on a pseudo-terminal and its
standard output on a pipe: the bar must appear on the terminal, cleared at the end, and the
output (``--json`` included) must be exactly what it is without a terminal.
"""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
from pathlib import Path

from intensity.providers.replay import SHIPPED_TRACE
from scheduler.cli.progressbar import Bar, progress, wanted
from tests.cli.conftest import CLI_ARGV, offline_cli, read_pty


def run_with_tty_stderr(env: dict[str, str], cwd: Path, *args: str, timeout_s: float = 120.0) -> tuple[int, str, str]:
    """Exit code, standard output (a pipe) and what reached standard error (a pty)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI_ARGV, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave, env={**env, "TERM": "xterm"}, cwd=cwd)
    os.close(slave)
    data = read_pty(master, proc, timeout_s)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    return proc.wait(timeout=30), out, data.decode("utf-8", "replace")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_draws_in_place_and_clears() -> None:
    tty = _Tty()
    bar = Bar("work", tty)
    bar(0, 4, "first")
    bar(4, 4, "last")  # the end is always drawn, however soon
    bar.clear()
    text = tty.getvalue()
    assert "work [" in text and "  0%  first" in text and "100%  last" in text
    assert text.endswith("\r\x1b[2K")
    assert "\n" not in text


def test_no_bar_for_json_or_a_pipe(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert not wanted(False, io.StringIO())
    assert not wanted(True, _Tty())
    monkeypatch.setenv("TERM", "dumb")
    assert not wanted(False, _Tty())
    with progress("x", stream=io.StringIO()) as step:
        step(1, 2, "nothing drawn")


def test_simulate_draws_a_bar_on_a_terminal_and_json_stays_clean(tmp_path: Path) -> None:
    env, cs = offline_cli(tmp_path, tmp_path / "db.sqlite")
    args = ["simulate", "--trace", str(SHIPPED_TRACE), "--jobs", "30", "--forecast", "perfect", "--seed", "2"]
    code, out, err = run_with_tty_stderr(env, tmp_path, *args)
    assert code == 0, err
    assert "simulate 30 jobs [" in err and "100%" in err, err
    assert "run-now" in out and "[#" not in out
    code, out, err = run_with_tty_stderr(env, tmp_path, *args, "--json")
    assert code == 0, err
    assert "[#" not in err and "simulate 30 jobs" not in err
    assert json.loads(out)["jobs"] == 30
    piped = cs(*args, "--json")
    assert piped.returncode == 0 and "[" not in piped.stderr
    assert json.loads(piped.stdout) == json.loads(out)


def test_db_upgrade_and_report_draw_a_bar_on_a_terminal(tmp_path: Path) -> None:
    env, cs = offline_cli(tmp_path, tmp_path / "fresh.sqlite")
    code, out, err = run_with_tty_stderr(env, tmp_path, "db", "upgrade")
    assert code == 0, err
    assert "db upgrade [" in err and "100%" in err, err
    assert out.startswith("database at schema revision ")
    # already at the head: nothing to apply, no bar, the same answer
    again = cs("db", "upgrade", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["revision"] == out.split()[-1]
    assert cs("submit", "--name", "a", "--duration", "10m", "--deadline", "2h", "--", "true").returncode == 0
    code, out, err = run_with_tty_stderr(env, tmp_path, "report", "--since", "all", "--by", "site")
    assert code == 0, err
    assert "report [" in err and "reading jobs" in err, err
    code, out, err = run_with_tty_stderr(env, tmp_path, "report", "--since", "all", "--json")
    assert code == 0 and "report [" not in err
    json.loads(out)
