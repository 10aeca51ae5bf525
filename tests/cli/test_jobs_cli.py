"""The job commands end to end through the real CLI: submit, queue, show, policy, history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from scheduler.app import App
from scheduler.config import load_settings


def _count_jobs(cs) -> int:  # type: ignore[no-untyped-def]
    if not cs.db_path.exists():
        return 0
    app = App(load_settings(env={}, overrides={"db": f"sqlite:///{cs.db_path}"}))
    try:
        return len(app.store.list_jobs())
    finally:
        app.close()


def test_submit_json_plans_into_the_cleanest_window(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("submit", "--json", "--name", "bert-ft", "--duration", "3h", "--deadline", "12h",
           "--power-w", "300", "--", "python", "train.py")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["id"] == 1
    assert data["name"] == "bert-ft"
    assert data["zone"] == "TRACE"
    assert data["site"] == "local"
    assert data["state"] == "planned"
    assert set(data) >= {"id", "planned_start", "site", "zone", "expected_g", "run_now_g"}
    # never worse than running now, and within the deadline
    assert data["expected_g"] <= data["run_now_g"] + 1e-9
    start = datetime.fromisoformat(data["planned_start"].replace("Z", "+00:00"))
    deadline = datetime.fromisoformat(data["deadline"].replace("Z", "+00:00"))
    assert start + timedelta(hours=3) <= deadline
    assert data["plan_source"].startswith("replay")
    assert data["fallback"] is False
    # 300 W for 3 h at the window's mean intensity
    assert abs(data["expected_g"] - 0.3 * 3 * data["mean_intensity_g_per_kwh"]) < 1e-6 * data["expected_g"]


def test_submit_human_output_queue_show_and_history(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("submit", "--name", "job-a", "--duration", "1h", "--", "echo", "hi")
    assert r.code == 0, r.err
    assert r.out.startswith("job 1 'job-a' planned for ")
    q = cs("queue", "--json")
    rows = json.loads(q.out)
    assert [row["name"] for row in rows] == ["job-a"]
    assert rows[0]["argv"] == ["echo", "hi"]
    s = cs("show", "1")
    assert s.code == 0 and "job-a" in s.out and "submitted" in s.out
    h = cs("history", "--format", "json")
    data = json.loads(h.out)
    assert data[0]["id"] == 1 and data[0]["state"] == "planned"
    for key in ("id", "name", "state", "submitted_at", "planned_start", "started_at", "finished_at",
                "zone", "energy_kwh", "emissions_g", "counterfactual_g", "saved_g", "exit_code",
                "energy_method", "intensity_kind"):
        assert key in data[0]
    c = cs("history", "--format", "csv")
    assert c.out.splitlines()[0].startswith("id,name,state")


def test_policy_set_then_submit_with_it(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("policy", "set", "nightly", "--deadline", "12h", "--threshold", "150")
    assert r.code == 0, r.err
    lst = json.loads(cs("policy", "list", "--json").out)
    names = {p["name"]: p for p in lst}
    assert names["nightly"]["deadline_s"] == 12 * 3600
    assert names["nightly"]["threshold_g_per_kwh"] == 150
    assert names["default"]["builtin"] is True
    r = cs("submit", "--json", "--policy", "nightly", "--duration", "2h", "--", "python", "train.py")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["reason"] in ("threshold", "threshold-not-met")
    if data["reason"] == "threshold":
        assert data["mean_intensity_g_per_kwh"] < 150
    job = json.loads(cs("show", "1", "--json").out)
    assert job["policy"] == "nightly" and job["threshold_g_per_kwh"] == 150
    assert cs("policy", "rm", "nightly").code == 0
    assert cs("policy", "show", "nightly").code == 2
    # the job keeps its resolved bounds
    assert json.loads(cs("show", "1", "--json").out)["threshold_g_per_kwh"] == 150


def test_run_now_policy_starts_at_submission(cs) -> None:  # type: ignore[no-untyped-def]
    before = datetime.now(UTC)
    data = json.loads(cs("submit", "--json", "--now", "--duration", "2h", "--", "true").out)
    start = datetime.fromisoformat(data["planned_start"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=2) <= start <= datetime.now(UTC) + timedelta(seconds=2)
    assert data["expected_g"] == data["run_now_g"]


def test_budget_refused_with_figures_and_nothing_written(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("submit", "--duration", "3h", "--power-w", "1000", "--budget", "1g", "--", "true")
    assert r.code == 2
    assert "budget" in r.err and "expected" in r.err and "running now" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert _count_jobs(cs) == 0


def test_cancel_pending_job(cs) -> None:  # type: ignore[no-untyped-def]
    cs("submit", "--duration", "1h", "--", "true")
    r = cs("cancel", "1", "--json")
    assert r.code == 0
    assert json.loads(r.out)["state"] == "cancelled"
    again = cs("cancel", "1")
    assert again.code == 2 and "already cancelled" in again.err


def test_env_allow_list_and_explicit_env(cs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", "secret-token")
    monkeypatch.setenv("LANG", "C.UTF-8")
    cs("submit", "--duration", "1h", "--env", "EPOCHS=3", "--", "true")
    job = json.loads(cs("show", "1", "--json").out)
    app = App(load_settings(env={}, overrides={"db": f"sqlite:///{cs.db_path}"}))
    try:
        env = app.store.get_job(1).env
    finally:
        app.close()
    assert env["EPOCHS"] == "3"
    assert env.get("LANG") == "C.UTF-8"
    assert "ELECTRICITYMAPS_TOKEN" not in env
    assert job["shell"] is False


def test_help_lists_commands(cs) -> None:  # type: ignore[no-untyped-def]
    r = cs("--help")
    assert r.code == 0
    for name in ("submit", "queue", "history", "policy", "run", "demo", "db"):
        assert name in r.out
    assert cs("--version").code == 0


def test_exit_codes_from_click_exit_are_kept() -> None:
    import click

    from scheduler.cli.common import run_cli

    @click.group()
    def g() -> None:
        pass

    @g.command()
    @click.pass_context
    def fails(ctx: click.Context) -> None:
        ctx.exit(3)

    @g.command()
    def fine() -> None:
        pass

    assert run_cli(g, ["fails"]) == 3
    assert run_cli(g, ["fine"]) == 0
    assert run_cli(g, ["nope"]) == 2
