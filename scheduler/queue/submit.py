"""Submitting: a request checked, planned around what is committed, then stored.

:meth:`SubmitService.submit` validates everything before writing anything: a refused job
leaves no row. The service is handed its collaborators (:class:`~.ports.QueuePorts`, the
:class:`~.ports.Catalog` of sites, policies and forecasts, and the capacity already held).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from intensity.errors import UnknownZone
from scheduler.domain.acceptance import deadline_refusal, finishes_late
from scheduler.domain.model import (
    PAUSE_MODES,
    Job,
    JobState,
    PlanEntry,
    Policy,
    Site,
    Sweep,
    check_power_w,
    check_resources,
)
from scheduler.domain.policies import merge, resolve, validate_policy
from scheduler.errors import BadInput, InfeasibleJob, NotFound
from scheduler.mlflow_log import ENV_VARS as MLFLOW_ENV_VARS
from scheduler.planning import plan
from scheduler.queue.catalog import DEFAULT_SITE, zone_of
from scheduler.queue.ports import UsesPorts
from scheduler.text.checks import check_text
from scheduler.text.quantities import fmt_energy_j, fmt_mass_g
from scheduler.text.times import format_duration, iso, spans_text

if TYPE_CHECKING:
    from scheduler.queue.capacity import HeldCapacity
    from scheduler.queue.ports import Catalog, QueuePorts

#: Never the daemon's environment, which may hold API tokens.
ENV_ALLOW_LIST = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "PYTHONPATH", "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS", "HF_HOME", "TORCH_HOME",
    *MLFLOW_ENV_VARS,  # the MLflow run a job belongs to: its figures are logged there
)
MAX_ARGV_BYTES = 128 * 1024
#: planning estimate of one busy core when the config gives none (a 125 W, 10-core CPU)
PLANNING_CPU_W_PER_CORE = 12.5


@dataclass
class SubmitRequest:
    """What a user asks for; every field is checked by :meth:`Queue.submit`."""

    argv: list[str]
    duration_s: int
    name: str | None = None
    zone: str | None = None
    site: str | None = None
    allowed_sites: list[str] = field(default_factory=list)
    policy: str | None = None
    overrides: Policy = field(default_factory=lambda: Policy(name="(flags)"))
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    submitter_env: Mapping[str, str] = field(default_factory=dict)
    shell: bool = False
    gpus: int = 0
    cpus: int = 1
    power_w: float | None = None
    priority: int = 0
    not_before: datetime | None = None
    #: moving the job away from its home site (``None``: the destination site's figures)
    transfer_delay_s: int | None = None
    transfer_energy_j: float | None = None
    #: interruptible jobs: ``stop`` or ``checkpoint`` (implies interruptible), the
    #: checkpoint signal and grace (``None``: the config's)
    pause_mode: str | None = None
    pause_signal: str | None = None
    pause_grace_s: float | None = None


#: the most a transfer may claim: a week of delay, 1 GWh of energy
MAX_TRANSFER_DELAY_S = 7 * 86400
MAX_TRANSFER_ENERGY_J = 3.6e12


@dataclass(frozen=True)
class SubmitResult:
    job: Job
    entry: PlanEntry
    plan_source: str
    fallback: bool


def _check_transfer(req: SubmitRequest) -> None:
    """A per-job transfer delay and energy must be sane figures (or absent)."""
    d, e = req.transfer_delay_s, req.transfer_energy_j
    if d is not None and not (isinstance(d, int) and 0 <= d <= MAX_TRANSFER_DELAY_S):
        raise BadInput(f"transfer delay {d!r} s must be between 0 and a week")
    if e is not None and not (math.isfinite(e) and 0 <= e <= MAX_TRANSFER_ENERGY_J):
        raise BadInput(f"transfer energy {fmt_energy_j(e) if math.isfinite(e) else e} must be between 0 and 1 GWh")


_ZONE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_env_entry(name: str, value: str) -> None:
    """An environment entry of a job: a name of letters, digits and ``_`` (not starting with
    a digit; no ``=``, spaces or control characters) and a value without NUL."""
    if not _ENV_NAME_RE.fullmatch(name):
        raise BadInput(f"environment name {name[:40]!r} is not valid: use --env NAME=VALUE with a NAME "
                       "of letters, digits and '_'")
    if "\0" in value or len(value) > MAX_ARGV_BYTES:
        raise BadInput(f"environment value of {name} holds a NUL or is over {MAX_ARGV_BYTES} characters")


@dataclass(frozen=True)
class SweepResult:
    """A stored sweep, its trials (planned) and each trial's plan entry, in index order."""

    sweep: Sweep
    trials: list[Job]
    entries: list[PlanEntry]
    plan_source: str
    fallback: bool




