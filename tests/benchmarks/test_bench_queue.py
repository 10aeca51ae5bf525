"""How fast `carbonshift queue` answers with 10,000 jobs waiting (target: under 1 s).

Run with ``pytest tests/benchmarks/test_bench_queue.py --benchmark-enable`` for the median
over rounds; with benchmarks disabled (the default) it runs one round on 1,000 jobs as a
smoke test. ``test_queue_with_10000_jobs`` runs the command in-process (no interpreter
start-up), as `queue`, `queue --json` (both the first 50 jobs) and `queue --json --limit 0`
(every job), on an SQLite file in WAL mode; ``test_queue_cli_wall_time`` runs the real
command, a new process each round, as a user does. The same under 20 submitting processes:
``python tests/benchmarks/bench_queue_load.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scheduler.cli import main
from tests.cli.conftest import CS, cs  # noqa: F401 (cs: a fixture)
from tests.load.conftest import fill, open_app


def _queue(tmp_path: Path, n: int) -> Path:
    from datetime import timedelta

    from tests.cli.conftest import write_retimed_trace
    from tests.integration.conftest import ORIGIN

    write_retimed_trace(tmp_path / "trace.csv", ORIGIN - timedelta(days=2))
    app = open_app(tmp_path)
    fill(app, n)
    app.close()
    return tmp_path / "cs.db"


@pytest.mark.parametrize("extra", [[], ["--json"], ["--json", "--limit", "0"]],
                         ids=["table", "json", "json-all"])
def test_queue_with_10000_jobs(benchmark: Any, tmp_path: Path, cs: CS, extra: list[str]) -> None:  # noqa: F811
    n = 1_000 if benchmark.disabled else 10_000
    args = ["--db", str(_queue(tmp_path, n)), "queue", *extra]

    def run() -> int:
        return int(main(args))

    code = benchmark.pedantic(run, rounds=5 if not benchmark.disabled else 1, iterations=1)
    assert code == 0
    benchmark.extra_info["jobs"] = n


def test_queue_cli_wall_time(benchmark: Any, tmp_path: Path, cs: CS) -> None:  # noqa: F811
    import os
    import subprocess
    import sys

    n = 1_000 if benchmark.disabled else 10_000
    db = _queue(tmp_path, n)
    cmd = [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
           "--db", str(db), "queue"]
    repo = Path(__file__).resolve().parents[2]

    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(cmd, cwd=str(repo), env=dict(os.environ), capture_output=True, check=True)

    result = benchmark.pedantic(run, rounds=1 if benchmark.disabled else 10, iterations=1)
    assert result.stdout.decode().splitlines()[-1].startswith(f"showing 50 of {n:,} jobs")
    benchmark.extra_info["jobs"] = n
