"""One style across commands (issue 15): durations, numbers, --json, metavars, exit codes.

Every test drives the real CLI (in-process through ``cs``, or as a subprocess where a
signal or a terminal matters) against a private home and database.
"""

from __future__ import annotations

import json

from tests.cli.conftest import CS


def test_durations_keep_every_unit_between_the_first_and_the_last(cs: CS) -> None:
    assert cs("policy", "set", "odd", "--deadline", "16h0m3s", "--max-delay", "16h3m").code == 0
    out = cs("policy", "list").out
    assert "finish within 16h00m03s" in out and "delay at most 16h03m" in out, out
    assert "16h3s" not in out
    assert cs("submit", "--name", "long", "--duration", "1h0m5s", "--deadline", "12h", "--", "true").code == 0
    assert "1h00m05s" in cs("queue").out
    assert json.loads(cs("policy", "show", "odd", "--json").out)["deadline_s"] == 16 * 3600 + 3
