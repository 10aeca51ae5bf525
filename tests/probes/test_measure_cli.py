"""``carbonshift measure`` and ``carbonshift probes`` through the real CLI, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scheduler.app import App
from scheduler.cli import main
from scheduler.config import load_settings

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"


class CLI:
    def __init__(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import os

        for key in list(os.environ):
            if key.startswith("CARBONSHIFT_"):
                monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        config = tmp_path / "config.toml"
        # the static provider (annual averages) keeps the test offline
        config.write_text(
            'default_zone = "DE"\ncpu_w_per_core = 10.0\nsampling_interval_s = 0.1\n[intensity]\nproviders = ["static"]\n'
        )
        monkeypatch.setenv("CARBONSHIFT_CONFIG", str(config))
        self.db = tmp_path / "cs.db"
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--db", str(self.db), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def app(self) -> App:
        return App(load_settings(env={}, overrides={"db": f"sqlite:///{self.db}"}))


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(tmp_path, monkeypatch, capsys)


def test_measure_json_records_an_unscheduled_run(cli: CLI) -> None:
    code, out, err = cli("measure", "--json", "--", sys.executable, "-c", BURN)
    assert code == 0, err
    data = json.loads(out)
    assert data["exit_code"] == 0 and data["zone"] == "DE"
    assert data["cpu_s"] >= 0.3
    cpu = next(d for d in data["devices"] if d["device"] == "cpu")
    assert cpu["method"] == "cpu_time_estimate" and cpu["estimated"] is True
    assert cpu["energy_j"] == pytest.approx(data["cpu_s"] * 10.0, abs=0.5)
    assert data["emissions_g"] > 0 and data["intensity_kind"] == "static"
    assert data["emissions_g"] == pytest.approx(
        data["energy_j"] / 3.6e6 * data["intensity_g_per_kwh"]
    )
    app = cli.app()
    try:
        job = app.store.get_job(data["job_id"])
        assert job.state == "succeeded" and job.plan_source == "unscheduled (carbonshift measure)"
        (run,) = app.store.runs_for_job(data["job_id"])
        assert run.accounting is not None and run.accounting.energy_j == pytest.approx(
            data["energy_j"]
        )
        assert run.accounting.saved_g == pytest.approx(0.0)
        samples = app.store.samples_for_run(run.id)  # type: ignore[arg-type]
        assert {s.device for s in samples} == {"cpu", "memory"}
    finally:
        app.close()


def test_measure_table_and_failing_command_exit_code(cli: CLI) -> None:
    code, out, err = cli("measure", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert code == 3, err
    assert "cpu_time_estimate" in out and "emissions" in out and "recorded as job 1" in out
    code, out, _ = cli("history", "--format", "json")
    assert code == 0 and json.loads(out)[0]["state"] == "failed"


def test_measure_no_record_and_bad_input(cli: CLI) -> None:
    code, out, _ = cli("measure", "--no-record", "--", "true")
    assert code == 0 and "recorded" not in out
    code, _, err = cli("measure", "--zone", "NOT-A-ZONE", "--", "true")
    assert code == 2 and "NOT-A-ZONE" in err
    code, _, err = cli("measure", "--", "/nonexistent/command")
    assert code == 2 and "/nonexistent/command" in err
    code, _, err = cli("measure", "--gpus", "zero", "--", "true")
    assert code == 2 and "--gpus" in err


def test_probes_json_lists_every_method(cli: CLI) -> None:
    code, out, err = cli("probes", "--json")
    assert code == 0, err
    rows = {r["method"]: r for r in json.loads(out)}
    assert {"nvml_energy_counter", "rapl", "cpu_time_estimate", "memory_estimate"} <= set(rows)
    assert rows["cpu_time_estimate"]["available"] is True
    assert "10 W/core" in rows["cpu_time_estimate"]["reason"]
    for r in rows.values():
        assert r["available"] or r["reason"]
