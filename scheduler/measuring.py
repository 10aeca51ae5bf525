"""Measuring work carbonshift did not schedule: a command (`carbonshift measure`) or a block
of Python code (:func:`carbonshift.measure`).

Both go the same way: :func:`begin` validates the zone and builds the unscheduled job (policy
``now``: submitted and started at once, so its run-now counterfactual is itself), a
:class:`~probes.sampler.Sampler` measures the target with the same probes as a scheduled run,
and :func:`finish` accounts the samples against the zone's intensity (actual where known,
else forecast, with the provider named) and records the job, its run, samples and event in
history. Nothing here reads the environment or the clock: the caller passes the app.
"""

from __future__ import annotations

import math
import socket
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from probes.model import Sample
from scheduler.errors import BadInput
from scheduler.text.quantities import fmt_energy_j, fmt_mass_g

if TYPE_CHECKING:
    from probes.detect import ProbeConfig
    from probes.sampler import Sampler
    from scheduler.app import App
    from scheduler.config import Settings
    from scheduler.domain.model import Job, RunAccounting

UNSCHEDULED = "unscheduled (carbonshift measure)"


def probe_config(settings: Settings) -> ProbeConfig:
    """How to measure, from the settings: the one mapping for jobs, measure and probes."""
    from probes.detect import ProbeConfig

    return ProbeConfig(
        cpu_w_per_core=settings.cpu_w_per_core,
        cpu_idle_share=settings.cpu_idle_share,
        cpu_idle_w=settings.cpu_idle_w,
        memory_w_per_gb=settings.memory_w_per_gb,
        sysfs_root=settings.rapl_root,
        use_nvml=settings.use_nvml,
        use_rapl=settings.use_rapl,
    )


def by_device(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """Energy per device and probe method, each row saying whether it is an estimate."""
    totals: dict[tuple[str, str, bool], float] = defaultdict(float)
    for s in samples:
        totals[(s.device, str(s.method), s.estimated)] += s.energy_j
    return [
        {"device": d, "method": m, "estimated": e, "energy_j": j}
        for (d, m, e), j in sorted(totals.items())
    ]


def parse_gpu_indices(value: str | None, environ: dict[str, str]) -> tuple[int, ...]:
    """``--gpus 0,1`` (``value``), else numeric ``CUDA_VISIBLE_DEVICES``, else none."""
    text = value if value is not None else environ.get("CUDA_VISIBLE_DEVICES", "")
    text = text.strip()
    if not text:
        return ()
    try:
        indices = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        if value is None:
            return ()  # UUIDs or MIG names in the environment: not indices we can map
        raise BadInput(f"--gpus {value!r} is not a list of GPU indices like 0,1") from None
    return check_gpu_indices(indices, what="--gpus", shown=repr(text[:40]))


def check_gpu_indices(indices: Sequence[int], *, what: str = "gpus", shown: str | None = None) -> tuple[int, ...]:
    """The rule GPU indices keep, given as text (:func:`parse_gpu_indices`) or as numbers
    (``carbonshift.measure(gpus=[0, 1])``, never written out as text first): whole numbers,
    none negative, at most :data:`~scheduler.model.MAX_GPUS` of them, each below it."""
    from scheduler.domain.model import MAX_GPUS

    shown = shown or repr(list(indices)[:10])
    if any(isinstance(i, bool) or not isinstance(i, int) for i in indices):
        raise BadInput(f"{what} {shown} is not a list of GPU indices like [0, 1]")
    if any(i < 0 for i in indices):
        raise BadInput(f"{what} {shown}: GPU indices are not negative")
    if any(i >= MAX_GPUS for i in indices) or len(indices) > MAX_GPUS:
        raise BadInput(f"{what} {shown}: give at most {MAX_GPUS} GPU indices, each below {MAX_GPUS}")
    return tuple(indices)


def begin(app: App, *, argv: Sequence[str], zone: str | None, cwd: str,
          environ: dict[str, str], gpus: int, at: datetime, name: str | None = None) -> Job:
    """The unscheduled job to record, validated (zone, command) before anything runs."""
    from scheduler.queue import SubmitRequest

    req = SubmitRequest(argv=list(argv), duration_s=1, name=name, zone=zone, policy="now",
                        cwd=cwd, submitter_env=environ, gpus=gpus)
    return app.queue.build_job(req, at)


@dataclass(frozen=True)
class Recorded:
    """What :func:`finish` accounted and, unless ``record`` was off, stored."""

    accounting: RunAccounting
    job_id: int | None


def finish(app: App, job: Job, *, samples: Sequence[Sample], sampler: Sampler,
           started_at: datetime, finished_at: datetime, exit_code: int, handle: str,
           reason: str = "", record: bool = True, note: str | None = None) -> Recorded:
    """Account ``samples`` in the job's zone and (``record``) store the run in history."""
    from scheduler.domain.accounting import account
    from scheduler.domain.model import Event, JobState, Run

    site = app.queue.sites().get(job.site)
    pue = site.pue if site is not None else 1.0
    first = min((s.start for s in samples), default=started_at)
    last = max((s.end for s in samples), default=finished_at)
    points = app.intensity.points_for_accounting(job.zone, first, last + timedelta(seconds=1))
    acct = account(samples, points, started_at=started_at, submitted_at=started_at, pue=pue)
    if not record:
        return Recorded(acct, None)
    duration_s = (finished_at - started_at).total_seconds()
    state = JobState.SUCCEEDED if exit_code == 0 else JobState.FAILED
    job.duration_s = max(1, math.ceil(duration_s))
    job.submitted_at = job.earliest_start = job.latest_start = started_at
    job.planned_start, job.planned_site = started_at, job.site
    job.state, job.attempts, job.plan_source = state, 1, UNSCHEDULED
    if duration_s > 0 and acct.energy_j > 0:
        job.power_w = acct.energy_j / duration_s  # measured mean power, not a planning guess
    job.note = "; ".join([note or "unscheduled run measured by `carbonshift measure`",
                          *sampler.notes])
    stored = app.store.add_job(job)
    job_id = stored.id
    assert job_id is not None
    run = app.store.add_run(Run(
        job_id=job_id, site=job.site, executor="local", started_at=started_at, handle=handle,
        host=socket.gethostname(), finished_at=finished_at, exit_code=exit_code, state=state,
        reason=reason or ("" if exit_code == 0 else f"exit {exit_code}"), accounting=acct,
    ))
    assert run.id is not None
    app.store.add_samples(run.id, list(samples))
    app.store.add_event(Event(
        job_id, finished_at, "measured",
        f"{UNSCHEDULED}: exit {exit_code}, {fmt_energy_j(acct.energy_j)}, "
        f"{fmt_mass_g(acct.emissions_g)}",
    ))
    return Recorded(acct, job_id)
