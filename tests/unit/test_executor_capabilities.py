"""Executors declare what they can do (``scheduler/contracts.py``), with defaults, and
the agent asks them: no ``getattr`` probing and no branching on an executor's name in the
daemon beyond the one place that builds an executor from its name."""

from __future__ import annotations

import ast
from pathlib import Path

from scheduler.executors.base import Executor, ExitStatus, Handle, LaunchSpec
from scheduler.executors.local import LocalExecutor
from scheduler.executors.slurm import SlurmExecutor

SCHEDULER = Path(__file__).resolve().parents[2] / "scheduler"
#: the agent: every part of it, and the old module that re-exports it
AGENT = [SCHEDULER / "dispatch.py", *sorted((SCHEDULER / "agent").glob("*.py"))]


class Bare(Executor):
    """Only what an executor must have."""

    def launch(self, spec: LaunchSpec) -> Handle:
        return Handle("1")

    def poll(self, handle: Handle) -> ExitStatus | None:
        return None

    def alive(self, handle: Handle) -> bool:
        return True

    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        pass


def test_defaults_say_nothing_more_is_possible() -> None:
    bare, h = Bare(), Handle("1")
    assert bare.host_bound and not bare.can_ask
    assert bare.resume_by(h, 123.0) is False and bare.cleanup_group(h) is False
    assert bare.find("/nowhere/run-1.out") is None and bare.energy(h) is None


def test_local_and_slurm_declare_theirs() -> None:
    assert LocalExecutor.host_bound and LocalExecutor.can_ask
    assert not SlurmExecutor.host_bound and not SlurmExecutor.can_ask


def test_the_daemon_asks_executors_instead_of_probing_or_naming_them() -> None:
    probes, named = [], []
    for path in AGENT:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        probes += [(path.name, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.Call)
                   and isinstance(n.func, ast.Name) and n.func.id == "getattr"]
        named += [(path.name, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.Compare)
                  and any(isinstance(c, ast.Constant) and c.value in ("local", "slurm") for c in n.comparators)]
    assert len(AGENT) > 5 and not probes and not named, (probes, named)
