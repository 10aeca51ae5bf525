"""``present.json_text``, the CLI's JSON writer: the very text of ``json.dumps(data,
default=json_default, indent=2, ensure_ascii=False)`` for every shape, the flat rows it
writes itself and everything it hands to ``json.dumps``."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum, IntEnum
from typing import Any

import pytest

from scheduler.model import JobState
from scheduler.present import json_default, json_text


class Level(IntEnum):
    LOW = 1


class Colour(Enum):
    RED = "red"


T = datetime(2026, 5, 1, 12, 30, 15, 999_999, tzinfo=UTC)

FLAT: dict[str, Any] = {
    "id": 1, "name": 'quote " back \\ tab \t nl \n é 日本 \u2028 \x00', "big": 2**70, "neg": -3,
    "f": 0.1, "whole": 2.0, "tiny": 1e-300, "huge": 1.5e300, "nan": math.nan, "inf": math.inf,
    "-inf": -math.inf, "t": True, "f0": False, "none": None, "at": T,
    "elsewhere": T.astimezone(timezone(timedelta(hours=-5))), "": "empty key",
}

CASES: list[Any] = [
    [], {}, [{}], "x", 3, None, T, [FLAT], [FLAT, FLAT, {"kind": "job"}],
    [FLAT, {"nested": [1, {"a": T}], "t": (1, 2)}, 5, "s", None, [], {}],
    [{"state": JobState.SUCCEEDED}, {"lvl": Level.LOW}, {"c": Colour.RED}],  # subclasses: json.dumps
    [{1: "int key"}, {None: 1}, {True: 2}, {1.5: 3}],
    {"rows": [FLAT], "total": FLAT},
    [[FLAT]],
    [{"d": {"inner": 1}}],
]


@pytest.mark.parametrize("data", CASES)
def test_the_same_text_as_json_dumps(data: Any) -> None:
    assert json_text(data) == json.dumps(data, default=json_default, indent=2, ensure_ascii=False)


def test_refusals_are_json_dumps_s() -> None:
    for bad in ([{"x": object()}], [{"x": {1, 2}}]):
        with pytest.raises(TypeError):
            json_text(bad)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError):
        json_text([loop])
