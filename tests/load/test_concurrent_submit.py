"""20 processes submitting at once into an SQLite queue already holding 10,000 jobs.

Every submit either succeeds or fails with a one-line message; none is lost or doubled;
``carbonshift queue`` keeps answering meanwhile (its latency is printed; the benchmark in
tests/benchmarks/test_bench_queue.py measures it properly).
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import CS
from tests.load.conftest import QUEUED

pytestmark = pytest.mark.slow

PROCS = 20
EACH = int(os.environ.get("CARBONSHIFT_LOAD_EACH", "10"))  # submits per process (25: 500 in all)

SUBMITTER = """
import json, sys, time
from pathlib import Path
from scheduler.errors import CarbonshiftError
from tests.integration.conftest import request
from tests.load.conftest import open_app

tmp, k, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
app = open_app(tmp)
_ = app.queue.sites(), app.intensity  # open and warm up before the start line
while not (tmp / "go").exists():
    time.sleep(0.01)
ok, failed, times = [], [], []
for i in range(n):
    req = request(["python", "train.py", f"--worker={k}", f"--i={i}"], duration="1h", deadline_s=24 * 3600)
    req.name = f"w{k}-{i}"
    t = time.perf_counter()
    try:
        job = app.queue.submit(req).job
        ok.append([req.name, job.id])
    except CarbonshiftError as exc:
        failed.append(str(exc))
    times.append(time.perf_counter() - t)
print(json.dumps({"ok": ok, "failed": failed, "times": times}))
"""


def test_twenty_concurrent_submitters(big_queue: Path, cs: CS) -> None:
    repo = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", SUBMITTER, str(big_queue), str(k), str(EACH)],
                         cwd=str(repo), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(PROCS)
    ]
    time.sleep(1.0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        if all(p.poll() is None for p in procs):
            break
        time.sleep(0.1)
    time.sleep(4.0)  # let them all get ready (imports on a busy machine)
    (big_queue / "go").touch()
    t0 = time.monotonic()
    queue_s: list[float] = []
    while any(p.poll() is None for p in procs) and time.monotonic() - t0 < 300:
        q0 = time.perf_counter()
        r = cs("--db", str(big_queue / "cs.db"), "queue", "--json")
        queue_s.append(time.perf_counter() - q0)
        assert r.code == 0, r.err
        time.sleep(0.2)
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out))
    wall = time.monotonic() - t0
    ok = [tuple(x) for r in results for x in r["ok"]]
    failed = [m for r in results for m in r["failed"]]
    times = [t for r in results for t in r["times"]]
    assert len(ok) + len(failed) == PROCS * EACH
    for msg in failed:  # a failure is one clear line
        assert "\n" not in msg and "locked" in msg, msg
    con = sqlite3.connect(big_queue / "cs.db")
    try:
        rows = dict(con.execute("SELECT name, id FROM jobs WHERE name LIKE 'w%'").fetchall())
        total = con.execute("SELECT count(*) FROM jobs").fetchone()[0]
        events = con.execute("SELECT count(*) FROM events WHERE kind = 'submitted'").fetchone()[0]
    finally:
        con.close()
    assert rows == dict(ok), "a submit was lost, doubled, or a refused one was written"
    assert total == QUEUED + len(ok)
    assert events >= len(ok)
    print(f"\n{PROCS} submitters x {EACH}: {len(ok)} ok, {len(failed)} failed in {wall:.1f} s "
          f"({len(ok) / wall:.0f} submits/s); submit latency median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms; `queue --json` on {total} jobs during the run: "
          f"median {statistics.median(queue_s):.2f} s over {len(queue_s)} calls")
