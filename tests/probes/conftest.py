"""Fixtures of the probes tests (helpers live in ``probe_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from probe_helpers import FakeClock, kill_group


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def group_cleanup() -> Iterator[list[int]]:
    """Append process-group ids to this list; they are killed after the test."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        kill_group(pgid)
