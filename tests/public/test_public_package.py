"""The public package: ``import carbonshift`` (cheap), ``python -m carbonshift`` (the CLI), and
``carbonshift.measure()`` around blocks of code in real processes, read back through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: every script starts with ``burn()``: 0.4 s of this process's CPU
BURN = ("import time\ndef burn():\n    t = time.process_time()\n"
        "    while time.process_time() - t < 0.4: pass\n")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    config = tmp_path / "config.toml"
    config.write_text('default_zone = "DE"\ncpu_w_per_core = 10.0\nsampling_interval_s = 0.1\n'
                      '[intensity]\nproviders = ["static"]\n')
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "xdg"), CARBONSHIFT_CONFIG=str(config),
               CARBONSHIFT_DB=str(tmp_path / "cs.db"), PYTHONPATH=str(REPO))
    return env


def _py(tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BURN + textwrap.dedent(code), *args], env=_env(tmp_path),
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=120)


def _history(tmp_path: Path) -> list[dict[str, object]]:
    r = subprocess.run([sys.executable, "-m", "carbonshift", "history", "--format", "json"],
                       env=_env(tmp_path), cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_import_carbonshift_is_cheap_and_names_the_public_api(tmp_path: Path) -> None:
    r = _py(tmp_path, """
        import json, sys, carbonshift
        heavy = [m for m in ("sqlalchemy", "click", "rich", "scheduler.api", "numpy") if m in sys.modules]
        print(json.dumps({"heavy": heavy, "version": carbonshift.__version__,
                          "names": sorted(carbonshift.__all__)}))
        """)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["heavy"] == []
    assert {"Client", "measure", "__version__"} <= set(got["names"])
    r = _py(tmp_path, "import carbonshift; print(carbonshift.Client.__module__, carbonshift.measure.__name__)")
    assert r.stdout.split() == ["scheduler.api", "measure"]


def test_python_dash_m_carbonshift_is_the_cli(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "carbonshift", "--version"], env=_env(tmp_path),
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    import carbonshift

    assert r.stdout.strip() == f"carbonshift, version {carbonshift.__version__}"
    r = subprocess.run([sys.executable, "-m", "carbonshift", "queue", "--json"], env=_env(tmp_path),
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stderr




def test_measure_a_block_lands_in_history_with_its_method_and_intensity(tmp_path: Path) -> None:
    r = _py(tmp_path, """
        import json, carbonshift
        with carbonshift.measure(name="eval[lr=0.1]", zone="DE") as m:
            burn()
        print(json.dumps({"energy_j": m.energy_j, "devices": m.devices, "kind": m.intensity_kind,
                          "provider": m.intensity_provider, "g": m.emissions_g, "job": m.job_id,
                          "zone": m.zone, "code": m.exit_code}))
        """)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    cpu = [d for d in got["devices"] if d["device"] == "cpu"]
    assert cpu and cpu[0]["method"] and cpu[0]["energy_j"] >= 0.4 * 10.0 * 0.9
    assert got["energy_j"] >= cpu[0]["energy_j"] and got["g"] > 0
    assert got["kind"] and got["provider"] and got["zone"] == "DE" and got["code"] == 0
    rows = _history(tmp_path)
    assert [row["name"] for row in rows] == ["eval[lr=0.1]"]
    assert rows[0]["id"] == got["job"] and rows[0]["state"] == "succeeded"


def test_an_exception_is_recorded_and_re_raised_and_nested_blocks_stand_alone(tmp_path: Path) -> None:
    r = _py(tmp_path, """
        import carbonshift
        @carbonshift.measure()
        def inner():
            burn()
        with carbonshift.measure(name="outer"):
            inner()
            inner()
            try:
                with carbonshift.measure(name="broken"):
                    raise ValueError("bad batch")
            except ValueError as exc:
                print("re-raised", exc)
        """)
    assert r.returncode == 0, r.stderr
    assert "re-raised bad batch" in r.stdout
    rows = {(row["name"], row["state"]) for row in _history(tmp_path)}
    assert rows == {("inner", "succeeded"), ("broken", "failed"), ("outer", "succeeded")}
    assert len(_history(tmp_path)) == 4


@pytest.mark.parametrize("ending", ["sys.exit(3)", "threading.Thread(target=work).start()"])
def test_a_process_that_ends_inside_the_block_keeps_its_measurement(tmp_path: Path, ending: str) -> None:
    # sys.exit inside the block goes through the block's exit; a block left open when the
    # script ends (here: entered and never left) is recorded at interpreter exit
    code = f"""
        import sys, threading, carbonshift
        def work():
            burn()
        if {ending.startswith("sys")!r}:
            with carbonshift.measure(name="exits"):
                work()
                {ending}
        else:
            m = carbonshift.measure(name="exits")
            m.__enter__()
            work()
        """
    r = _py(tmp_path, code)
    rows = _history(tmp_path)
    assert len(rows) == 1 and rows[0]["name"] == "exits", (r.stderr, rows)
    assert (rows[0]["state"], r.returncode) == (("failed", 3) if ending.startswith("sys") else ("succeeded", 0))
    assert float(rows[0]["energy_kwh"]) > 0  # type: ignore[arg-type]
