"""User-supplied names print literally on a real terminal (issue 15, item 6).

Each command runs as a real subprocess whose stdout and stderr are a pseudo-terminal, so
rich renders its tables exactly as for a person at a terminal. Names that look like rich
markup (``train[lr=0.1]``, ``a[/]b``, ``[bold]x``) must appear as typed (control
characters are refused at submission, see tests/cli/test_bad_input.py).
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import CS, read_pty

REPO = Path(__file__).resolve().parents[2]
NAMES = ["train[lr=0.1]", "a[/]b", "[bold]x"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tty_cli(cs: CS, *args: str, timeout_s: float = 60.0) -> tuple[int, str]:
    """Run the CLI with a pty as stdout and stderr; return its exit code and what it
    wrote, with rich's colour codes (its styling, not our text) removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(HOME=str(cs.home), XDG_DATA_HOME=str(cs.data), XDG_CONFIG_HOME=str(cs.tmp / "config"),
               CARBONSHIFT_CONFIG=str(cs.config), PYTHONPATH=str(REPO), COLUMNS="250", TERM="xterm")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())", *args],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=str(cs.tmp),
    )
    os.close(slave)
    data = read_pty(master, proc, timeout_s)
    code = proc.wait(timeout=30)
    return code, ANSI.sub("", data.decode("utf-8", "replace"))


def test_markup_like_names_print_as_typed_on_a_terminal(cs: CS) -> None:
    # job names and policy descriptions are free text; policy and site names are checked
    # (letters, digits, '-', '_'), so the site table carries the text in its zone, a
    # config value
    for i, name in enumerate(NAMES):
        assert cs("submit", "--name", name, "--duration", "1h", "--deadline", "12h", "--", "true").code == 0
        assert cs("policy", "set", f"p{i}", "--deadline", "6h", "--description", name).code == 0
    cs.config.write_text(cs.config.read_text().replace('default_zone = "TRACE"', f'default_zone = "{" ".join(NAMES)}"'))
    for args in (["queue"], ["history"], ["policy", "list"], ["site", "list"], ["--utc", "queue"]):
        code, out = tty_cli(cs, *args)
        assert code == 0, out
        assert "MarkupError" not in out and "internal error" not in out, out
        for name in NAMES:
            assert name in out, (args, name, out)
    for job_id in ("1", "2", "3"):
        code, out = tty_cli(cs, "show", job_id)
        assert code == 0 and NAMES[int(job_id) - 1] in out, out


@pytest.mark.parametrize("name", NAMES)
def test_json_keeps_the_name_exact(cs: CS, name: str) -> None:
    import json

    assert cs("submit", "--name", name, "--duration", "1h", "--", "true").code == 0
    (job,) = json.loads(cs("queue", "--json").out)
    assert job["name"] == name
