"""Issue 2's bad inputs: one line naming the value, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import CS, Result

SUBMIT_CASES = {
    "unparseable deadline": (["--duration", "1h", "--deadline", "tomorrow"], "tomorrow"),
    "past deadline": (["--duration", "1h", "--deadline", "2020-01-01T00:00Z"], "past"),
    "deadline before now + duration": (["--duration", "3h", "--deadline", "2h"], "earliest possible finish"),
    "naive deadline": (["--duration", "1h", "--deadline", "2099-01-01T00:00"], "timezone"),
    "zero duration": (["--duration", "0h"], "longer than zero"),
    "negative duration": (["--duration", "-1h"], "-1h"),
    "unparseable duration": (["--duration", "three hours"], "three hours"),
    "duration without unit": (["--duration", "3"], "unit"),
    "unknown policy": (["--duration", "1h", "--policy", "nope"], "nope"),
    "unknown zone": (["--duration", "1h", "--zone", "XX-NOPE"], "XX-NOPE"),
    "unknown site": (["--duration", "1h", "--site", "mars"], "mars"),
    "bad threshold": (["--duration", "1h", "--threshold", "-5"], "threshold"),
    "bad budget": (["--duration", "1h", "--budget", "lots"], "lots"),
    "control character in name": (["--duration", "1h", "--name", "a\x07b"], "control character"),
    "unparseable transfer delay": (["--duration", "1h", "--transfer-delay", "soon"], "soon"),
    "negative transfer delay": (["--duration", "1h", "--transfer-delay", "-30m"], "-30m"),
    "transfer energy without unit": (["--duration", "1h", "--transfer-energy", "500"], "500"),
    "negative transfer energy": (["--duration", "1h", "--transfer-energy", "-1kWh"], "-1kWh"),
    "infinite transfer energy": (["--duration", "1h", "--transfer-energy", "infkWh"], "infkWh"),
    "huge transfer energy": (["--duration", "1h", "--transfer-energy", "5GWh"], "1 GWh"),
    "unknown pause mode": (["--duration", "1h", "--pause-mode", "nap"], "nap"),
    "unknown pause signal": (["--duration", "1h", "--pause-mode", "checkpoint", "--pause-signal", "SIGFOO"], "SIGFOO"),
    "uncatchable pause signal": (["--duration", "1h", "--pause-mode", "checkpoint", "--pause-signal", "KILL"], "KILL"),
    "pause signal for a stopped job": (["--duration", "1h", "--interruptible", "--pause-signal", "USR1"], "--pause-mode checkpoint"),
    "bad pause grace": (["--duration", "1h", "--pause-mode", "checkpoint", "--pause-grace", "a while"], "a while"),
}


def _assert_one_line_error(r: Result, needle: str) -> None:
    assert r.code == 2, (r.code, r.out, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    assert "Traceback" not in r.err
    assert lines[0].startswith("carbonshift: ")
    assert needle.lower() in lines[0].lower(), lines[0]


def _jobs_in(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM jobs").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


@pytest.mark.parametrize("case", sorted(SUBMIT_CASES))
def test_submit_bad_input(cs: CS, case: str) -> None:
    args, needle = SUBMIT_CASES[case]
    if "--" not in args:
        args = [*args, "--", "true"]
    r = cs("submit", *args)
    _assert_one_line_error(r, needle)
    assert _jobs_in(cs.db_path) == 0
    assert not cs.db_path.exists(), "a refused submit made a database"  # not even an empty one


def test_empty_command(cs: CS) -> None:
    _assert_one_line_error(cs("submit", "--duration", "1h", "--", "  "), "command is empty")
    r = cs("submit", "--duration", "1h")
    assert r.code == 2 and "Traceback" not in r.err
    assert _jobs_in(cs.db_path) == 0


def test_db_path_not_writable(cs: CS, tmp_path: Path) -> None:
    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    r = cs("--db", str(a_file / "sub" / "cs.db"), "submit", "--duration", "1h", "--", "true")
    _assert_one_line_error(r, str(a_file))
    assert a_file.read_text() == "x"


def test_db_is_a_directory(cs: CS, tmp_path: Path) -> None:
    d = tmp_path / "adir"
    d.mkdir()
    _assert_one_line_error(cs("--db", str(d), "queue"), str(d))
    assert list(d.iterdir()) == []


def test_db_not_sqlite(cs: CS, tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"this is not a database at all, just text\n" * 10)
    before = bad.read_bytes()
    _assert_one_line_error(cs("--db", str(bad), "submit", "--duration", "1h", "--", "true"), str(bad))
    assert bad.read_bytes() == before


def test_db_from_newer_schema(cs: CS, tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    assert cs("--db", str(db), "db", "upgrade").code == 0
    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.commit()
    con.close()
    r = cs("--db", str(db), "submit", "--duration", "1h", "--", "true")
    _assert_one_line_error(r, "newer")
    assert _jobs_in(db) == 0


TRACE_CASES = {
    "missing columns": ("time,value\n2026-01-01T00:00Z,100\n", "intensity_g_per_kwh"),
    "unparseable time": ("time,intensity_g_per_kwh\nyesterday,100\n", "yesterday"),
    "negative intensity": ("time,intensity_g_per_kwh\n2026-01-01T00:00Z,-5\n", "-5"),
    "not a number": ("time,intensity_g_per_kwh\n2026-01-01T00:00Z,lots\n", "lots"),
    "naive time": ("time,intensity_g_per_kwh\n2026-01-01 00:00,100\n", "zone"),
}


@pytest.mark.parametrize("case", sorted(TRACE_CASES))
def test_bad_trace(cs: CS, tmp_path: Path, case: str) -> None:
    text, needle = TRACE_CASES[case]
    trace = tmp_path / "bad-trace.csv"
    trace.write_text(text)
    cs.config.write_text(f'[intensity]\nproviders = ["replay"]\ntrace = "{trace}"\n')
    r = cs("submit", "--duration", "1h", "--", "true")
    _assert_one_line_error(r, needle)
    assert _jobs_in(cs.db_path) == 0


def test_unknown_config_key_suggests(cs: CS) -> None:
    cs.config.write_text('default_zon = "GB"\n')
    _assert_one_line_error(cs("queue"), "default_zone")


def test_bad_clock_env(cs: CS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBONSHIFT_CLOCK", "noon")
    _assert_one_line_error(cs("queue"), "noon")


def test_unknown_job(cs: CS) -> None:
    _assert_one_line_error(cs("show", "42"), "42")
    _assert_one_line_error(cs("cancel", "42"), "42")
    _assert_one_line_error(cs("logs", "42"), "42")
