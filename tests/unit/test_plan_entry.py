"""``plan_entry`` (the planner's faster way to write a ``PlanEntry``) makes the object the
dataclass's own constructor makes: equal, hashed alike, frozen, pickled alike."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from scheduler.domain.model import plan_entry
from scheduler.model import PlanEntry


def test_plan_entry_is_the_constructors_object() -> None:
    a, b = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 3, tzinfo=UTC)
    fields = (7, "gpu-east", a, 12.5, 20.0, 110.25, "min-emissions", ((a, b),))
    made, built = plan_entry(*fields), PlanEntry(*fields)
    assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
    assert dataclasses.astuple(made) == fields
    assert pickle.loads(pickle.dumps(made)) == built
    assert dataclasses.replace(made, job_id=8) == PlanEntry(8, *fields[1:])
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.site = "elsewhere"  # type: ignore[misc]
