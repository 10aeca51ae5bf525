"""Bad input across the CLI, the config file, trace files, provider setup and the database.

Each row gets one line on stderr naming the problem, exit code 2, no traceback, and nothing
written (no job, no policy, no site). Issue 2's table (tests/cli/test_bad_input.py) covers
the first dozen submit mistakes; this one adds wrong types, huge values, NaN and infinity,
empty strings, unicode and control characters, times without a zone and broken files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.conftest import CS


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    needle: str  # a word of the message, naming the value or the problem
    config: str | None = None  # replaces the config file's text (the trace path is {trace})
    setup: Callable[[CS], None] | None = None
    env: dict[str, str] = field(default_factory=dict)


def submit(*flags: str, cmd: tuple[str, ...] = ("true",)) -> tuple[str, ...]:
    return ("submit", "--duration", "1h", *flags, "--", *cmd) if "--duration" not in flags else ("submit", *flags, "--", *cmd)


def _file(name: str, data: bytes) -> Callable[[CS], None]:
    def make(cs: CS) -> None:
        (cs.tmp / name).write_bytes(data)
    return make


def _dir(name: str) -> Callable[[CS], None]:
    def make(cs: CS) -> None:
        (cs.tmp / name).mkdir()
    return make


BASE = 'default_zone = "TRACE"\n[intensity]\nproviders = ["replay"]\ntrace = "{trace}"\n'
BAD_TRACE = '[intensity]\nproviders = ["replay"]\ntrace = "{tmp}/bad.csv"\n'

CASES: dict[str, Case] = {
    # -- the CLI: wrong types, huge values, NaN, empty strings, control characters --------
    "power NaN": Case(submit("--power-w", "nan"), "power"),
    "power infinite": Case(submit("--power-w", "inf"), "power"),
    "power huge": Case(submit("--power-w", "1e12"), "power"),
    "power not a number": Case(submit("--power-w", "lots"), "lots"),
    "gpus negative": Case(submit("--gpus", "-1"), "negative"),
    "cpus negative": Case(submit("--cpus", "-2"), "negative"),
    "gpus not an integer": Case(submit("--gpus", "two"), "two"),
    "priority huge": Case(submit("--priority", "99999"), "99999"),
    "priority not an integer": Case(submit("--priority", "1.5"), "1.5"),
    "duration longer than a year": Case(submit("--duration", "400d"), "year"),
    "duration exponent": Case(submit("--duration", "1e400h"), "1e400h"),
    "duration NaN": Case(submit("--duration", "nanh"), "nanh"),
    "duration empty": Case(submit("--duration", ""), "duration"),
    "name empty": Case(submit("--name", ""), "name"),
    "name blank": Case(submit("--name", "   "), "name"),
    "name too long": Case(submit("--name", "n" * 300), "300"),
    "name with newline": Case(submit("--name", "a\nb"), "control character"),
    "name with escape sequence": Case(submit("--name", "\x1b[31mred"), "control character"),
    "name with bidi override is kept out of the terminal? no: refused": Case(submit("--name", "a\x00b"), "control character"),
    "command with escape": Case(submit(cmd=("echo", "\x1b]0;pwned\x07")), "control character"),
    "command with NUL": Case(submit(cmd=("echo", "a\x00b")), "control character"),
    "command huge": Case(submit(cmd=("echo", "x" * 200_000)), "long"),
    "env without =": Case(submit("--env", "FOO"), "FOO"),
    "env empty name": Case(submit("--env", "=x"), "NAME=VALUE"),
    "deadline empty": Case(submit("--deadline", ""), "deadline"),
    "deadline NaN": Case(submit("--deadline", "nan"), "nan"),
    "after without zone": Case(submit("--after", "2099-01-01T00:00"), "timezone"),
    "after unparseable": Case(submit("--after", "soonish"), "soonish"),
    "latest start garbage": Case(submit("--latest-start", "x1"), "x1"),
    "max delay negative": Case(submit("--max-delay", "-5m"), "-5m"),
    "threshold NaN": Case(submit("--threshold", "nan"), "threshold"),
    "threshold infinite": Case(submit("--threshold", "inf"), "threshold"),
    "budget zero": Case(submit("--budget", "0g"), "budget"),
    "budget negative": Case(submit("--budget", "-1kg"), "budget"),
    "budget NaN": Case(submit("--budget", "nan"), "budget"),
    "zone empty": Case(submit("--zone", ""), "zone"),
    "zone with unicode": Case(submit("--zone", "GB\u202e"), "zone"),
    "unknown option": Case(submit("--frobnicate"), "frobnicate"),
    "show a word": Case(("show", "abc"), "abc"),
    "cancel a huge id": Case(("cancel", "99999999999999999999999"), "99999999999999999999999"),
    "history since unparseable": Case(("history", "--since", "yesterday"), "yesterday"),
    "history since without zone": Case(("history", "--since", "2026-01-01T00:00"), "timezone"),
    "history limit negative": Case(("history", "--limit", "-5"), "limit"),
    "policy name with spaces": Case(("policy", "set", "bad name!", "--deadline", "12h"), "bad name!"),
    "policy threshold negative": Case(("policy", "set", "p1", "--threshold", "-1"), "threshold"),
    "policy deadline NaN": Case(("policy", "set", "p1", "--deadline", "nan"), "nan"),
    "run with a zero sample interval": Case(("run", "--sample-interval", "0s"), "0s"),
    "run on an unknown site": Case(("run", "--site", "nowhere"), "nowhere"),
    # -- the config file ------------------------------------------------------------------
    "config nested unknown key": Case(("queue",), "providers", config='[intensity]\nprovider = ["static"]\n'),
    "config wrong type": Case(("queue",), "sampling_interval_s", config='sampling_interval_s = "fast"\n'),
    "config NaN": Case(("queue",), "gpu_w", config="gpu_w = nan\n"),
    "config not TOML": Case(("queue",), "TOML", config="this is = = not toml\n"),
    "config table where a value goes": Case(("queue",), "providers", config="providers = 3\n"),
    "config site wrong type": Case(("queue",), "gpus", config='[sites.a]\ngpus = "two"\n'),
    "config unknown provider": Case(("submit", "--duration", "1h", "--", "true"), "nope",
                                    config='[intensity]\nproviders = ["nope"]\n'),
    "config negative sampling interval": Case(("queue",), "sampling_interval_s", config="sampling_interval_s = -1.0\n"),
    "config negative log cap": Case(("queue",), "log_max_bytes", config="log_max_bytes = -5\n"),
    "config zero slurm poll": Case(("queue",), "slurm_poll_s", config="slurm_poll_s = 0\n"),
    "env var zero slurm poll": Case(("queue",), "CARBONSHIFT_SLURM_POLL_S",
                                    env={"CARBONSHIFT_SLURM_POLL_S": "0"}),
    "env var wrong type": Case(("queue",), "CARBONSHIFT_SAMPLING_INTERVAL_S",
                               env={"CARBONSHIFT_SAMPLING_INTERVAL_S": "abc"}),
    "clock factor negative": Case(("queue",), "positive", env={"CARBONSHIFT_CLOCK": "2026-01-01T00:00Z*-3"}),
    "clock without zone": Case(("queue",), "timezone", env={"CARBONSHIFT_CLOCK": "2026-01-01T00:00"}),
    # -- trace files ----------------------------------------------------------------------
    "trace empty": Case(submit(), "bad.csv", config=BAD_TRACE, setup=_file("bad.csv", b"")),
    "trace header only": Case(submit(), "bad.csv", config=BAD_TRACE,
                              setup=_file("bad.csv", b"time,intensity_g_per_kwh\n")),
    "trace NaN intensity": Case(submit(), "nan", config=BAD_TRACE,
                                setup=_file("bad.csv", b"time,intensity_g_per_kwh\n2026-01-01T00:00Z,nan\n")),
    "trace infinite intensity": Case(submit(), "inf", config=BAD_TRACE,
                                     setup=_file("bad.csv", b"time,intensity_g_per_kwh\n2026-01-01T00:00Z,inf\n")),
    "trace binary garbage": Case(submit(), "bad.csv", config=BAD_TRACE,
                                 setup=_file("bad.csv", b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 20)),
    "trace is a directory": Case(submit(), "bad.csv", config=BAD_TRACE, setup=_dir("bad.csv")),
    "trace missing": Case(submit(), "bad.csv", config=BAD_TRACE),
    # -- the database ---------------------------------------------------------------------
    "db is /dev/null": Case(("--db", "/dev/null", "queue"), "/dev/null"),
    "db another app's SQLite": Case(("--db", "{tmp}/other.db", "queue"), "other.db", setup=lambda cs: _other_sqlite(cs)),
    "db truncated SQLite": Case(("--db", "{tmp}/trunc.db", "queue"), "trunc.db",
                                setup=_file("trunc.db", b"SQLite format 3\x00" + b"\x00" * 10)),
    "db unknown URL scheme": Case(("--db", "mysqlx://h/db", "queue"), "mysqlx"),
    "db empty": Case(("--db", "", "queue"), "db"),
}


def _other_sqlite(cs: CS) -> None:
    con = sqlite3.connect(cs.tmp / "other.db")
    con.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, what TEXT)")
    con.execute("INSERT INTO jobs (what) VALUES ('not ours')")
    con.commit()
    con.close()


def _rows(db: Path) -> int:
    if not db.exists() or not db.is_file():
        return 0
    con = sqlite3.connect(db)
    try:
        n = 0
        for table in ("jobs", "policies", "sites"):
            try:
                n += int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            except sqlite3.Error:
                pass
        return n
    finally:
        con.close()


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(cs: CS, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    case = CASES[name]
    if case.config is not None:
        cs.config.write_text(case.config.format(trace=cs.trace, tmp=cs.tmp))
    if case.setup is not None:
        case.setup(cs)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    args = [a.replace("{tmp}", str(cs.tmp)) for a in case.args]
    other = cs.tmp / "other.db"
    other_before = other.read_bytes() if other.exists() else None
    r = cs(*args)
    assert r.code == 2, (r.code, r.out, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    assert lines[0].startswith("carbonshift: ")
    assert case.needle.lower() in lines[0].lower(), lines[0]
    assert _rows(cs.db_path) == 0  # nothing written
    if other_before is not None:
        assert other.read_bytes() == other_before
