"""``carbonshift site``: add, list, show, rm, with --json, and bad input (exit 2)."""

from __future__ import annotations

import json


def test_the_default_local_site_exists_from_the_first_run(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("site", "list", "--json")
    assert r.code == 0, r.err
    sites = json.loads(r.out)
    assert [s["name"] for s in sites] == ["local"]
    assert sites[0]["zone"] == "TRACE" and sites[0]["stored"] is False


def test_add_show_list_rm_round_trip(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("site", "add", "nordic", "--zone", "SE", "--gpus", "8", "--cpus", "64", "--executor", "slurm",
           "--pue", "1.2", "--transfer-delay", "30m", "--transfer-energy-kwh", "2.5", "--json")
    assert r.code == 0, r.err
    added = json.loads(r.out)
    assert added == {
        "name": "nordic", "zone": "SE", "executor": "slurm", "gpus": 8, "cpus": 64, "pue": 1.2,
        "transfer_delay_s": 1800, "transfer_energy_kwh": 2.5, "stored": True,
    }
    shown = json.loads(cs("site", "show", "nordic", "--json").out)
    assert shown["gpus"] == 8 and shown["waiting_jobs"] == 0 and shown["running_jobs"] == 0
    listed = {s["name"]: s for s in json.loads(cs("site", "list", "--json").out)}
    assert set(listed) == {"local", "nordic"}
    text = cs("site", "list").out
    assert "nordic" in text and "slurm" in text and "30m" in text
    # replacing keeps one row
    assert cs("site", "add", "nordic", "--zone", "SE", "--gpus", "4").code == 0
    assert json.loads(cs("site", "show", "nordic", "--json").out)["gpus"] == 4
    r = cs("site", "rm", "nordic", "--json")
    assert r.code == 0 and json.loads(r.out) == {"removed": "nordic"}
    assert [s["name"] for s in json.loads(cs("site", "list", "--json").out)] == ["local"]


def test_overriding_local_and_removing_the_override(cs) -> None:  # type: ignore[no-untyped-def]
    assert cs("site", "add", "local", "--zone", "GB", "--gpus", "2").code == 0
    local = json.loads(cs("site", "show", "local", "--json").out)
    assert local["zone"] == "GB" and local["gpus"] == 2 and local["stored"] is True
    assert cs("site", "rm", "local").code == 0
    assert json.loads(cs("site", "show", "local", "--json").out)["stored"] is False
    r = cs("site", "rm", "local")
    assert r.code == 2 and "built-in default" in r.err


def test_a_site_with_waiting_jobs_is_not_removed(cs) -> None:  # type: ignore[no-untyped-def]
    assert cs("site", "add", "gpu-box", "--zone", "TRACE", "--gpus", "4").code == 0
    r = cs("submit", "--site", "gpu-box", "--duration", "1h", "--deadline", "12h", "--", "true")
    assert r.code == 0, r.err
    r = cs("site", "rm", "gpu-box")
    assert r.code == 2 and "unfinished" in r.err
    assert json.loads(cs("site", "show", "gpu-box", "--json").out)["waiting_jobs"] == 1


def test_bad_input_is_one_line_and_exit_2(cs) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (("site", "add", "x", "--zone", "NOWHERE", "--gpus", "1"), "NOWHERE"),
        (("site", "add", "x", "--zone", "GB", "--gpus", "-1"), "--gpus -1"),
        (("site", "add", "x", "--zone", "GB", "--gpus", "1", "--cpus", "-2"), "--cpus -2"),
        (("site", "add", "x", "--zone", "GB", "--gpus", "1", "--pue", "0.5"), "--pue 0.5"),
        (("site", "add", "x", "--zone", "GB", "--gpus", "1", "--transfer-delay", "soon"), "soon"),
        (("site", "add", "x", "--zone", "GB", "--gpus", "1", "--transfer-energy-kwh", "-1"), "-1"),
        (("site", "add", "bad name!", "--zone", "GB", "--gpus", "1"), "bad name!"),
        (("site", "add", "x", "--zone", "GB"), "--gpus"),
        (("site", "show", "nope"), "nope"),
        (("site", "rm", "nope"), "nope"),
    ]
    for args, needle in cases:
        r = cs(*args)
        assert r.code == 2, (args, r.err)
        assert needle in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) == 1, r.err
    assert [s["name"] for s in json.loads(cs("site", "list", "--json").out)] == ["local"]


def test_a_submit_that_cannot_fit_by_its_deadline_is_refused_with_the_earliest_finish(cs) -> None:  # type: ignore[no-untyped-def]
    assert cs("site", "add", "box", "--zone", "TRACE", "--gpus", "1").code == 0
    first = cs("submit", "--json", "--site", "box", "--gpus", "1", "--duration", "2h", "--deadline", "3h",
               "--", "true")
    assert first.code == 0, first.err
    r = cs("submit", "--site", "box", "--gpus", "1", "--duration", "2h", "--deadline", "3h", "--", "true")
    assert r.code == 2, r.err
    assert "earliest finish that fits" in r.err and "--deadline" in r.err
    assert len(r.err.strip().splitlines()) == 1
    # with room after the first job, it is accepted and does not overlap it
    ok = cs("submit", "--json", "--site", "box", "--gpus", "1", "--duration", "2h", "--deadline", "6h",
            "--", "true")
    assert ok.code == 0, ok.err
    a, b = json.loads(first.out), json.loads(ok.out)
    from datetime import datetime, timedelta

    sa = datetime.fromisoformat(a["planned_start"].replace("Z", "+00:00"))
    sb = datetime.fromisoformat(b["planned_start"].replace("Z", "+00:00"))
    assert sb >= sa + timedelta(hours=2) or sb + timedelta(hours=2) <= sa
    # a job that needs no GPU is not limited by the GPU capacity
    assert cs("submit", "--site", "box", "--duration", "2h", "--deadline", "3h", "--", "true").code == 0
