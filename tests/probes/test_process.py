"""The process-tree CPU estimate on real processes that burn known CPU time."""

from __future__ import annotations

import os
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from probe_helpers import BURN_PRELUDE, FakeClock, burner_code, reap, spawn, wait_for

from probes.errors import ProbeUnavailable
from probes.model import Method, ProbeTarget
from probes.process import Member, ProcessTree, ProcessTreeProbe, account

W_PER_CORE = 10.0
# Python's own start-up and the loop's last lap, on a busy shared machine.
SLACK_S = 0.35


def _poll_until_exit(
    probe: ProcessTreeProbe, proc_pid: int, clock: FakeClock, every_s: float = 0.05
) -> list[float]:
    energies = []
    while True:
        try:
            done_pid, _ = os.waitpid(proc_pid, os.WNOHANG)[0], None
        except ChildProcessError:
            break
        if done_pid:
            break
        energies += [s.energy_j for s in probe.read(clock())]
        time.sleep(every_s)
    return energies


def test_forking_children_that_exit_are_counted_with_final_rusage(clock: FakeClock) -> None:
    proc = spawn(burner_code(root_s=0.2, children=3, child_s=0.15))
    probe = ProcessTreeProbe(W_PER_CORE)
    probe.begin(ProbeTarget(proc.pid, proc.pid), clock())
    energies = []
    for _ in range(3):
        time.sleep(0.1)
        energies += [s.energy_j for s in probe.read(clock())]
    cpu_s = reap(proc)
    probe.observe_exit(cpu_s=cpu_s)
    last = probe.end(clock())
    energies += [s.energy_j for s in last]
    assert all(e >= 0 for e in energies)
    total_cpu_s = sum(energies) / W_PER_CORE
    # exact: everything the root and its reaped children used since the baseline
    assert total_cpu_s == pytest.approx(cpu_s, abs=0.02)
    assert 0.65 <= total_cpu_s <= 0.65 + SLACK_S
    assert (
        last[0].method is Method.CPU_TIME_ESTIMATE and last[0].estimated and last[0].device == "cpu"
    )


def test_without_final_rusage_children_reaped_between_samples_still_count(clock: FakeClock) -> None:
    proc = spawn(burner_code(root_s=0.3, children=2, child_s=0.2) + "\ntime.sleep(0.3)\n")
    probe = ProcessTreeProbe(W_PER_CORE)
    probe.begin(ProbeTarget(proc.pid, proc.pid), clock())
    energies = _poll_until_exit(probe, proc.pid, clock)
    energies += [s.energy_j for s in probe.end(clock())]
    total_cpu_s = sum(energies) / W_PER_CORE
    # the root sleeps 0.3 s after burning, so the sampler saw its full CPU time
    assert 0.7 - 0.05 <= total_cpu_s <= 0.7 + SLACK_S


def test_daemonized_grandchild_that_keeps_the_group_is_measured(
    tmp_path: Path, clock: FakeClock, group_cleanup: list[int]
) -> None:
    marker = tmp_path / "burnt"
    code = BURN_PRELUDE + textwrap.dedent(
        f"""
        if os.fork() == 0:          # child: daemonize a grandchild, then leave
            if os.fork() == 0:      # grandchild: re-parented to init, same process group
                burn(0.4)
                open({str(marker)!r}, "w").close()
                time.sleep(30)
                os._exit(0)
            os._exit(0)
        os.wait()
        burn(0.2)
        while not os.path.exists({str(marker)!r}):
            time.sleep(0.01)
        """
    )
    proc = spawn(code)
    group_cleanup.append(proc.pid)
    probe = ProcessTreeProbe(W_PER_CORE)
    probe.begin(ProbeTarget(proc.pid, proc.pid), clock())
    wait_for(marker)
    cpu_s = reap(proc)  # the root's rusage does not include the daemon
    assert cpu_s < 0.4
    probe.observe_exit(cpu_s=cpu_s)
    samples = probe.end(clock())
    total_cpu_s = samples[0].energy_j / W_PER_CORE
    assert 0.6 - 0.02 <= total_cpu_s <= 0.6 + SLACK_S


