"""examples/api.py runs offline and shows the Python API end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_api_example_runs_and_reports_a_saving() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "api.py")], capture_output=True,
                         text=True, timeout=180, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "GB forecast:" in text
    assert re.search(r"job 1 eval-now: planned .* expected", text)
    assert "exit codes: {1: 0, 2: 0}" in text
    assert re.search(r"job 2 finetune-flex: succeeded, [\d.]+ J \(\w+", text)
    m = re.search(r"report: 2 jobs, .* ([\d.-]+)% saved vs run-now, deadlines met (\d)/(\d)", text)
    assert m, text
    # the flexible job waits for the night: the total saving is clearly positive
    assert float(m.group(1)) > 10
    assert "kept:" not in text  # nothing left behind without --keep
