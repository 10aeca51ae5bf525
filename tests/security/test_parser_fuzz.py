"""Hypothesis fuzz of every parser at the edges (issue 16): for arbitrary text each one
returns a value or refuses it with the package's bad-input error (one the CLI turns into
exit 2: ``BadInput``, ``BadTrace``, ``BadDatabase``), never another exception. No
subprocesses, no database: each parser is called directly, ~200 examples each.

test_fuzz_parsers.py checks the values durations, times and policies come back with; this
file covers every parser, the rest included: energies, masses, carbon prices, GPU lists,
env assignments, ZONE=FILE replay specs, clock specs, --since/--until, simulate's duration
ranges, database URLs and the signal names of checkpointing jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intensity.providers.replay import parse_zone_file
from scheduler.app import clock_from_env, normalise_db
from scheduler.cli.common import error_exit_code
from scheduler.cli.jobs import _parse_env
from scheduler.cli.report import parse_range
from scheduler.cli.simulate import parse_range_s
from scheduler.config import signal_name
from scheduler.measuring import parse_gpu_indices
from scheduler.queue import check_env_entry
from scheduler.reporting import CarbonPrice
from scheduler.storage.store import check_cli_url
from scheduler.timeutil import parse_duration_s, parse_since, parse_time, parse_when
from scheduler.units import parse_energy_j, parse_grams, parse_threshold

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)

# what people type, glued at random, plus any text at all
PIECES = ["1", "3", "80", "1.5", "0", "-", "+", ".", ",", "e", "E9", "e400", "nan", "inf", "h", "m", "s", "d",
          "w", "P", "T", "Z", ":", "2026-05-01", "T12:00", "+01:00", "*", "*3600", "=", "/", "/t", "/kg", "g",
          "kg", "t", "kWh", "MJ", "J", "EUR", "XYZ", "€", "$", " ", "\n", "\x00", "\x1b", "\u202e", "٣", "１",
          "10000000000000000000000", "sqlite://", "postgresql://", "u:pw@h", ":99999", ":abc", "/db",
          "GB", "all", "CUDA", "SIG", "USR1"]
TEXT = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(PIECES), max_size=8).map("".join))
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _db(text: str) -> object:
    url = normalise_db(text) if text.strip() else text
    check_cli_url(url)
    return url


def _env(text: str) -> object:
    env = _parse_env((text,))
    for k, v in env.items():
        check_env_entry(k, v)
    return env


def _clock(text: str) -> object:
    clock = clock_from_env(text)
    return None if clock is None else clock.now()


PARSERS: dict[str, Callable[[str], object]] = {
    "duration": parse_duration_s,
    "time": parse_time,
    "deadline (absolute or relative)": lambda t: parse_when(t, NOW),
    "since": lambda t: parse_since(t, NOW, "--since"),
    "since and until": lambda t: parse_range(t, t[::-1], NOW),
    "simulate duration range": parse_range_s,
    "energy": parse_energy_j,
    "mass (budget)": parse_grams,
    "threshold": parse_threshold,
    "carbon price": CarbonPrice.parse,
    "GPU list": lambda t: parse_gpu_indices(t, {}),
    "GPU list from CUDA_VISIBLE_DEVICES": lambda t: parse_gpu_indices(None, {"CUDA_VISIBLE_DEVICES": t}),
    "env assignment": _env,
    "ZONE=FILE replay spec": parse_zone_file,
    "clock spec": _clock,
    "database URL": _db,
    "pause signal": signal_name,
}


@pytest.mark.parametrize("name", list(PARSERS))
def test_parser_returns_a_value_or_refuses_as_bad_input(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parse = PARSERS[name]
    monkeypatch.chdir(tmp_path)  # a relative database path resolves (and is never created) here

    @FUZZ
    @given(TEXT)
    def check(text: str) -> None:
        try:
            parse(text)
        except Exception as exc:  # the point: which exceptions come out
            if error_exit_code(exc) != 2:
                raise AssertionError(f"{name}: {text!r} raised {type(exc).__name__}: {exc}") from exc

    check()
    assert list(tmp_path.iterdir()) == []  # parsing wrote nothing
