"""`submit` of interruptible jobs and per-job transfer figures; `show` and `queue --json`
with the planned intervals (the real CLI on a trace with a dirty hour an hour from now)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.cli.conftest import CS


def dirty_hour_ahead(cs: CS) -> datetime:
    """Point the config at a trace: clean next hour, dirty the one after, clean the third,
    dirty afterwards. Returns the start of the next hour."""
    h0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    values = {h0 + timedelta(hours=1): 100, h0 + timedelta(hours=2): 600, h0 + timedelta(hours=3): 100}
    trace = cs.tmp / "dirty.csv"
    with trace.open("w") as f:
        f.write("time,intensity_g_per_kwh\n")
        for i in range(-48, 48):
            t = h0 + timedelta(hours=i)
            f.write(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{values.get(t, 500 if i > 3 else 300)}\n")
    cs.config.write_text(f'default_zone = "TRACE"\n[intensity]\nproviders = ["replay"]\ntrace = "{trace}"\n')
    return h0 + timedelta(hours=1)


def test_an_interruptible_submit_shows_its_intervals_everywhere(cs: CS) -> None:
    first = dirty_hour_ahead(cs)
    r = cs("submit", "--json", "--duration", "2h", "--deadline", "4h", "--pause-mode", "checkpoint",
           "--pause-signal", "usr2", "--pause-grace", "30s", "--", "python", "train.py")
    assert r.code == 0, r.err
    sub = json.loads(r.out)
    want = [{"start": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "end": (first + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
            {"start": (first + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "end": (first + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")}]
    assert sub["intervals"] == want
    shown = json.loads(cs("show", str(sub["id"]), "--json").out)
    assert shown["intervals"] == want and shown["interruptible"] is True
    assert (shown["pause_mode"], shown["pause_signal"], shown["pause_grace_s"]) == ("checkpoint", "SIGUSR2", 30.0)
    (queued,) = json.loads(cs("queue", "--json").out)
    assert queued["intervals"] == want
    text = cs("--utc", "show", str(sub["id"])).out
    assert "intervals" in text and "paused between them: checkpoint, SIGUSR2" in text
    human = cs("submit", "--duration", "2h", "--deadline", "4h", "--interruptible", "--", "true")
    assert "in 2 intervals" in human.out and "(stop)" in human.out


def test_a_job_that_is_not_split_has_one_interval(cs: CS) -> None:
    dirty_hour_ahead(cs)
    r = cs("submit", "--json", "--duration", "1h", "--deadline", "3h", "--", "true")
    sub = json.loads(r.out)
    assert len(sub["intervals"]) == 1 and sub["intervals"][0]["start"] == sub["planned_start"]
    (queued,) = json.loads(cs("queue", "--json").out)
    assert queued["intervals"] == sub["intervals"] and queued["pause_mode"] is None


def test_transfer_figures_are_stored(cs: CS) -> None:
    r = cs("submit", "--json", "--duration", "1h", "--transfer-delay", "30m",
           "--transfer-energy", "0.5kWh", "--", "true")
    assert r.code == 0, r.err
    shown = json.loads(cs("show", str(json.loads(r.out)["id"]), "--json").out)
    assert shown["transfer_delay_s"] == 1800 and shown["transfer_energy_j"] == 1.8e6
    r = cs("submit", "--json", "--duration", "1h", "--transfer-delay", "0", "--transfer-energy", "1.8MJ",
           "--", "true")
    shown = json.loads(cs("show", str(json.loads(r.out)["id"]), "--json").out)
    assert shown["transfer_delay_s"] == 0 and shown["transfer_energy_j"] == 1.8e6


def test_the_python_api_takes_the_same_figures(cs: CS) -> None:
    from scheduler import Client
    from scheduler.errors import BadInput

    first = dirty_hour_ahead(cs)
    with Client(env={"HOME": str(cs.home), "CARBONSHIFT_CONFIG": str(cs.config),
                     "XDG_DATA_HOME": str(cs.data), "PATH": "/usr/bin:/bin"}) as c:
        job = c.submit(["python", "train.py"], duration="2h", deadline="4h", pause_mode="checkpoint",
                       pause_grace=timedelta(minutes=2), transfer_delay=0, transfer_energy=2.5e5)
        assert job.interruptible and (job.pause_mode, job.pause_signal, job.pause_grace_s) == (
            "checkpoint", "SIGUSR1", 120.0)
        assert (job.transfer_delay_s, job.transfer_energy_j) == (0, 2.5e5)
        assert c.app.store.planned_intervals([job.id])[job.id][0][0] == first  # type: ignore[list-item,index]
        try:
            c.submit("true", duration="1h", transfer_energy="lots")
        except BadInput as exc:
            assert "lots" in str(exc)
        else:
            raise AssertionError("a bad transfer energy was accepted")


def test_bad_pause_settings_in_the_config_are_refused(cs: CS) -> None:
    cs.config.write_text('default_zone = "TRACE"\npause_mode = "nap"\n')
    r = cs("queue")
    assert r.code == 2 and "nap" in r.err and len(r.err.strip().splitlines()) == 1
    cs.config.write_text('default_zone = "TRACE"\npause_signal = "SIGKILL"\n')
    r = cs("queue")
    assert r.code == 2 and "SIGKILL" in r.err


def test_the_queue_table_shows_a_split_job_and_when_a_paused_job_resumes(cs: CS) -> None:
    first = dirty_hour_ahead(cs)
    sub = json.loads(cs("submit", "--json", "--duration", "2h", "--deadline", "4h", "--interruptible",
                        "--", "true").out)
    row = next(line for line in cs("--utc", "queue").out.splitlines() if line.split()[:1] == [str(sub["id"])])
    assert f"{first:%H:%M}" in row and "(+1 interval)" in row
    # the same job paused (its first interval ended before its second starts): the cell
    # names the next interval
    import sqlite3

    with sqlite3.connect(cs.db_path) as con:
        con.execute("UPDATE jobs SET state = 'suspended' WHERE id = ?", (sub["id"],))
    row = next(line for line in cs("--utc", "queue").out.splitlines() if line.split()[:1] == [str(sub["id"])])
    assert f"paused, resumes {first:%Y-%m-%d %H:%M}" in row  # the first interval has not ended yet
