"""The Python API: ``from scheduler import Client`` does what the CLI does."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.clock import AcceleratedClock
from scheduler.errors import BadInput, InfeasibleJob, NotFound
from scheduler.model import JobState
from scheduler.storage.store import open_store
from tests.cli.conftest import write_retimed_trace
from tests.report.report_seed import seed_store

ORIGIN = datetime(2026, 3, 15, 17, 0, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    trace = write_retimed_trace(tmp_path / "trace.csv", ORIGIN - timedelta(days=2))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'default_zone = "TRACE"\n[intensity]\nproviders = ["replay"]\ntrace = "{trace}"\n')
    return {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "CARBONSHIFT_CONFIG": str(cfg),
            "XDG_DATA_HOME": str(tmp_path / "data")}


def test_client_is_exported_lazily() -> None:
    code = (
        "import sys, scheduler, scheduler.cli\n"
        "assert 'scheduler.api' not in sys.modules, 'the CLI must not import the API'\n"
        "from scheduler import Client\n"
        "assert Client.__module__ == 'scheduler.api'\n"
        "try:\n    scheduler.Nope\nexcept AttributeError as e:\n    print('ok', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ok ")


def test_submit_run_wait_history_report(env: dict[str, str], tmp_path: Path) -> None:
    from scheduler import Client

    # a minute per real second: the job is due at once (the cleanest hour is the first), and
    # the deadline is four real minutes away, so a loaded machine's start-up latency (a real
    # second was an hour at 3600x) cannot push its end past it
    clock = AcceleratedClock(ORIGIN, 60.0)
    with Client(str(tmp_path / "api.db"), env=env, clock=clock, user="ada") as cs:
        job = cs.submit([sys.executable, "-c", "print('hello from the api')"], duration="20m",
                        deadline="4h", name="api-job", cwd=str(tmp_path))
        assert job.id is not None and job.state is JobState.PLANNED
        assert job.planned_start is not None and job.planned_start >= ORIGIN
        assert job.deadline_at is not None and job.expected_g is not None and job.run_now_g is not None
        assert job.expected_g <= job.run_now_g
        assert [j.id for j in cs.queue()] == [job.id]
        assert cs.job(job.id).owner == "ada"
        lines = cs.run(sample_interval_s=0.2, tick_s=0.1)
        assert any("started" in ln for ln in lines) and any("finished" in ln for ln in lines)
        assert cs.wait(job.id, timeout=5) == 0
        assert cs.queue() == [] and len(cs.queue(all=True)) == 1
        assert "hello from the api" in cs.logs(job.id)
        details = cs.show(job.id)
        assert details.job.state is JobState.SUCCEEDED and len(details.runs) == 1
        assert [e.kind for e in details.events][:1] == ["submitted"]
        rows = cs.history()
        assert [r.id for r in rows] == [job.id]
        assert rows[0].energy_kwh is not None and rows[0].energy_kwh > 0
        assert rows[0].emissions_g is not None and rows[0].counterfactual_g is not None
        assert rows[0].finished_at is not None and rows[0].finished_at <= rows[0].deadline_at  # type: ignore[operator]
        rep = cs.report(since=None, by="owner", carbon_price="80/t")
        assert [r.key for r in rep.rows] == ["ada"]
        assert rep.total.emissions_kg == pytest.approx(rows[0].emissions_g / 1000)
        assert rep.total.carbon_cost == pytest.approx(rows[0].emissions_g / 1e6 * 80)
        assert rep.total.deadline_hits == 1


def test_failed_job_exit_code_and_cancel(env: dict[str, str], tmp_path: Path) -> None:
    from scheduler import Client

    clock = AcceleratedClock(ORIGIN, 3600.0)
    with Client(str(tmp_path / "api.db"), env=env, clock=clock) as cs:
        bad = cs.submit(f"{sys.executable} -c 'import sys; sys.exit(3)'", duration=600,
                        run_now=True, cwd=str(tmp_path))
        later = cs.submit(["true"], duration=timedelta(minutes=30), deadline=ORIGIN + timedelta(days=1))
        assert cs.cancel(later.id).state is JobState.CANCELLED  # type: ignore[arg-type]
        cs.run(sample_interval_s=0.2, tick_s=0.1)
        assert cs.wait(bad.id) == 3  # type: ignore[arg-type]
        assert cs.wait(later.id) == 1  # type: ignore[arg-type]


def test_bad_input_raises_package_errors(env: dict[str, str], tmp_path: Path) -> None:
    from scheduler import Client
    from scheduler.api import WaitTimeout

    clock = AcceleratedClock(ORIGIN, 1.0)
    with Client(str(tmp_path / "api.db"), env=env, clock=clock) as cs:
        with pytest.raises(BadInput, match="duration"):
            cs.submit(["true"], duration=-5)
        with pytest.raises(BadInput, match="no timezone"):
            cs.submit(["true"], duration="1h", deadline=datetime(2026, 3, 16))
        with pytest.raises(InfeasibleJob):
            cs.submit(["true"], duration="3h", deadline="1h")
        with pytest.raises(BadInput, match="empty"):
            cs.submit([], duration="1h")
        with pytest.raises(NotFound):
            cs.show(999)
        with pytest.raises(BadInput, match="unknown zone"):
            cs.forecast("NOWHERE")
        job = cs.submit(["true"], duration="1h", deadline="20h")
        with pytest.raises(WaitTimeout, match="still planned"):
            cs.wait(job.id, timeout=0.2, poll_s=0.05)  # type: ignore[arg-type]
        assert cs.queue()[0].id == job.id


def test_forecast_comes_through_the_chain(env: dict[str, str], tmp_path: Path) -> None:
    from scheduler import Client

    with Client(str(tmp_path / "api.db"), env=env, clock=AcceleratedClock(ORIGIN, 1.0)) as cs:
        answer = cs.forecast(hours=24)
        fc = answer.forecast
        assert fc.zone == "TRACE" and not answer.fallback
        assert fc.start is not None and fc.start <= ORIGIN
        assert fc.end is not None and fc.end >= ORIGIN + timedelta(hours=24)
        assert "replay" in answer.describe()


def test_history_and_report_on_a_seeded_database(env: dict[str, str], tmp_path: Path) -> None:
    from scheduler import Client

    db = tmp_path / "seeded.db"
    store = open_store(f"sqlite:///{db}")
    ids = seed_store(store)
    store.close()
    now = AcceleratedClock(datetime(2026, 3, 8, tzinfo=UTC), 1.0)
    with Client(str(db), env=env, clock=now) as cs:
        assert len(cs.history()) == 5
        assert [r.name for r in cs.history(since="4d")] == ["eval", "waiting", "dropped"]
        assert [r.name for r in cs.history(states=["succeeded"])] == ["bert-ft", "llama-sweep"]
        assert len(cs.history(since=datetime(2026, 3, 3, tzinfo=UTC), until="4d")) == 1
        rep = cs.report(by="policy")
        assert rep.total.saved_kg == pytest.approx(1.6)
        assert cs.show(ids["bert-ft"]).history.saved_g == pytest.approx(600.0)


def test_typed_values_keep_the_cli_rules_without_a_round_trip_through_text(
        env: dict[str, str], tmp_path: Path) -> None:
    """Numbers and timedeltas are checked by the same rules as the CLI's text, not written
    out as text first: 1,234,567 s once became ``"1.23457e+06s"`` and was refused as "not a
    duration"; a 0.4 s remainder is rounded like the CLI rounds ``1h0.4s``."""
    from scheduler import Client

    clock = AcceleratedClock(ORIGIN, 1.0)
    with Client(str(tmp_path / "api.db"), env=env, clock=clock) as cs:
        long = cs.submit(["true"], duration=1_234_567, deadline=timedelta(days=30),
                         transfer_energy=1.8e6, budget=1e9, threshold=900)
        assert long.duration_s == 1_234_567 and long.transfer_energy_j == 1.8e6
        assert long.budget_g == 1e9 and long.threshold_g_per_kwh == 900.0
        assert long.deadline_at is not None
        assert abs((long.deadline_at - cs.now()).total_seconds() - 30 * 86400) < 5
        text = cs.submit(["true"], duration="1h", budget="1kg", transfer_energy="0.5kWh")
        typed = cs.submit(["true"], duration=timedelta(hours=1, seconds=0.4), budget=1000.0,
                          transfer_energy=0.5 * 3.6e6)
        assert (text.duration_s, text.budget_g, text.transfer_energy_j) == (
            typed.duration_s, typed.budget_g, typed.transfer_energy_j) == (3600, 1000.0, 1.8e6)
        # the one rule refuses the same values, however they are written
        for bad, match in ((dict(duration=400 * 86400), "longer than a year"),
                           (dict(duration="400d"), "longer than a year"),
                           (dict(duration=float("inf")), "not a duration"),
                           (dict(duration="1h", threshold=-3), "positive number of gCO2/kWh"),
                           (dict(duration="1h", threshold="-3"), "positive number of gCO2/kWh"),
                           (dict(duration="1h", budget=0), "positive mass"),
                           (dict(duration="1h", transfer_energy=-1.0), "zero or more"),
                           (dict(duration="1h", deadline=cs.now() - timedelta(hours=1)), "in the past"),
                           (dict(duration="1h", deadline=cs.now() + timedelta(days=400)), "more than a year")):
            with pytest.raises(BadInput, match=match):
                cs.submit(["true"], **bad)
        assert len(cs.queue()) == 3  # nothing half-written by the refusals
