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

A forecast starting at the current half-hour reaches half an hour less far once the clock
passes the next :00 or :30 (carbonshift would then extend it with its local forecaster,
importing numpy, and CATS would miss its cache): each half-hour a run meets gets its own
forecast, database and caches, warmed up again, and a pair that straddles a boundary is run
again (:func:`pairs`), so the figure does not depend on when the benchmark is started.
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
from collections.abc import Callable
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
    base = half_hour(now)
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


def serve(served: list[list[dict[str, Any]]]) -> http.server.ThreadingHTTPServer:
    """The GB API's regional fw48h answer (``served[0]``, replaced at each half-hour), for any
    postcode, on 127.0.0.1 (a free port)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "/fw48h/postcode/" not in self.path:
                self.send_error(404)
                return
            postcode = self.path.rsplit("/", 1)[-1]
            body = json.dumps({"data": {"regionid": 13, "dnoregion": "recorded", "shortname": "GB",
                                        "postcode": postcode, "data": served[0]}}).encode()
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


def half_hour(now: datetime) -> datetime:
    """The start of the half-hour holding ``now``: where the forecast is made to start."""
    return now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)


Run = tuple[list[str], dict[str, str]]


def pairs(name_a: str, name_b: str, prepare: Callable[[datetime], tuple[Run, Run]], n: int,
          cwd: str) -> tuple[float, float, float, str, str]:
    """``n`` alternating pairs of the runs ``prepare(half_hour)`` gives, after a warm-up of
    each: median ratio a/b, median CPU of each, and the last timed output of each.

    Both tools plan from the real clock over a forecast made to start at the current
    half-hour, so a run past the next :00 or :30 would see a forecast reaching half an hour
    less far: carbonshift would extend it with its local forecaster (importing numpy) and
    CATS would miss its cache. So each half-hour gets its own forecast, database and caches
    (``prepare``, then a new warm-up), and a pair that straddles a boundary is run again."""
    ratios: list[float] = []
    cpu_a: list[float] = []
    cpu_b: list[float] = []
    out: dict[str, str] = {}
    prepared: tuple[datetime, Run, Run] | None = None
    k = 0
    while len(ratios) < n:
        hh = half_hour(datetime.now(UTC))
        if prepared is None or prepared[0] != hh:
            a, b = prepare(hh)
            prepared = (hh, a, b)
            out = {name_a: run_cpu(a[0], a[1], cwd)[1], name_b: run_cpu(b[0], b[1], cwd)[1]}
        _, a, b = prepared
        order = [(name_a, a), (name_b, b)] if k % 2 == 0 else [(name_b, b), (name_a, a)]
        got = {}
        for name, (cmd, env) in order:
            got[name], out[name] = run_cpu(cmd, env, cwd)
        if half_hour(datetime.now(UTC)) != hh:
            print("  (pair crossed a half-hour: run again on the next half-hour's forecast)", flush=True)
            continue
        k += 1
        cpu_a.append(got[name_a])
        cpu_b.append(got[name_b])
        ratios.append(got[name_a] / got[name_b])
        print(f"  pair {k}: {name_a} {got[name_a]:.3f} s CPU, {name_b} {got[name_b]:.3f} s CPU", flush=True)
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
        served: list[list[dict[str, Any]]] = [[]]  # the forecast the HTTP server answers with
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode, as an installed package has it
        base_env.update(PYTHONPATH=str(REPO), PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))

        def carbonshift(hh: datetime) -> tuple[list[str], dict[str, str]]:
            """carbonshift's command line and environment over the forecast of ``hh``, in a
            folder of that half-hour's own (its database, the cache, is new)."""
            here = Path(tmp) / hh.strftime("%H%M")
            here.mkdir(exist_ok=True)
            windows = shifted_forecast(RECORDED, hh)
            served[0] = windows
            replay = here / "GB_fw48h.csv"
            write_replay_csv(windows, replay)
            env = {**base_env, "HOME": str(here), "CARBONSHIFT_DB": str(here / "cs.db")}
            return [sys.executable, "-m", "carbonshift", "--replay", f"GB={replay}"], env

        if Path(args.cats_python).exists():
            server = serve(served)
            cats_env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBONSHIFT_", "CATS_"))}
            cats_env.update(CATS_BENCH_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}")

            def decision_runs(hh: datetime) -> tuple[Run, Run]:
                cs, env = carbonshift(hh)
                cats_tmp = Path(env["HOME"]) / "cats-tmp"  # where requests-cache keeps CATS's cache
                cats_tmp.mkdir(exist_ok=True)
                # start times in [now, now + 21 h]: what --deadline 24h leaves a 3 h job
                cats = [args.cats_python, "-c", CATS_SHIM, "--duration", "180", "--location", "M15",
                        "--format", "json", "--window", str(21 * 60)]
                decision = [*cs, "forecast", "GB", "--json", "--duration", "3h", "--deadline", "24h"]
                return (decision, env), (cats, {**cats_env, "HOME": env["HOME"], "TMPDIR": str(cats_tmp)})

            print("forecast GB --json vs CATS's CLI on the same forecast:")
            ratio, ours, theirs, out_ours, out_cats = pairs("carbonshift", "cats", decision_runs, args.pairs, tmp)
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

        def submit_runs(hh: datetime) -> tuple[Run, Run]:
            cs, env = carbonshift(hh)
            submit = [*cs, "submit", "--zone", "GB", "--duration", "2h", "--deadline", "12h", "--",
                      "python", "train.py"]
            return (submit, env), ([sys.executable, "-c", "import sqlalchemy"], env)

        print('submit vs python -c "import sqlalchemy":')
        ratio, ours, theirs, _, _ = pairs("submit", "import sqlalchemy", submit_runs, args.pairs, tmp)
        print(f"submit: median ratio submit/import sqlalchemy {ratio:.2f}x ({ours:.3f} s vs {theirs:.3f} s CPU)")
        result.update(submit_ratio=ratio, submit_cpu_s=ours, import_sqlalchemy_cpu_s=theirs)
    print(f"(load average {os.getloadavg()[0]:.2f})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