def apply_entry(job: Job, entry: PlanEntry, source: str, fallback: bool) -> None:
    """Write a plan entry (and where its forecast came from) onto the job."""
    job.state = JobState.PLANNED
    job.planned_start = entry.start
    job.planned_site = entry.site
    job.expected_g = entry.expected_g if math.isfinite(entry.expected_g) else None
    job.run_now_g = entry.run_now_g if math.isfinite(entry.run_now_g) else None
    job.plan_source = source
    job.note = f"{entry.reason}" + ("; planned on fallback carbon data" if fallback else "")



class SubmitService(UsesPorts):
    """Validate, plan and store jobs, single, many at once, or a sweep's trials."""

    def __init__(self, ports: QueuePorts, catalog: Catalog, held: HeldCapacity) -> None:
        self.ports, self.catalog, self.held = ports, catalog, held

    def build_job(self, req: SubmitRequest, now: datetime) -> Job:
        """Validate a request and resolve it into a job (not yet stored or planned)."""
        if not req.argv or not any(a.strip() for a in req.argv):
            raise BadInput("the command is empty: put it after `--`, like `-- python train.py`")
        total = 0
        for i, a in enumerate(req.argv):
            check_text(a, f"command argument {i + 1}", max_len=MAX_ARGV_BYTES, allow="\n\r\t")
            total += len(a)
        if total > MAX_ARGV_BYTES:
            raise BadInput(f"the command is {total} bytes long: keep it under {MAX_ARGV_BYTES}")
        if req.duration_s <= 0:
            raise BadInput(f"duration {req.duration_s!r} must be longer than zero")
        # an empty --name or --zone is a mistake, not "use the default"
        name = req.name if req.name is not None else (os.path.basename(req.argv[0]) or "job")
        check_text(name, "name")
        if not name.strip():
            raise BadInput("name is empty: give --name a few characters")
        for k, v in req.env.items():
            check_env_entry(k, v)
        check_resources(req.gpus, req.cpus)
        if req.priority < -1000 or req.priority > 1000:
            raise BadInput(f"priority {req.priority} is out of range: use -1000..1000")
        overrides = validate_policy(req.overrides, check_name=False)  # before any I/O
        power = req.power_w
        if power is None:
            power = req.gpus * self.settings.gpu_w + max(req.cpus, 1) * (
                self.settings.cpu_w_per_core or PLANNING_CPU_W_PER_CORE
            )
        check_power_w(power)
        if req.zone is not None and not req.zone.strip():
            raise BadInput("zone is empty: give a zone like GB or DE, or leave --zone out")
        if req.zone is not None and not _ZONE_RE.fullmatch(req.zone.strip()):
            raise BadInput(f"zone {req.zone[:40]!r} is not a zone name: use letters, digits, '-' and '_', "
                           "like GB, DE or US-CAL-CISO (see `carbonshift zones`)")
        self.intensity  # noqa: B018 (providers set up, a bad trace refused, before the store opens)
        sites = self.catalog.sites()
        site_name = req.site or DEFAULT_SITE
        if site_name not in sites:
            raise NotFound(
                f"unknown site {site_name!r}: known sites are {', '.join(sorted(sites))} "
                "(add one with `carbonshift site add`)"
            )
        for s in req.allowed_sites:
            if s not in sites:
                raise NotFound(f"unknown site {s!r} in --site: known sites are {', '.join(sorted(sites))}")
        allowed = list(req.allowed_sites)
        if req.zone is not None:
            try:
                self.intensity.check_zone(req.zone)
            except UnknownZone as exc:
                raise BadInput(str(exc)) from None
            site_name, allowed = self._sites_in_zone(req, sites, site_name)
        # a job's intensity, plan and counterfactual all come from its home site's zone
        zone = sites[site_name].zone
        try:
            self.intensity.check_zone(zone)
        except UnknownZone as exc:
            raise BadInput(str(exc)) from None
        policy_name = req.policy or self.settings.default_policy
        policy = validate_policy(merge(self.catalog.get_policy(policy_name), overrides))
        bounds = resolve(policy, submitted_at=now, duration_s=req.duration_s, not_before=req.not_before)
        env = {k: req.submitter_env[k] for k in ENV_ALLOW_LIST if k in req.submitter_env}
        env.update(req.env)
        _check_transfer(req)
        interruptible = bounds.interruptible or req.pause_mode is not None
        pause = self._pause_settings(req) if interruptible else (None, None, None)
        return Job(
            name=name,
            argv=list(req.argv),
            duration_s=req.duration_s,
            zone=zone,
            submitted_at=now,
            earliest_start=bounds.earliest_start,
            latest_start=bounds.latest_start,
            deadline_at=bounds.deadline_at,
            cwd=os.path.abspath(req.cwd or "."),
            env=env,
            shell=req.shell,
            power_w=float(power),
            gpus=req.gpus,
            cpus=req.cpus,
            site=site_name,
            allowed_sites=allowed,
            owner=self.user,
            policy_name=policy_name,
            threshold_g_per_kwh=bounds.threshold_g_per_kwh,
            budget_g=bounds.budget_g,
            run_now=bounds.run_now,
            interruptible=interruptible,
            priority=req.priority,
            transfer_delay_s=req.transfer_delay_s,
            transfer_energy_j=req.transfer_energy_j,
            pause_mode=pause[0],
            pause_signal=pause[1],
            pause_grace_s=pause[2],
        )

    @staticmethod
    def _sites_in_zone(req: SubmitRequest, sites: Mapping[str, Site], home: str) -> tuple[str, list[str]]:
        """``--zone Z`` picks the sites of zone Z: among ``--site`` when given, else among
        every site (the default site first). Returns the home and the allowed sites; a
        zone no such site has is refused."""
        assert req.zone is not None
        given = bool(req.site or req.allowed_sites)
        names = list(dict.fromkeys([home, *req.allowed_sites])) if given else [
            home, *sorted(n for n in sites if n != home)]
        picked = [n for n in names if sites[n].zone.upper() == req.zone.strip().upper()]
        if not picked:
            where = ", ".join(f"{n} is in {sites[n].zone}" for n in names[:4])
            raise BadInput(
                f"zone {req.zone!r} is not the zone of any site the job may run on ({where}): "
                f"give --site with a site in {req.zone} (`carbonshift site add NAME --zone {req.zone}` "
                "adds one), or leave --zone out"
            )
        return picked[0], picked if len(picked) > 1 else []

    def _pause_settings(self, req: SubmitRequest) -> tuple[str, str, float]:
        """An interruptible job's pause mode, signal and grace: the request's, else the
        config's, resolved now (so the job keeps them whatever the config becomes)."""
        from scheduler.config import PAUSE_SIGNALS, signal_name

        settings = self.settings
        mode = req.pause_mode if req.pause_mode is not None else settings.pause_mode
        if mode not in PAUSE_MODES:
            raise BadInput(f"pause mode {mode!r} is not one of {', '.join(PAUSE_MODES)}")
        if mode == "stop" and (req.pause_signal is not None or req.pause_grace_s is not None):
            raise BadInput("a pause signal and grace only apply to checkpointing jobs: add "
                           "--pause-mode checkpoint, or leave them out")
        sig = signal_name(req.pause_signal) if req.pause_signal is not None else settings.pause_signal
        if sig is None:
            raise BadInput(f"pause signal {req.pause_signal!r} is not one carbonshift can pass to a job: "
                           f"use one of {', '.join(PAUSE_SIGNALS)}")
        grace = req.pause_grace_s if req.pause_grace_s is not None else settings.pause_grace_s
        if not (math.isfinite(grace) and 0 <= grace <= 86400):
            raise BadInput(f"pause grace {grace!r} s must be between 0 and one day")
        return mode, sig, float(grace)

    def plan_one(self, job: Job, now: datetime) -> tuple[PlanEntry, str, bool]:
        """Plan a single (validated) job against the current forecasts of the zones it may
        run in. Where a site manages capacity, the job is fitted around what is already
        committed there (planned and running jobs) and refused, with the earliest finish
        that would fit, when nothing fits by its deadline."""
        sites = self.catalog.sites()
        forecasts, sources = self.catalog.forecasts_for([job], sites, now)
        probe = job if job.id is not None else replace(job, id=-1)
        held = self.held.committed(probe, sites, now)
        options = (self.catalog.plan_options(reserved=held, allow_overdue=False) if held is not None
                   else self.catalog.plan_options())
        result = plan([probe], forecasts, sites, now, options)
        entry = result.entries.get(probe.id)  # type: ignore[arg-type]
        if entry is None and probe.id in result.earliest_finish:
            raise deadline_refusal(f"job {job.name!r}", job, result.earliest_finish[probe.id], now)
        if entry is None:
            raise InfeasibleJob(f"job {job.name!r} cannot be planned: "
                                + result.unplanned.get(probe.id, "no start fits its policy"))  # type: ignore[arg-type]
        return (entry, *sources[zone_of(entry.site, sites, job.zone)])


    def submit(self, req: SubmitRequest, *, now: datetime | None = None) -> SubmitResult:
        """Validate, plan and store a job; nothing is written if anything is refused."""
        now = self.now(now)
        job = self.build_job(req, now)
        job.id = -1  # a stand-in for the planner (this job is ours alone) instead of a copy
        try:
            entry, source, fallback = self.plan_one(job, now)
        finally:
            job.id = None
        if job.budget_g is not None and math.isfinite(entry.expected_g) and entry.expected_g > job.budget_g:
            raise InfeasibleJob(
                f"carbon budget {fmt_mass_g(job.budget_g)} is below the best window's expected "
                f"{entry.expected_g:.1f} g (start {iso(entry.start)}, mean "
                f"{entry.mean_intensity_g_per_kwh:.0f} gCO2/kWh at {job.power_w:.0f} W for "
                f"{format_duration(job.duration_s)}; running now: {entry.run_now_g:.1f} g): "
                "raise --budget, extend the deadline or lower --power-w"
            )
        apply_entry(job, entry, source, fallback)
        stored = self.submit_store.add_job(job, event=(
            now, "submitted", f"planned {iso(entry.start)} on {entry.site} ({entry.reason}; {source})"
            + (f" in {len(entry.intervals)} intervals: {spans_text(entry.intervals)}"
               if len(entry.intervals) > 1 else "")
        ), intervals=entry.intervals if len(entry.intervals) > 1 else ())
        assert stored.id is not None
        return SubmitResult(stored, replace(entry, job_id=stored.id), source, fallback)

    def submit_many(self, reqs: Sequence[SubmitRequest], *, now: datetime | None = None) -> list[Job]:
        """Validate and plan many jobs, then store them in one transaction."""
        now = self.now(now)
        jobs = [self.build_job(r, now) for r in reqs]
        for i, j in enumerate(jobs):
            j.id = -(i + 1)
        sites = self.catalog.sites()
        forecasts, sources = self.catalog.forecasts_for(jobs, sites, now)
        # capacity: the batch shares each site's slots, around what is already committed
        managed = [n for n, s in sites.items() if s.gpus > 0 or s.cpus > 0]
        options = (
            self.catalog.plan_options(reserved=self.held.on(managed, now), allow_overdue=False)
            if managed else self.catalog.plan_options()
        )
        result = plan(jobs, forecasts, sites, now, options)
        for j in jobs:
            entry = result.entries.get(j.id)  # type: ignore[arg-type]
            if entry is None:  # capacity taken up to its deadline, or no site fits it
                raise InfeasibleJob(f"job {j.name!r} cannot be planned: "
                                    + result.unplanned.get(j.id, "no start fits its policy"))  # type: ignore[arg-type]
            if j.budget_g is not None and math.isfinite(entry.expected_g) and entry.expected_g > j.budget_g:
                raise InfeasibleJob(
                    f"job {j.name!r}: carbon budget {fmt_mass_g(j.budget_g)} is below the best window's "
                    f"expected {entry.expected_g:.1f} g"
                )
            apply_entry(j, entry, *sources[zone_of(entry.site, sites, j.zone)])
        spans = [result.entries[j.id].intervals for j in jobs]  # type: ignore[index]
        for j in jobs:
            j.id = None
        ids = self.store.add_jobs(
            jobs, intervals=[s if len(s) > 1 else () for s in spans]
            if any(len(s) > 1 for s in spans) else None,
        )
        for j, i in zip(jobs, ids, strict=True):
            j.id = i
        return jobs

    def submit_sweep(
        self, reqs: Sequence[SubmitRequest], indices: Sequence[int], *, name: str,
        limit: int | None = None, budget_g: float | None = None, now: datetime | None = None,
    ) -> SweepResult:
        """Validate and plan a sweep's trials together (under capacity, the ``%N`` cap and
        the shared deadline), check the sweep's budget against the plan's expected grams,
        then store the sweep and its trials in one transaction. Refused (nothing written)
        when the trials cannot all finish by the deadline (naming the earliest finish that
        fits) or when even this plan's expected grams exceed ``budget_g``."""
        from scheduler.sweeps import MAX_TRIALS, PROVISIONAL_ID

        now = self.now(now)
        if not reqs:
            raise BadInput(f"sweep {name!r} has no trial: give --array 0-9 or --sweep FILE")
        if len(reqs) != len(indices) or len(reqs) > MAX_TRIALS:
            raise BadInput(f"sweep {name!r}: {len(reqs)} trials for {len(indices)} indices "
                           f"(at most {MAX_TRIALS})")
        if limit is not None and limit < 1:
            raise BadInput(f"sweep {name!r}: the cap %{limit} must be at least 1")
        if budget_g is not None and not (math.isfinite(budget_g) and budget_g > 0):
            raise BadInput(f"sweep budget {budget_g!r} g must be a positive mass like 5kg")
        check_text(name, "sweep name")
        jobs = [self.build_job(r, now) for r in reqs]
        for i, (j, index) in enumerate(zip(jobs, indices, strict=True)):
            j.id, j.sweep_id, j.array_index, j.sweep_limit = -(i + 1), PROVISIONAL_ID, index, limit
        # trials that run now (--now) are all planned now, as Slurm starts an array: the
        # daemon runs them %N at a time (scheduler.sweeps.launch_gate); a plan under the cap
        # could not start the later ones by their latest start, which is now
        capped_plan = not all(j.run_now for j in jobs)
        if not capped_plan:
            for j in jobs:
                j.sweep_limit = None
        sites = self.catalog.sites()
        forecasts, sources = self.catalog.forecasts_for(jobs, sites, now)
        managed = [n for n, s in sites.items() if s.gpus > 0 or s.cpus > 0]
        held = self.held.on(managed, now) if managed else ()
        result = plan(jobs, forecasts, sites, now, self.catalog.plan_options(reserved=held, allow_overdue=False))
        for j in jobs:
            j.sweep_limit = limit
        missing = [j for j in jobs if j.id not in result.entries]
        if missing and all(j.id in result.earliest_finish for j in missing):
            # where the whole sweep would end: every trial placed, late ones past the deadline
            late = plan(jobs, forecasts, sites, now, self.catalog.plan_options(reserved=held, allow_overdue=True))
            ends = [e.intervals[-1][1] if e.intervals else e.start + timedelta(seconds=j.duration_s)
                    for j in jobs if (e := late.entries.get(j.id)) is not None]  # type: ignore[arg-type]
            fits = max([*ends, *(result.earliest_finish[j.id] for j in missing)])  # type: ignore[index]
            late_one = missing[0]
            if late_one.deadline_at is None or finishes_late(fits, late_one.deadline_at):
                raise deadline_refusal(f"sweep {name!r} of {len(jobs)} trials", late_one, fits, now)
            raise InfeasibleJob(
                f"sweep {name!r} of {len(jobs)} trials: trial {late_one.array_index} cannot start by its "
                f"latest start {iso(late_one.latest_start)} with at most {limit} at once (the whole sweep "
                f"would end {iso(fits)}): give a later --latest-start, a larger %N, or fewer trials"
            )
        if missing:
            j = missing[0]
            raise InfeasibleJob(f"sweep {name!r}: trial {j.array_index} cannot be planned: "
                                + result.unplanned.get(j.id, "no start fits its policy"))  # type: ignore[arg-type]
        entries = [result.entries[j.id] for j in jobs]  # type: ignore[index]
        for j, entry in zip(jobs, entries, strict=True):
            if j.budget_g is not None and math.isfinite(entry.expected_g) and entry.expected_g > j.budget_g:
                raise InfeasibleJob(
                    f"sweep {name!r}: trial {j.array_index}'s carbon budget {fmt_mass_g(j.budget_g)} is "
                    f"below the best window's expected {entry.expected_g:.1f} g: raise --budget "
                    "(per trial) or use --sweep-budget for the whole sweep"
                )
        expected = sum(e.expected_g for e in entries if math.isfinite(e.expected_g))
        if budget_g is not None and expected > budget_g:
            run_now = sum(e.run_now_g for e in entries if math.isfinite(e.run_now_g))
            raise InfeasibleJob(
                f"sweep budget {fmt_mass_g(budget_g)} is below the best plan's expected "
                f"{fmt_mass_g(expected)} for {len(jobs)} trials (running them now: "
                f"{fmt_mass_g(run_now)}): raise --sweep-budget, extend the deadline or run fewer trials"
            )
        for j, entry in zip(jobs, entries, strict=True):
            apply_entry(j, entry, *sources[zone_of(entry.site, sites, j.zone)])
            j.id = None
        first = jobs[0]
        sweep = Sweep(name=name, size=len(jobs), submitted_at=now, deadline_at=first.deadline_at,
                      max_concurrent=limit, budget_g=budget_g, owner=self.user)
        events = [(now, "submitted",
                   f"trial {j.array_index} of sweep {name!r}: planned {iso(e.start)} on {e.site} "
                   f"({e.reason}; {j.plan_source})") for j, e in zip(jobs, entries, strict=True)]
        spans = [e.intervals if len(e.intervals) > 1 else () for e in entries]
        stored, trials = self.store.add_sweep_with_jobs(
            sweep, jobs, events=events, intervals=spans if any(spans) else None)
        source, fallback = sources[zone_of(entries[0].site, sites, first.zone)]
        return SweepResult(stored, trials, [replace(e, job_id=j.id or 0) for j, e in zip(trials, entries, strict=True)],
                           source, fallback)