def test_orphan_that_dies_between_samples_keeps_its_last_seen_time(
    tmp_path: Path, clock: FakeClock
) -> None:
    marker = tmp_path / "burnt"
    code = BURN_PRELUDE + textwrap.dedent(
        f"""
        if os.fork() == 0:
            if os.fork() == 0:
                burn(0.3)
                open({str(marker)!r}, "w").close()
                time.sleep(0.3)   # seen by the sampler at its full CPU time, then gone
                os._exit(0)
            os._exit(0)
        os.wait()
        while not os.path.exists({str(marker)!r}):
            time.sleep(0.01)
        time.sleep(0.6)
        """
    )
    proc = spawn(code)
    probe = ProcessTreeProbe(W_PER_CORE)
    probe.begin(ProbeTarget(proc.pid, proc.pid), clock())
    energies = _poll_until_exit(probe, proc.pid, clock)
    energies += [s.energy_j for s in probe.end(clock())]
    assert all(e >= 0 for e in energies)
    assert 0.3 - 0.02 <= sum(energies) / W_PER_CORE <= 0.3 + SLACK_S


def test_a_job_in_our_own_group_is_followed_by_descendants_only(clock: FakeClock) -> None:
    # Not started in a new session: matching by group would count the test runner itself.
    proc = spawn(burner_code(root_s=0.2, children=1, child_s=0.1), new_session=False)
    tree = ProcessTree()
    state = tree.attach(ProbeTarget(proc.pid), key=clock())
    assert os.getpid() not in state.pids
    assert proc.pid in state.pids
    cpu_s = reap(proc)
    tree.observe_exit(cpu_s)
    assert tree.read(key=clock()).job_cpu_s == pytest.approx(cpu_s, abs=0.02)


def test_a_missing_process_is_unavailable(clock: FakeClock) -> None:
    proc = spawn("pass")
    reap(proc)
    with pytest.raises(ProbeUnavailable):
        ProcessTreeProbe(W_PER_CORE).begin(ProbeTarget(proc.pid, proc.pid), clock())


def test_tree_reads_are_shared_per_timestamp(clock: FakeClock) -> None:
    proc = spawn("import time; time.sleep(5)")
    try:
        time.sleep(0.3)  # let the interpreter load
        tree = ProcessTree()
        tree.attach(ProbeTarget(proc.pid, proc.pid), key=clock())
        at = datetime(2030, 1, 1, tzinfo=UTC)
        first = tree.read(key=at)
        assert tree.read(key=at) is first
        assert tree.read(key=clock()) is not first
        assert first.rss_bytes > 1_000_000  # a Python interpreter's resident memory
    finally:
        proc.kill()
        reap(proc)


def test_rejects_non_positive_watts() -> None:
    with pytest.raises(ValueError):
        ProcessTreeProbe(0.0)


members = st.dictionaries(
    st.integers(1, 8),
    st.builds(Member, ppid=st.integers(0, 8), cpu_s=st.floats(0, 100), rss_bytes=st.just(0)),
    max_size=8,
)


@settings(deadline=None)  # the machine is shared: time is no property here
@given(previous=members, current=members)
def test_account_never_negative_and_orphans_within_what_left(
    previous: dict[int, Member], current: dict[int, Member]
) -> None:
    left_s, orphans_s = account(previous, current, root=1)
    assert 0.0 <= orphans_s <= left_s * (1 + 1e-12)


def test_account_a_child_reaped_by_a_live_member_moves_into_its_parent() -> None:
    before = {1: Member(0, 1.0, 0), 2: Member(1, 2.0, 0)}
    after = {1: Member(0, 1.5 + 2.5, 0)}  # root burnt 0.5, reaped the child that reached 2.5
    assert account(before, after, root=1) == (0.0, 0.0)


def test_account_an_orphan_reaped_by_init_and_the_root_leave_the_sum() -> None:
    before = {1: Member(0, 1.0, 0), 3: Member(99, 4.0, 0)}  # 3 was re-parented to init
    assert account(before, {1: Member(0, 1.2, 0)}, root=1) == (4.0, 4.0)
    assert account(before, {3: Member(99, 4.5, 0)}, root=1) == (1.0, 0.0)


def test_account_children_that_go_with_their_parent_follow_its_fate() -> None:
    before = {
        1: Member(0, 1.0, 0),
        2: Member(1, 2.0, 0),
        3: Member(2, 0.5, 0),
        7: Member(99, 1.0, 0),
        8: Member(7, 0.25, 0),
    }
    # all gone: 2 and 3 in the root's lineage; 8 went with orphan 7
    assert account(before, {}, root=1) == (4.75, 1.25)
