"""The offline demo: real jobs, a replayed real trace, an accelerated clock.

A temporary database and the shipped Great Britain trace (March 2023, Electricity Maps)
in replay; the clock starts on a weekday evening and runs 3600 times faster than real time
(one real second is one simulated hour). A handful of short, real CPU jobs are submitted
under different policies; the daemon plans, waits, runs and measures them; the history
shows each job's energy (real, measured from CPU time), its emissions and the saving
against running it at submission, computed from its own measured power profile.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scheduler.app import App
from scheduler.clock import AcceleratedClock
from scheduler.config import load_settings
from scheduler.domain.model import Policy
from scheduler.errors import InfeasibleJob
from scheduler.queue import SubmitRequest

#: Burns CPU for argv[1] real seconds in argv[2] processes (a stand-in for training).
BURN = (
    "import sys,time,os\n"
    "secs=float(sys.argv[1]); n=int(sys.argv[2])\n"
    "kids=[]\n"
    "for _ in range(n-1):\n"
    "    pid=os.fork()\n"
    "    if pid==0:\n"
    "        break\n"
    "    kids.append(pid)\n"
    "end=time.time()+secs\n"
    "x=0\n"
    "while time.time()<end:\n"
    "    x+=1\n"
    "for k in kids:\n"
    "    os.waitpid(k,0)\n"
    "print('done', x)\n"
)

DEMO_START = datetime(2023, 3, 15, 17, 0, tzinfo=UTC)  # a Wednesday 17:00 UTC: evening peak, windy night ahead
DEMO_FACTOR = 3600.0


@dataclass
class DemoResult:
    data_dir: Path
    db_url: str
    job_ids: list[int]
    refused: list[str]


def run_demo(
    *,
    data_dir: Path | None = None,
    factor: float = DEMO_FACTOR,
    start: datetime = DEMO_START,
    emit: Callable[[str], None] = print,
    scale: float = 1.0,
) -> DemoResult:
    """Run the demo to completion and return where its database lives."""
    from scheduler.agent.loop import Daemon

    base = data_dir or Path(tempfile.mkdtemp(prefix="carbonshift-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    settings = load_settings(
        env={"HOME": env.get("HOME", str(base))},
        config_path=None,
        overrides={
            "db": f"sqlite:///{base / 'demo.db'}",
            "data_dir": str(base),
            "default_zone": "GB",
            "replan_interval_s": 6 * 3600.0,
        },
    )
    settings = type(settings)(**{**settings.__dict__, "intensity": {**settings.intensity, "providers": ["replay"], "cache_minutes": 30.0}})
    app = App(settings, env=env)
    store = app.store  # opens and migrates the database before the clock starts
    store.put_policy(Policy(name="nightly", deadline_s=12 * 3600, threshold_g_per_kwh=150.0,
                            description="start below 150 g/kWh, finish within 12 h"))
    store.put_policy(Policy(name="eco", deadline_s=24 * 3600, description="finish within 24 h"))
    jobs: list[tuple[str, str, str | None, dict[str, float], int]] = [
        ("bert-finetune", "3h", None, {"deadline_s": 12 * 3600}, 2),
        ("resnet-sweep", "2h", "nightly", {}, 1),
        ("llm-eval", "1h", "now", {}, 1),
        ("gpt-pretrain-shard", "4h", "eco", {}, 2),
        ("whisper-distill", "2h", None, {"deadline_s": 8 * 3600, "budget_g": 1.0}, 1),
    ]
    clock = AcceleratedClock(start, factor)
    app.clock = clock
    ids: list[int] = []
    refused: list[str] = []
    emit(f"demo: replaying Electricity Maps GB March 2023; clock starts {start:%a %Y-%m-%d %H:%M} UTC "
         f"and runs {factor:g}x real time (1 s = {factor / 3600:g} h)")
    emit(f"demo: data in {base}")
    from scheduler.text.times import parse_duration_s

    for name, dur, policy, flags, procs in jobs:
        d_s = parse_duration_s(dur)
        # a real job rarely runs exactly its estimate: these finish a little early, and the
        # process start-up (~0.3 s real, more on a busy machine) counts too
        real_s = max(0.3, d_s / factor * scale * 0.8 - 0.3)
        req = SubmitRequest(
            argv=[sys.executable, "-c", BURN, f"{real_s:.2f}", str(procs)],
            duration_s=d_s, name=name, policy=policy,
            overrides=Policy(name="(flags)", **flags), cwd=str(base), submitter_env=env,  # type: ignore[arg-type]
            cpus=procs, power_w=None,
        )
        try:
            res = app.queue.submit(req)
        except InfeasibleJob as exc:
            refused.append(f"{name}: {exc}")
            emit(f"refused    {name}: {exc}")
            continue
        assert res.job.id is not None
        ids.append(res.job.id)
        wait_h = (res.entry.start - clock.now()).total_seconds() / 3600
        when = f"+{wait_h:.1f} h" if wait_h >= 0.05 else "now"
        now_mean = (
            res.entry.run_now_g / res.entry.expected_g * res.entry.mean_intensity_g_per_kwh
            if res.entry.expected_g else res.entry.mean_intensity_g_per_kwh
        )
        emit(f"submitted  job {res.job.id} {name} ({dur}, policy {res.job.policy_name}): "
             f"planned {res.entry.start:%a %H:%M} ({when}, {res.entry.reason}): "
             f"{res.entry.mean_intensity_g_per_kwh:.0f} g/kWh expected vs {now_mean:.0f} g/kWh if run now")
    # a job whose budget no window can meet is refused with the figures
    try:
        app.queue.submit(SubmitRequest(
            argv=[sys.executable, "-c", "pass"], duration_s=6 * 3600, name="too-dirty",
            overrides=Policy(name="(flags)", deadline_s=8 * 3600, budget_g=0.5), cwd=str(base),
            submitter_env=env, gpus=4, power_w=1200.0,
        ))
    except InfeasibleJob as exc:
        refused.append(f"too-dirty: {exc}")
        emit(f"refused    too-dirty: {exc}")

    def line(text: str) -> None:
        emit(f"{clock.now():%a %H:%M}  {text}")

    daemon = Daemon(app, sample_interval_s=0.2, tick_s=0.1, exit_when_idle=True, on_event=line)
    daemon.run_forever()
    url = settings.db
    app.close()
    return DemoResult(base, url, ids, refused)


def cleanup(result: DemoResult) -> None:
    shutil.rmtree(result.data_dir, ignore_errors=True)
