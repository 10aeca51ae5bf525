"""Bad input across the CLI, the config file, trace files, provider setup and the database.

Each row gets one line on stderr naming the problem, exit code 2, no traceback, and nothing
written (no job, no policy, no site). Issue 2's table (tests/cli/test_bad_input.py) covers
the first dozen submit mistakes; this one adds wrong types, huge values, NaN and infinity,
empty strings, unicode and control characters, times without a zone and broken files;
issue 16's rows (marked below) add huge counts, contradictory policies, output files in
missing folders, simulate's bounds and workload files, replayed provider answers that are
garbage, and database URLs that cannot work. "Nothing written" is checked on the files:
no file under the test's folder is created, changed or removed by the refused command.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from intensity.providers.replay import SHIPPED_TRACE
from tests.cli.conftest import CS

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HUGE = "10000000000000000000000"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    needle: str  # a word of the message, naming the value or the problem
    config: str | None = None  # replaces the config file's text (the trace path is {trace})
    setup: Callable[[CS], object] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def prepare(self, cs: CS, mp: pytest.MonkeyPatch) -> None:
        """Write the case's config, run its setup and set its environment in ``cs``."""
        if self.config is not None:
            cs.config.write_text(self.config.format(trace=cs.trace, tmp=cs.tmp))
        if self.setup is not None:
            self.setup(cs)
        for key, value in self.env.items():
            mp.setenv(key, value)


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


def simulate(*flags: str) -> tuple[str, ...]:
    return ("simulate", "--trace", str(SHIPPED_TRACE), *flags)


def workload(data: bytes) -> Callable[[CS], None]:
    return _file("w.csv", data)


def _recorded(relative: str, name: str) -> Callable[[CS], None]:
    """A recorded provider answer from ../shared/data (a small stand-in when it is absent)."""
    def make(cs: CS) -> None:
        src = SHARED / relative
        data = src.read_bytes() if src.is_file() else b'{"data": [{"from": "2023-03-01T00:00Z", "intensity": {}}]}'
        (cs.tmp / name).write_bytes(data)
    return make


