"""Every provider time format parses to aware UTC, with no local clock or DST involved."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intensity.timefmt import (
    chunks,
    floor_to,
    format_minutes_naive,
    format_minutes_z,
    format_seconds_z,
    from_unix,
    parse_utc,
    require_utc,
)

T = datetime(2023, 3, 14, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-03-14T03:00Z", T),  # GB Carbon Intensity API
        ("2023-03-14T03:00:00.000Z", T),  # Electricity Maps
        ("2023-03-14T03:00:00+00:00", T),  # WattTime
        ("2023-03-14T04:00:00+01:00", T),  # an offset is applied, not ignored
        ("2023-03-13T22:00:00-05:00", T),
        ("2023-03-14T03:00:00.123456Z", T + timedelta(microseconds=123456)),
        ("  2023-03-14T03:00Z  ", T),
        ("2023-03-14T03:00z", T),
        (1678762800, T),  # Energy-Charts unix seconds
        (1678762800.0, T),
        (1678762800000, T),  # unix milliseconds
        ("1678762800", T),
        ("1678762800000", T),
    ],
)
def test_parse_every_provider_format(text: str | int | float, expected: datetime) -> None:
    got = parse_utc(text)
    assert got == expected
    assert got.tzinfo is UTC


def test_naive_is_utc_only_when_the_provider_documents_it() -> None:
    # Energinet's Minutes5UTC is naive text documented as UTC.
    assert parse_utc("2022-07-17T21:55:00", naive_is_utc=True) == datetime(
        2022, 7, 17, 21, 55, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="no timezone"):
        parse_utc("2022-07-17T21:55:00")


@pytest.mark.parametrize("bad", ["", "soon", "2023-13-01T00:00Z", "2023-03-14T25:00Z", True, None])
def test_garbage_times_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_utc(bad)  # type: ignore[arg-type]


def test_non_finite_unix_is_an_error() -> None:
    with pytest.raises(ValueError):
        from_unix(float("nan"))


def test_dst_days_are_plain_utc_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Europe's spring-forward and fall-back nights: half-hours stay 30 minutes apart."""
    monkeypatch.setenv("TZ", "Europe/London")
    time.tzset()
    try:
        spring = [parse_utc(f"2023-03-26T{h:02d}:{m:02d}Z") for h in range(3) for m in (0, 30)]
        assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(spring))
        # 01:30 BST is 00:30 UTC; 01:30 GMT is 01:30 UTC: same wall clock, an hour apart.
        fall_bst = parse_utc("2023-10-29T01:30:00+01:00")
        fall_gmt = parse_utc("2023-10-29T01:30:00+00:00")
        assert fall_gmt - fall_bst == timedelta(hours=1)
        # Naive Energinet text is not read through the local (London) clock.
        assert parse_utc("2023-03-26T01:30:00", naive_is_utc=True).hour == 1
        assert from_unix(1679794200) == datetime(2023, 3, 26, 1, 30, tzinfo=UTC)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_formats_for_requests() -> None:
    t = datetime(2023, 3, 14, 4, 1, 59, tzinfo=timezone(timedelta(hours=1)))
    assert format_minutes_z(t) == "2023-03-14T03:01Z"
    assert format_seconds_z(t) == "2023-03-14T03:01:59Z"
    assert format_minutes_naive(t) == "2023-03-14T03:01"
    with pytest.raises(ValueError, match="naive"):
        format_minutes_z(datetime(2023, 3, 14))


def test_require_utc_refuses_naive() -> None:
    with pytest.raises(ValueError):
        require_utc(datetime(2023, 1, 1))


def test_floor_to() -> None:
    assert floor_to(datetime(2023, 3, 14, 3, 29, 59, tzinfo=UTC), 1800) == T
    assert floor_to(T, 1800) == T


def test_chunks_cover_the_range_without_overlap() -> None:
    start = datetime(2023, 3, 1, tzinfo=UTC)
    spans = chunks(start, start + timedelta(days=30), 14 * 86400)
    assert spans == [
        (start, start + timedelta(days=14)),
        (start + timedelta(days=14), start + timedelta(days=28)),
        (start + timedelta(days=28), start + timedelta(days=30)),
    ]
    assert chunks(start, start, 60) == []
    with pytest.raises(ValueError):
        chunks(start, start + timedelta(days=1), 0)


@settings(max_examples=60, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_round_trip_through_every_format(value: datetime) -> None:
    seconds = value.replace(microsecond=0)
    assert parse_utc(format_seconds_z(seconds)) == seconds
    assert parse_utc(seconds.isoformat()) == seconds
    assert parse_utc(int(seconds.timestamp())) == seconds
    assert parse_utc(int(seconds.timestamp()) * 1000) == seconds
    assert parse_utc(format_minutes_naive(seconds), naive_is_utc=True) == seconds.replace(second=0)
