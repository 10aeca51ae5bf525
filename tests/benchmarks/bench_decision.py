"""One decision through the CLI against CATS's whole CLI on the same recorded forecast, and
`carbonshift submit` against ``python -c "import sqlalchemy"`` (issue 18).

Run ``python tests/benchmarks/bench_decision.py [--pairs 7] [--cats-python PYTHON]`` from the
repository root. PYTHON is the interpreter of a venv of the benchmark's own with CATS in it
(``python -m venv /tmp/cats-venv && /tmp/cats-venv/bin/pip install
climate-aware-task-scheduler``; the default). Without it only the submit ratio is taken.

The forecast is one raw recorded answer of the GB Carbon Intensity API
(``../shared/data/uk-carbon-intensity-api/national_fw48h/2023-03-14T0301Z.json``, 96
half-hours), moved in time so that its first half-hour is the current one (both tools plan
from the real clock). carbonshift reads it as a replay file (``--replay GB=FILE``, a
``time,intensity_g_per_kwh`` CSV of the same values); CATS asks for it over HTTP, from a
local ``http.server`` on 127.0.0.1 in this process that answers every
``/regional/intensity/.../fw48h/postcode/...`` with those values in the API's regional
shape. CATS has no option for its API's address, so its CLI runs behind a three-line shim
that sets ``UKCarbonIntensityProvider.BASE_URL`` and calls ``cats.cli.main``.

Both are timed in their steady state, after one untimed warm-up run each: carbonshift serves
the forecast from its cache (the database), CATS from its own (requests-cache's SQLite file,
keyed by the half-hour's URL). Each run is a new process; a pair runs the two in alternating
order; the figure is the CPU (user + system) of the child, and the ratio is the median over
the pairs of ours / theirs.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO.parent / "shared" / "data" / "uk-carbon-intensity-api" / "national_fw48h" / "2023-03-14T0301Z.json"
DEFAULT_CATS_PYTHON = "/tmp/cats-venv/bin/python"
API_TIME = "%Y-%m-%dT%H:%MZ"
CATS_SHIM = (
    "import os, sys\n"
    "from cats.providers.uk_carbonintensity import UKCarbonIntensityProvider\n"
    "UKCarbonIntensityProvider.BASE_URL = os.environ['CATS_BENCH_BASE_URL']\n"
    "from cats.cli import main\n"
    "sys.exit(main())\n"
)


def shifted_forecast(path: Path, now: datetime) -> list[dict[str, Any]]:
    """The recorded windows, moved so that the first starts at the half-hour holding ``now``."""
    data = json.loads(path.read_text())["data"]
    first = datetime.strptime(data[0]["from"], API_TIME).replace(tzinfo=UTC)
    base = now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)
    out = []
    for row in data:
        start = datetime.strptime(row["from"], API_TIME).replace(tzinfo=UTC) - first + base
        out.append({"from": start.strftime(API_TIME),
                    "to": (start + timedelta(minutes=30)).strftime(API_TIME),
                    "intensity": {"forecast": row["intensity"]["forecast"], "index": row["intensity"]["index"]}})
    return out


def write_replay_csv(windows: list[dict[str, Any]], path: Path) -> None:
    lines = ["time,intensity_g_per_kwh"] + [f"{w['from']},{w['intensity']['forecast']}" for w in windows]
    path.write_text("\n".join(lines) + "\n")


def serve(windows: list[dict[str, Any]]) -> http.server.ThreadingHTTPServer:
    """The GB API's regional fw48h answer, for any postcode, on 127.0.0.1 (a free port)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "/fw48h/postcode/" not in self.path:
                self.send_error(404)
                return
            postcode = self.path.rsplit("/", 1)[-1]
            body = json.dumps({"data": {"regionid": 13, "dnoregion": "recorded", "shortname": "GB",
                                        "postcode": postcode, "data": windows}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_cpu(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    """CPU seconds (user + system) of one child, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[:4]}... exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), r.stdout


def pairs(name_a: str, a: tuple[list[str], dict[str, str]], name_b: str, b: tuple[list[str], dict[str, str]],
          n: int, cwd: str) -> tuple[float, float, float, str, str]:
    """``n`` alternating pairs after a warm-up of each: median ratio a/b, median CPU of
    each, and the last timed output of each."""
    out = {name_a: run_cpu(a[0], a[1], cwd)[1], name_b: run_cpu(b[0], b[1], cwd)[1]}
    ratios, cpu_a, cpu_b = [], [], []
    for k in range(n):
        order = [(name_a, a), (name_b, b)] if k % 2 == 0 else [(name_b, b), (name_a, a)]
        got = {}
        for name, (cmd, env) in order:
            got[name], out[name] = run_cpu(cmd, env, cwd)
        cpu_a.append(got[name_a])
        cpu_b.append(got[name_b])
        ratios.append(got[name_a] / got[name_b])
        print(f"  pair {k + 1}: {name_a} {got[name_a]:.3f} s CPU, {name_b} {got[name_b]:.3f} s CPU", flush=True)
    return (statistics.median(ratios), statistics.median(cpu_a), statistics.median(cpu_b),
            out[name_a], out[name_b])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--cats-python", default=DEFAULT_CATS_PYTHON,
                   help="interpreter of a venv with climate-aware-task-scheduler installed")
    args = p.parse_args(argv)
    result: dict[str, Any] = {"pairs": args.pairs}
    with tempfile.TemporaryDirectory() as tmp:
        now = datetime.now(UTC)
        windows = shifted_forecast(RECORDED, now)
        replay = Path(tmp) / "GB_fw48h.csv"
        write_replay_csv(windows, replay)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode, as an installed package has it
        env.update(HOME=tmp, CARBONSHIFT_DB=str(Path(tmp) / "cs.db"), PYTHONPATH=str(REPO),
                   PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        cs = [sys.executable, "-m", "carbonshift", "--replay", f"GB={replay}"]
        decision = [*cs, "forecast", "GB", "--json", "--duration", "3h", "--deadline", "24h"]

        if Path(args.cats_python).exists():
            server = serve(windows)
            cats_env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBONSHIFT_", "CATS_"))}
            cats_tmp = Path(tmp) / "cats-tmp"  # where requests-cache keeps CATS's cache
            cats_tmp.mkdir()
            cats_env.update(HOME=tmp, TMPDIR=str(cats_tmp),
                            CATS_BENCH_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}")
            # start times in [now, now + 21 h]: what --deadline 24h leaves a 3 h job
            cats = [args.cats_python, "-c", CATS_SHIM, "--duration", "180", "--location", "M15",
                    "--format", "json", "--window", str(21 * 60)]
            print("forecast GB --json vs CATS's CLI on the same forecast:")
            ratio, ours, theirs, out_ours, out_cats = pairs(
                "carbonshift", (decision, env), "cats", (cats, cats_env), args.pairs, tmp)
            server.shutdown()
            mine = json.loads(out_ours)
            theirs_json = json.loads(out_cats)
            print(f"  carbonshift: best start {mine['best_start']}, {mine['best_mean_g_per_kwh']:.1f} g/kWh "
                  f"(from {mine['provider']}:{mine['link']}); CATS: best start {theirs_json['valueOptimal']['start']}, "
                  f"{theirs_json['valueOptimal']['value']:.1f} g/kWh")
            print(f"decision: median ratio carbonshift/CATS {ratio:.2f}x "
                  f"({ours:.3f} s vs {theirs:.3f} s CPU)", flush=True)
            result.update(decision_ratio=ratio, decision_cpu_s=ours, cats_cpu_s=theirs)
        else:
            print(f"{args.cats_python} not found: no CATS comparison (see the module's docstring)")

        submit = [*cs, "submit", "--zone", "GB", "--duration", "2h", "--deadline", "12h", "--",
                  "python", "train.py"]
        floor = [sys.executable, "-c", "import sqlalchemy"]
        print('submit vs python -c "import sqlalchemy":')
        ratio, ours, theirs, _, _ = pairs("submit", (submit, env), "import sqlalchemy", (floor, env),
                                          args.pairs, tmp)
        print(f"submit: median ratio submit/import sqlalchemy {ratio:.2f}x ({ours:.3f} s vs {theirs:.3f} s CPU)")
        result.update(submit_ratio=ratio, submit_cpu_s=ours, import_sqlalchemy_cpu_s=theirs)
    print(f"(load average {os.getloadavg()[0]:.2f})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
