"""The ports of scheduler/storage/ports.py: JobStore is exactly their union, every store
implements every member with the port's signature, and the contract suite (which runs on
every backend, MemoryStore first) calls every one of them."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from scheduler.storage.base import JobStore
from scheduler.storage.memory import MemoryStore
from scheduler.storage.ports import PORTS
from scheduler.storage.store import SqlStore

#: the files of the contract suite, run on every backend of the ``store`` fixture
CONTRACT = [Path(__file__).with_name(n) for n in ("test_contract.py", "test_leases.py",
                                                  "test_intervals.py")]


def members(port: type) -> set[str]:
    """A port's methods and attributes (what a store must have to be one)."""
    names = {n for n in vars(port) if not n.startswith("_")}
    return names | set(getattr(port, "__annotations__", {}))


def test_each_member_belongs_to_one_port_and_job_store_is_their_union() -> None:
    seen: dict[str, str] = {}
    for port in PORTS:
        for name in members(port):
            assert name not in seen, f"{name} is in both {seen[name]} and {port.__name__}"
            seen[name] = port.__name__
    assert set(JobStore.__mro__[1:1 + len(PORTS)]) == set(PORTS)
    public = {n for n in dir(JobStore) if not n.startswith("_")}
    assert public == set(seen)
    assert JobStore.__abstractmethods__ == set(seen) - {"config_version", "file_lost", "save_copy"}


@pytest.mark.parametrize("impl", [MemoryStore, SqlStore])
def test_every_port_member_is_implemented_with_the_ports_signature(impl: type) -> None:
    assert not inspect.isabstract(impl), impl.__abstractmethods__
    for port in PORTS:
        assert port in impl.__mro__
        for name in members(port):
            ours, declared = getattr(impl, name), getattr(port, name)
            if not callable(declared):
                assert isinstance(ours, type(declared)), name
                continue
            if getattr(declared, "__isabstractmethod__", False):
                assert ours is not declared, f"{impl.__name__}.{name} is not implemented"
            assert inspect.signature(ours) == inspect.signature(declared), (
                f"{impl.__name__}.{name}{inspect.signature(ours)} is not "
                f"{port.__name__}.{name}{inspect.signature(declared)}")


def test_a_memory_store_is_every_port() -> None:
    store = MemoryStore()
    assert all(isinstance(store, port) for port in PORTS)


def test_the_contract_suite_calls_every_port_method() -> None:
    text = "\n".join(p.read_text() for p in CONTRACT)
    called = set(re.findall(r"\b(?:store|s)\.([a-z_]+)\(", text))
    methods = {n for port in PORTS for n in members(port) if callable(getattr(port, n))}
    assert methods - called <= {"save_copy"}, sorted(methods - called)  # SQLite files only
