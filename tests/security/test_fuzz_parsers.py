"""Hypothesis fuzz of the parsers at the edges: each returns a valid value or raises
BadInput, never anything else (no ValueError, OverflowError, TypeError...)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.errors import BadInput
from scheduler.model import Policy
from scheduler.policies import policy_from_flags, resolve, validate_policy
from scheduler.timeutil import MAX_DURATION_S, parse_duration_s, parse_time, parse_when
from scheduler.units import parse_grams, parse_threshold

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)

# text that looks like what people type, plus anything at all
pieces = st.sampled_from(["1", "3", "90", "1.5", "0", "-", "+", ".", "e", "E9", "nan", "inf", "h", "m", "s",
                          "d", "w", "P", "T", "H", "M", "S", "D", "Z", "z", ":", "T12", "2026-05-01", "+01:00",
                          " ", "\x00", "\u202e", "٣", "１", "10000000000000000000000"])
texty = st.one_of(st.text(max_size=40), st.lists(pieces, max_size=8).map("".join))
SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(texty)
def test_parse_duration(text: str) -> None:
    try:
        value = parse_duration_s(text)
    except BadInput:
        return
    assert isinstance(value, int) and 1 <= value <= MAX_DURATION_S


@SETTINGS
@given(texty)
def test_parse_time(text: str) -> None:
    try:
        value = parse_time(text)
    except BadInput:
        return
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)


@SETTINGS
@given(texty)
def test_parse_when(text: str) -> None:
    try:
        value = parse_when(text, NOW)
    except BadInput:
        return
    assert value.tzinfo is not None


@SETTINGS
@given(texty)
def test_parse_grams_and_threshold(text: str) -> None:
    for parse in (parse_grams, parse_threshold):
        try:
            value = parse(text)
        except BadInput:
            continue
        assert isinstance(value, float) and math.isfinite(value) and value > 0


optional_text = st.one_of(st.none(), texty)


@SETTINGS
@given(deadline=optional_text, latest=optional_text, delay=optional_text, threshold=optional_text,
       budget=optional_text, run_now=st.booleans(), duration=st.integers(min_value=1, max_value=MAX_DURATION_S))
def test_policy_from_flags_then_resolve(deadline: str | None, latest: str | None, delay: str | None,
                                        threshold: str | None, budget: str | None, run_now: bool,
                                        duration: int) -> None:
    try:
        pol = policy_from_flags(NOW, deadline=deadline, latest_start=latest, max_delay=delay,
                                threshold=threshold, budget=budget, run_now=run_now,
                                interruptible=False, relative=False)
        pol = validate_policy(pol)
        bounds = resolve(pol, submitted_at=NOW, duration_s=duration)
    except BadInput:  # InfeasibleJob is a BadInput
        return
    assert bounds.earliest_start <= bounds.latest_start
    if bounds.deadline_at is not None:
        assert bounds.latest_start + timedelta(seconds=duration) <= bounds.deadline_at


numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(min_value=-(2**70), max_value=2**70))


@SETTINGS
@given(name=texty, deadline_s=numbers, latest_s=numbers, delay=numbers, threshold=numbers, budget=numbers,
       duration=st.integers(min_value=-10, max_value=10**12))
def test_validate_and_resolve_raw_policies(name: str, deadline_s: object, latest_s: object, delay: object,
                                           threshold: object, budget: object, duration: int) -> None:
    def as_int(v: object) -> int | None:
        return None if v is None else int(v) if isinstance(v, int) else (int(v) if isinstance(v, float) and math.isfinite(v) else 10**15)

    pol = Policy(name=name, deadline_s=as_int(deadline_s), latest_start_s=as_int(latest_s),
                 max_delay_s=as_int(delay), threshold_g_per_kwh=threshold if isinstance(threshold, float) else None,
                 budget_g=budget if isinstance(budget, float) else None)
    try:
        pol = validate_policy(pol)
        resolve(pol, submitted_at=NOW, duration_s=duration)
    except BadInput:
        return
