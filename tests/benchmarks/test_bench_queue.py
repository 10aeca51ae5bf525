"""How fast `carbonshift queue` answers with 10,000 jobs waiting (target: under 1 s).

Run with ``pytest tests/benchmarks/test_bench_queue.py --benchmark-enable`` for the median
over rounds; with benchmarks disabled (the default) it runs one round on 1,000 jobs as a
smoke test. The command runs in-process (no interpreter start-up), as `queue` and
`queue --json`, on an SQLite file in WAL mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scheduler.cli import main
from tests.cli.conftest import CS, cs  # noqa: F401 (cs: a fixture)
from tests.load.conftest import fill, open_app


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_queue_with_10000_jobs(benchmark: Any, tmp_path: Path, cs: CS, as_json: bool) -> None:  # noqa: F811
    from datetime import timedelta

    from tests.cli.conftest import write_retimed_trace
    from tests.integration.conftest import ORIGIN

    n = 1_000 if benchmark.disabled else 10_000
    write_retimed_trace(tmp_path / "trace.csv", ORIGIN - timedelta(days=2))
    app = open_app(tmp_path)
    fill(app, n)
    app.close()
    args = ["--db", str(tmp_path / "cs.db"), "queue", *(["--json"] if as_json else [])]

    def run() -> int:
        return int(main(args))

    code = benchmark.pedantic(run, rounds=5 if not benchmark.disabled else 1, iterations=1)
    assert code == 0
    benchmark.extra_info["jobs"] = n
