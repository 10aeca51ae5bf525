"""One style across commands (issue 15): durations, numbers, --json, metavars, exit codes.

Every test drives the real CLI (in-process through ``cs``, or as a subprocess where a
signal or a terminal matters) against a private home and database.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.cli.conftest import CS

REPO = Path(__file__).resolve().parents[2]


def test_durations_keep_every_unit_between_the_first_and_the_last(cs: CS) -> None:
    assert cs("policy", "set", "odd", "--deadline", "16h0m3s", "--max-delay", "16h3m").code == 0
    out = cs("policy", "list").out
    assert "finish within 16h00m03s" in out and "delay at most 16h03m" in out, out
    assert "16h3s" not in out
    assert cs("submit", "--name", "long", "--duration", "1h0m5s", "--deadline", "12h", "--", "true").code == 0
    assert "1h00m05s" in cs("queue").out
    assert json.loads(cs("policy", "show", "odd", "--json").out)["deadline_s"] == 16 * 3600 + 3


def _walk_commands() -> list[tuple[str, click.Command]]:
    from scheduler.cli import cli

    out: list[tuple[str, click.Command]] = []

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}".strip())
        else:
            out.append((path, cmd))

    walk(cli, "")
    return out


#: options whose value is a duration or a time, by the words in their names
TIME_WORDS = ("delay", "grace", "duration", "deadline", "interval", "chunk", "warmup", "replan",
              "after", "since", "until", "start", "at")


def test_every_option_says_its_unit_in_its_metavar() -> None:
    bad = []
    for path, cmd in _walk_commands():
        ctx = click.Context(cmd)
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.is_flag or p.hidden or isinstance(p.type, click.Choice):
                continue
            words = p.opts[-1].lstrip("-").split("-")
            metavar = p.make_metavar(ctx)
            if any(w in TIME_WORDS for w in words) and not any(
                    m in metavar for m in ("DURATION", "WHEN", "TIME", "SECONDS")):
                bad.append(f"{path} {p.opts[-1]} {metavar}")
            if "energy" in words and metavar != "ENERGY":
                bad.append(f"{path} {p.opts[-1]} {metavar}")
            if metavar in ("TEXT", "FLOAT") and not any(w in ("name", "description", "w", "pue", "share", "factor")
                                                          for w in words):
                bad.append(f"{path} {p.opts[-1]} {metavar}")
    assert not bad, bad


def test_transfer_energy_means_the_same_in_site_add_as_in_submit(cs: CS) -> None:
    r = cs("site", "add", "paris", "--zone", "TRACE", "--gpus", "0", "--cpus", "0", "--transfer-energy", "1.8MJ", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["transfer_energy_kwh"] == pytest.approx(0.5)
    assert json.loads(cs("site", "add", "old", "--zone", "TRACE", "--gpus", "0", "--cpus", "0", "--transfer-energy-kwh", "0.5",
                         "--json").out)["transfer_energy_kwh"] == pytest.approx(0.5)
    bad = cs("site", "add", "x", "--zone", "TRACE", "--gpus", "0", "--cpus", "0", "--transfer-energy", "0.5")
    assert bad.code == 2 and "'0.5'" in bad.err and "kWh" in bad.err


def test_every_data_command_prints_valid_json(cs: CS, tmp_path: Path) -> None:
    assert cs("submit", "--name", "a", "--duration", "1h", "--deadline", "12h", "--json", "--", "true").code == 0
    assert cs("submit", "--name", "b", "--duration", "1h", "--deadline", "12h", "--", "true").code == 0
    commands = [
        ["queue"], ["queue", "--all"], ["show", "1"], ["history"], ["history", "--since", "all"],
        ["policy", "set", "nightly", "--deadline", "12h"], ["policy", "list"], ["policy", "show", "nightly"],
        ["policy", "rm", "nightly"], ["site", "add", "gb", "--zone", "TRACE", "--gpus", "0", "--cpus", "0"], ["site", "list"],
        ["site", "show", "gb"], ["site", "rm", "gb"], ["zones"], ["forecast", "TRACE"], ["probes"],
        ["report", "--since", "all"], ["db", "check"], ["db", "upgrade"], ["config", "show"], ["config", "path"],
        ["measure", "--no-record", "--", sys.executable, "-c", "pass"],
        ["simulate", "--trace", str(cs.trace), "--jobs", "3", "--warmup", "0s"],
        ["cancel", "1", "2"],
    ]
    for argv in commands:
        r = cs(*argv, "--json") if argv[0] != "measure" else cs("measure", "--json", *argv[1:])
        assert r.code == 0, (argv, r.err)
        json.loads(r.out)  # stdout is one JSON document, nothing else
    # a cancelled job: `wait` exits as its --help says (1), still with JSON
    r = cs("wait", "1", "--json")
    assert r.code == 1 and json.loads(r.out)["state"] == "cancelled"
    assert "1 if it was cancelled or lost" in " ".join(cs("wait", "--help").out.split())


def test_history_json_flag_limit_newest_and_since_all(cs: CS) -> None:
    for name in ("first", "second", "third"):
        assert cs("submit", "--name", name, "--duration", "1h", "--", "true").code == 0
    rows = json.loads(cs("history", "--json").out)
    assert [r["name"] for r in rows] == ["first", "second", "third"]
    assert json.loads(cs("history", "--format", "json").out) == rows
    assert [r["name"] for r in json.loads(cs("history", "--json", "--limit", "2").out)] == ["second", "third"]
    assert len(json.loads(cs("history", "--json", "--since", "all").out)) == 3
    clash = cs("history", "--json", "--format", "csv")
    assert clash.code == 2 and "--format csv" in clash.err


def test_cancel_takes_several_ids_and_cancels_none_if_one_is_bad(cs: CS) -> None:
    for _ in range(3):
        assert cs("submit", "--duration", "1h", "--", "true").code == 0
    r = cs("cancel", "1", "2", "9")
    assert r.code == 2 and "9" in r.err and len(r.err.strip().splitlines()) == 1
    assert {j["state"] for j in json.loads(cs("queue", "--json").out)} == {"planned"}
    r = cs("cancel", "1", "3")
    assert r.code == 0 and r.out.splitlines() == ["job 1 cancelled", "job 3 cancelled"]
    assert [j["id"] for j in json.loads(cs("queue", "--json").out)] == [2]
    again = cs("cancel", "2", "3")
    assert again.code == 2 and "job 3 is already cancelled" in again.err
    assert [j["id"] for j in json.loads(cs("queue", "--json").out)] == [2]


def _start_daemon(cs: CS) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(HOME=str(cs.home), XDG_DATA_HOME=str(cs.data), XDG_CONFIG_HOME=str(cs.tmp / "config"),
               CARBONSHIFT_CONFIG=str(cs.config), PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())", "run"],
        env=env, cwd=str(cs.tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_run_exits_130_on_ctrl_c_and_0_on_sigterm_with_iso_stamps(cs: CS, sig: int, code: int) -> None:
    proc = _start_daemon(cs)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "... daemon     started ...": it has its handlers now
        assert "daemon     started" in first, first
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, first + rest
    for line in (first + rest).splitlines():
        stamp = line.split(" ", 1)[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp), line


E_NOTATION = re.compile(r"\d[eE][+-]?\d")


def test_figures_never_use_e_notation_and_comparisons_read_the_right_way(cs: CS, tmp_path: Path) -> None:
    """A seconds-long job (micrograms, milliwatt-hours) whose run-now figure is below what
    it emitted, a planner estimate 690,000 times and a live projection 25 times the final
    figures: every figure is
    plain decimals with a prefix picked for it, the negative saving says "more", and the
    estimates say how many times too high, not "+68795961%"."""
    from datetime import UTC, datetime, timedelta

    from scheduler.model import Event, JobState, Run
    from scheduler.storage.store import open_store
    from tests.report.report_seed import _acct, _job

    db = tmp_path / "tiny.db"
    store = open_store(f"sqlite:///{db}")
    try:
        t0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
        job = store.add_job(_job("tiny", "alice", "default", "local", 0, t0, JobState.SUCCEEDED, None,
                                 duration_h=0.01, expected_g=25.2, run_now_g=20.0, planned=t0))
        assert job.id is not None
        run = store.add_run(Run(job_id=job.id, site="local", executor="local", started_at=t0, host="h",
                                state=JobState.SUCCEEDED))
        assert run.id is not None
        run.finished_at, run.exit_code = t0 + timedelta(seconds=30), 0
        store.update_run(run)
        store.set_accounting(run.id, _acct(2.5e-6, 3.663e-05, 1.0e-05, 1.0, 1.0))
        store.add_event(Event(job.id, t0 + timedelta(seconds=20), "projection",
                              "projected total 0.0625 Wh, 0.5 gCO2e at 50.0% done (basis progress: epoch 1/2; 9 W now)"))
    finally:
        store.close()
    outputs = {}
    for argv in (["history"], ["show", "1"], ["report", "--since", "all"], ["report", "--since", "all", "--by", "job"]):
        r = cs("--db", str(db), *argv)
        assert r.code == 0, r.err
        outputs[" ".join(argv)] = r.out
        assert not E_NOTATION.search(r.out), (argv, r.out)
    assert "2.50 mWh" in outputs["history"] and "36.6 µg" in outputs["history"], outputs["history"]
    assert "26.6 µg more" in outputs["history"] and "-26.6" not in outputs["history"]
    show = outputs["show 1"]
    assert "projected 62.5 mWh" in show and "final 2.50 mWh" in show, show
    assert "the projection was 25x too high" in show, show
    assert "+" not in show.split("projected", 1)[1], show
    assert "26.6 µg more" in show
    assert "the planner expected 25.2 g" in outputs["report --since all"]
    assert "(690,000x too high)" in outputs["report --since all"], outputs["report --since all"]


def test_one_time_rule_local_with_zone_utc_with_flag_iso_z_in_json(cs: CS) -> None:
    """README: tables show local time with its zone, or UTC with --utc; JSON ISO 8601 with Z."""
    assert cs("submit", "--name", "t", "--duration", "1h", "--deadline", "12h", "--", "true").code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(HOME=str(cs.home), XDG_DATA_HOME=str(cs.data), XDG_CONFIG_HOME=str(cs.tmp / "config"),
               CARBONSHIFT_CONFIG=str(cs.config), PYTHONPATH=str(REPO), TZ="America/New_York")

    def cli(*args: str) -> str:
        r = subprocess.run([sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
                            *args], env=env, capture_output=True, text=True, timeout=120, cwd=str(cs.tmp))
        assert r.returncode == 0, r.stderr
        return r.stdout

    local, utc = cli("queue"), cli("--utc", "queue")
    assert re.search(r"\d\d:\d\d E[SD]T", local) and " UTC" not in local, local
    assert re.search(r"\d\d:\d\d UTC", utc) and "EST" not in utc and "EDT" not in utc, utc
    (job,) = json.loads(cli("queue", "--json"))
    for key in ("planned_start", "deadline", "submitted_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", job[key]), job[key]


def test_wait_on_a_job_cancelled_while_running_exits_1_as_its_help_says(cs: CS) -> None:
    """The run of a cancelled job ends by SIGTERM (its run records exit code 143); `wait`
    exits 1, as its --help says, not 143."""
    import time

    r = cs("submit", "--name", "sleeper", "--duration", "10m", "--now", "--json", "--",
           sys.executable, "-c", "import time; time.sleep(120)")
    assert r.code == 0, r.err
    proc = _start_daemon(cs)
    try:
        deadline = time.monotonic() + 90
        while json.loads(cs("show", "1", "--json").out)["state"] != "running":
            assert time.monotonic() < deadline and proc.poll() is None, "the job never started"
            time.sleep(0.3)
        assert cs("cancel", "1", "--grace", "5s").code == 0
        runs: list[dict[str, object]] = []
        while not runs or runs[-1]["finished_at"] is None:  # the daemon closes the run
            assert time.monotonic() < deadline, runs
            time.sleep(0.3)
            runs = json.loads(cs("show", "1", "--json").out)["runs"]
        waited = cs("wait", "1", "--quiet")
        assert waited.code == 1, (waited, runs)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


#: commands that print no data of their own: a job's output, an event stream, a server,
#: a script, a file written
NOT_DATA = {"logs", "run", "dashboard", "completion", "config init"}


def test_every_command_that_prints_data_has_json() -> None:
    missing = [path for path, cmd in _walk_commands()
               if path not in NOT_DATA and not any("--json" in getattr(p, "opts", []) for p in cmd.params)]
    assert not missing, missing