W_HEAD = b"submit,duration,deadline,gpus,cpus,power_w\n"
W_OK_ROW = b"2023-03-10T00:00Z,3600,12h,1,0,300\n"
PORTAL_HEAD = "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO\u2082eq/kWh (direct),Carbon Intensity gCO\u2082eq/kWh (LCA)\n"

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
    # an unknown id on a fresh data folder: refused before any database is made
    "cancel an unknown id": Case(("cancel", "9999"), "9999"),
    "show an unknown id": Case(("show", "9999"), "9999"),
    "logs of an unknown id": Case(("logs", "9999"), "9999"),
    "wait for an unknown id": Case(("wait", "9999"), "9999"),
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
    # -- issue 16: huge counts ------------------------------------------------------------
    "gpus huge": Case(submit("--gpus", HUGE), HUGE),
    "gpus just over the bound": Case(submit("--gpus", "1025"), "1025"),
    "cpus huge": Case(submit("--cpus", HUGE), HUGE),
    "site add gpus huge": Case(("site", "add", "s1", "--zone", "TRACE", "--gpus", HUGE), HUGE),
    "site add cpus huge": Case(("site", "add", "s1", "--zone", "TRACE", "--gpus", "1", "--cpus", HUGE), HUGE),
    "site add gpus negative": Case(("site", "add", "s1", "--zone", "TRACE", "--gpus", "-1"), "-1"),
    "site add pue NaN": Case(("site", "add", "s1", "--zone", "TRACE", "--gpus", "1", "--pue", "nan"), "pue"),
    "site add bad name": Case(("site", "add", "bad name!", "--zone", "TRACE", "--gpus", "1"), "bad name!"),
    "site add transfer delay garbage": Case(("site", "add", "s1", "--zone", "TRACE", "--gpus", "1",
                                             "--transfer-delay", "soonish"), "soonish"),
    "site add transfer energy without unit": Case(("site", "add", "s1", "--zone", "TRACE", "--gpus", "1",
                                                   "--transfer-energy", "5"), "'5'"),
    # -- issue 16: environment entries ----------------------------------------------------
    "env name with newline": Case(submit("--env", "A\nB=1"), "environment name"),
    "env name with a space": Case(submit("--env", "A B=1"), "A B"),
    "env name starting with a digit": Case(submit("--env", "1A=x"), "1A"),
    "env value with NUL": Case(submit("--env", "A=x\x00y"), "NUL"),
    # -- issue 16: contradictory policies and descriptions --------------------------------
    "now with a threshold": Case(submit("--now", "--threshold", "150"), "--now"),
    "latest start after the deadline": Case(submit("--deadline", "5h", "--latest-start", "10h"), "latest start"),
    "policy now with a threshold": Case(("policy", "set", "p1", "--now", "--threshold", "150"), "150"),
    "policy latest start after the deadline": Case(("policy", "set", "p1", "--deadline", "5h",
                                                    "--latest-start", "10h"), "10h"),
    "policy description with newline": Case(("policy", "set", "p1", "--deadline", "5h",
                                             "--description", "x\np2  fake row"), "control character"),
    "policy description with escape": Case(("policy", "set", "p1", "--description", "\x1b[2Jclear"),
                                           "control character"),
    "policy description too long": Case(("policy", "set", "p1", "--description", "d" * 300), "300"),
    "policy budget garbage": Case(("policy", "set", "p1", "--budget", "lots"), "lots"),
    "policy max delay garbage": Case(("policy", "set", "p1", "--max-delay", "a while"), "a while"),
    # -- issue 16: history, report, forecast, logs, wait ----------------------------------
    "history until before since": Case(("history", "--since", "2026-01-02T00:00Z", "--until", "2026-01-01T00:00Z"),
                                       "--until"),
    "history until unparseable": Case(("history", "--until", "later"), "later"),
    "history limit zero": Case(("history", "--limit", "0"), "limit"),
    "history format unknown": Case(("history", "--format", "xml"), "xml"),
    "report carbon price unknown currency": Case(("report", "--carbon-price", "80XYZ/t"), "80XYZ/t"),
    "report carbon price unknown mass": Case(("report", "--carbon-price", "80EUR/lb"), "lb"),
    "report carbon price negative": Case(("report", "--carbon-price", "-5/t"), "-5/t"),
    "report carbon price in the config": Case(("report",), "80XYZ/t", config='carbon_price = "80XYZ/t"\n' + BASE),
    "report until before since": Case(("report", "--since", "2026-01-02T00:00Z", "--until", "2026-01-01T00:00Z"),
                                      "--until"),
    "report by year": Case(("report", "--by", "year"), "year"),
    "report svg into a missing folder": Case(("report", "--svg", "{tmp}/nope/r.svg"), "nope"),
    "report png into a missing folder": Case(("report", "--png", "{tmp}/nope/r.png"), "nope"),
    "report svg onto a folder": Case(("report", "--svg", "{tmp}"), "directory"),
    "forecast svg into a missing folder": Case(("forecast", "TRACE", "--svg", "{tmp}/nope/f.svg"), "nope"),
    "forecast png into a missing folder": Case(("forecast", "TRACE", "--png", "{tmp}/nope/f.png"), "nope"),
    "forecast unknown zone": Case(("forecast", "NOWHERE"), "NOWHERE"),
    "forecast duration garbage": Case(("forecast", "TRACE", "--duration", "xyz"), "xyz"),
    "forecast deadline before the duration": Case(("forecast", "TRACE", "--duration", "3h", "--deadline", "1h"),
                                                  "deadline"),
    "forecast at without zone": Case(("forecast", "TRACE", "--at", "2026-01-01T00:00"), "timezone"),
    "logs tail negative": Case(("logs", "1", "--tail", "-5"), "-5"),
    "logs a word": Case(("logs", "abc"), "abc"),
    "wait a word": Case(("wait", "abc"), "abc"),
    "wait-window duration garbage": Case(("wait-window", "--duration", "soon"), "soon"),
    "measure interval zero": Case(("measure", "--interval", "0", "--", "true"), "interval"),
    "measure gpu list garbage": Case(("measure", "--gpus", "0,x", "--", "true"), "0,x"),
    "dashboard port out of range": Case(("dashboard", "--port", "99999"), "99999"),
    "completion unknown shell": Case(("completion", "tcsh2"), "tcsh2"),
    # -- issue 16: simulate and workload files --------------------------------------------
    "simulate jobs beyond the bound": Case(simulate("--jobs", "1000000000000"), "1000000000000"),
    "simulate jobs zero": Case(simulate("--jobs", "0"), "--jobs 0"),
    "simulate power negative": Case(simulate("--jobs", "5", "--power-w", "-300"), "-300"),
    "simulate power NaN": Case(simulate("--jobs", "5", "--power-w", "nan"), "nan"),
    "simulate max pauses below -1": Case(simulate("--jobs", "5", "--max-pauses", "-5"), "-5"),
    "simulate gpus huge": Case(simulate("--jobs", "5", "--gpus", HUGE), HUGE),
    "simulate job gpus huge": Case(simulate("--jobs", "5", "--job-gpus", "5000"), "5000"),
    "simulate interruptible share 2": Case(simulate("--jobs", "5", "--interruptible-share", "2"), "2"),
    "simulate pue below 1": Case(simulate("--jobs", "5", "--pue", "0.5"), "0.5"),
    "simulate duration range reversed": Case(simulate("--jobs", "5", "--duration", "8h-1h"), "8h-1h"),
    "simulate trace missing": Case(("simulate", "--trace", "{tmp}/none.csv"), "none.csv"),
    "simulate vintages without a file": Case(simulate("--jobs", "5", "--forecast", "vintages"), "--vintages"),
    "workload binary": Case(simulate("--workload", "{tmp}/w.csv"), "w.csv",
                            setup=workload(b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 50)),
    "workload with NUL bytes": Case(simulate("--workload", "{tmp}/w.csv"), "w.csv",
                                    setup=workload(W_HEAD + b"2023-03-10T00:00Z,36\x0000,12h\n")),
    "workload empty": Case(simulate("--workload", "{tmp}/w.csv"), "no jobs", setup=workload(b"")),
    "workload without a submit column": Case(simulate("--workload", "{tmp}/w.csv"), "submit",
                                             setup=workload(b"duration,deadline\n3600,12h\n")),
    "workload short row": Case(simulate("--workload", "{tmp}/w.csv"), "line 2",
                               setup=workload(W_HEAD + b"2023-03-10T00:00Z\n")),
    "workload gpus huge": Case(simulate("--workload", "{tmp}/w.csv"), HUGE,
                               setup=workload(W_HEAD + f"2023-03-10T00:00Z,3600,12h,{HUGE},0,300\n".encode())),
    "workload power negative": Case(simulate("--workload", "{tmp}/w.csv"), "-300",
                                    setup=workload(W_HEAD + b"2023-03-10T00:00Z,3600,12h,1,0,-300\n")),
    "workload duration huge": Case(simulate("--workload", "{tmp}/w.csv"), "year",
                                   setup=workload(W_HEAD + b"2023-03-10T00:00Z,99999999999999,12h,1,0,300\n")),
    "workload time without zone": Case(simulate("--workload", "{tmp}/w.csv"), "timezone",
                                       setup=workload(W_HEAD + W_OK_ROW + b"2023-03-10T00:00,3600,12h,1,0,300\n")),
    "workload is a folder": Case(simulate("--workload", "{tmp}/wdir"), "wdir", setup=_dir("wdir")),
    # -- issue 16: replayed provider answers and trace specs ------------------------------
    "replay a recorded JSON answer as a trace": Case(("--replay", "GB={tmp}/resp.json", "queue"), "resp.json",
                                                     setup=_recorded("uk-carbon-intensity-api/response.json",
                                                                     "resp.json")),
    "replay a recorded 'no data' answer": Case(("--replay", "GB={tmp}/nodata.json", "queue"), "nodata.json",
                                               setup=_recorded("uk-carbon-intensity-api/no-data-response.json",
                                                               "nodata.json")),
    "replay a portal CSV with a word for intensity": Case(
        ("--replay", "GB={tmp}/portal.csv", "queue"), "portal.csv",
        setup=_file("portal.csv", (PORTAL_HEAD + "2023-03-01 00:00:00,UK,Great Britain,GB,abc,def\n").encode())),
    "replay a portal CSV of another zone": Case(
        ("--replay", "GB={tmp}/portal.csv", "queue"), "DE",
        setup=_file("portal.csv", (PORTAL_HEAD + "2023-03-01 00:00:00,DE,Germany,DE,300,350\n"
                                   "2023-03-01 01:00:00,DE,Germany,DE,300,350\n").encode())),
    "replay spec without =": Case(("--replay", "GB", "queue"), "ZONE=FILE"),
    "replay spec to a missing file": Case(("--replay", "GB={tmp}/no.csv", "queue"), "no.csv"),
    "clock garbage": Case(("--clock", "whenever", "queue"), "whenever"),
    "clock factor NaN": Case(("--clock", "2026-01-01T00:00Z*nan", "queue"), "nan"),
    "config site gpus huge": Case(("queue",), "sites.a.gpus", config='[sites.a]\nzone = "GB"\ngpus = 100000000\n'),
    "config not UTF-8": Case(("queue",), "TOML", setup=lambda cs: cs.config.write_bytes(b"x = '\xff'\n")),
    # -- issue 16: database URLs ------------------------------------------------------------
    "db in memory": Case(("--db", "sqlite://", "submit", "--duration", "1h", "--", "true"), "sqlite://"),
    "db :memory:": Case(("--db", "sqlite:///:memory:", "queue"), "in-memory"),
    "db in memory from the environment": Case(("queue",), "sqlite://", env={"CARBONSHIFT_DB": "sqlite://"}),
    "db in memory from the config": Case(("queue",), "sqlite://", config='db = "sqlite://"\n' + BASE),
    "db PostgreSQL port too large": Case(("--db", "postgresql://postgres@127.0.0.1:99999/test", "queue"), "99999"),
    "db PostgreSQL port zero": Case(("--db", "postgresql://postgres@127.0.0.1:0/test", "queue"), "port"),
    "db PostgreSQL port a word, password kept out": Case(("--db", "postgresql://u:s3cret@127.0.0.1:abc/test", "queue"),
                                                         "abc"),
    "db folder missing for a read-only queue": Case(("--db", "{tmp}/missing/dir/cs.db", "queue"), "missing"),
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


def _files(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under ``root`` with its size and modification time (``None``: a folder)."""
    out: dict[str, tuple[int, int] | None] = {}
    for folder, dirs, names in os.walk(root):
        for d in dirs:
            out[os.path.join(folder, d)] = None
        for n in names:
            st = os.lstat(os.path.join(folder, n))
            out[os.path.join(folder, n)] = (st.st_size, st.st_mtime_ns)
    return out


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(cs: CS, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    case = CASES[name]
    case.prepare(cs, monkeypatch)
    args = [a.replace("{tmp}", str(cs.tmp)) for a in case.args]
    other = cs.tmp / "other.db"
    other_before = other.read_bytes() if other.exists() else None
    files_before = _files(cs.tmp)
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
    files_after = _files(cs.tmp)
    changed = sorted(p for p in files_before.keys() | files_after.keys() if files_before.get(p, 0) != files_after.get(p, 0))
    assert not changed, changed  # no database, folder, chart or cache file made or touched
    assert "s3cret" not in r.err + r.out
