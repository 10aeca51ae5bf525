"""One parser per kind of value (scheduler.text): the old import paths are the same
functions, every ISO time in the program goes through one reader, and the near-copies that
disagreed with the shared parsers now are the shared parsers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import scheduler.text.quantities as quantities
import scheduler.text.times as times
import scheduler.timeutil as timeutil
import scheduler.units as units
from intensity.timefmt import parse_utc
from intensity.timeparse import parse_trace_time
from scheduler.errors import BadInput
from scheduler.measuring import check_gpu_indices, parse_gpu_indices
from scheduler.simulate import read_workload

T = datetime(2026, 5, 1, 16, 0, tzinfo=UTC)


def test_the_old_paths_are_the_same_functions() -> None:
    for name in timeutil.__all__:
        assert getattr(timeutil, name) is getattr(times, name)
    for name in units.__all__:
        assert getattr(units, name) is getattr(quantities, name)


@pytest.mark.parametrize("text", ["2026-05-01T18:00Z", "2026-05-01T18:00z", " 2026-05-01T20:00+02:00 ",
                                  "2026-05-01 18:00:00+00:00", "2026-05-01T18:00:00.000Z"])
def test_one_iso_reader_for_the_edges_the_traces_and_the_providers(text: str) -> None:
    at = T + timedelta(hours=2)
    assert times.parse_time(text) == parse_trace_time(text, naive_is_utc=False) == parse_utc(text) == at


def test_a_naive_time_is_utc_only_where_its_source_says_so() -> None:
    with pytest.raises(BadInput, match="has no timezone"):
        times.parse_time("2026-05-01T18:00")
    with pytest.raises(ValueError, match="has no timezone"):
        parse_trace_time("2026-05-01T18:00", naive_is_utc=False)
    assert parse_trace_time("2026-05-01 18:00", naive_is_utc=True) == T + timedelta(hours=2)
    for bad in ("tomorrow", ""):
        with pytest.raises(ValueError):
            parse_trace_time(bad, naive_is_utc=True)


def test_a_workload_deadline_is_read_like_the_clis(tmp_path: Path) -> None:
    # the simulator had its own "ISO time or duration" test: "+2h" was refused there, and
    # a deadline years after its submission accepted; now it is parse_when from the submit
    path = tmp_path / "w.csv"
    path.write_text("submit,duration,deadline\n2026-05-01T16:00Z,3600,+3h\n2026-05-01T16:00Z,1h,2026-05-01T20:00Z\n")
    a, b = read_workload(path, "GB")
    assert (a.deadline, b.deadline) == (T + timedelta(hours=3), T + timedelta(hours=4))
    path.write_text("submit,duration,deadline\n2026-05-01T16:00Z,1h,2028-05-01T16:00Z\n")
    with pytest.raises(BadInput, match="more than a year ahead"):
        read_workload(path, "GB")


def test_zero_is_one_spelling_everywhere_a_duration_may_be_none() -> None:
    # `site add --transfer-delay` and `simulate --transfer-delay/--warmup/--replan` took only
    # "0" and "0s" (their own copies); the shared parser, as `submit --transfer-delay`, also 0m/0h
    assert [times.parse_duration_or_zero_s(t, what="x") for t in ("0", "0s", "0m", "0h", "30m")] == [0, 0, 0, 0, 1800]


def test_typed_gpu_indices_keep_the_clis_rule_without_becoming_text() -> None:
    assert check_gpu_indices([0, 1]) == parse_gpu_indices("0,1", {}) == (0, 1)
    with pytest.raises(BadInput, match=r"gpus \[0, -1\]: GPU indices are not negative"):
        check_gpu_indices([0, -1])
    with pytest.raises(BadInput, match="not a list of GPU indices"):
        check_gpu_indices([True])  # type: ignore[list-item]
