"""The queue's logic: submitting, planning, cancelling. I/O goes through the store.

``submit`` validates everything before writing anything: a refused job leaves no row.
"""

from __future__ import annotations

import math
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from intensity.errors import UnknownZone
from intensity.model import Forecast
from scheduler.errors import BadInput, InfeasibleJob, NotFound, NotOwner
from scheduler.holds import holds
from scheduler.mlflow_log import ENV_VARS as MLFLOW_ENV_VARS
from scheduler.model import (
    PAUSE_MODES,
    TERMINAL_STATES,
    WAITING_STATES,
    Event,
    Job,
    JobState,
    Plan,
    PlanEntry,
    Policy,
    Site,
    Sweep,
    check_power_w,
    check_resources,
    sweep_ref,
)
from scheduler.planner import PlanOptions, horizon_needed_s, plan, window_mean_g_per_kwh
from scheduler.policies import BUILTIN_POLICIES, merge, resolve, validate_policy
from scheduler.timeutil import format_duration, iso, spans_text
from scheduler.units import fmt_energy_j, fmt_mass_g

if TYPE_CHECKING:
    from intensity.chain import IntensityService
    from scheduler.clock import Clock
    from scheduler.config import Settings
    from scheduler.storage.base import JobStore

#: Variables copied from the submitter's environment into the job's (plus --env values).
#: Never the daemon's environment, which may hold API tokens.
ENV_ALLOW_LIST = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "PYTHONPATH", "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS", "HF_HOME", "TORCH_HOME",
    *MLFLOW_ENV_VARS,  # the MLflow run a job belongs to: its figures are logged there
)
MAX_NAME_LEN = 200
MAX_ARGV_BYTES = 128 * 1024
DEFAULT_SITE = "local"
CONFIG_CACHE_S = 1.0
T = TypeVar("T")
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


def zone_of(site: str, sites: Mapping[str, Site], default: str) -> str:
    """The zone of ``site``; ``default`` (the job's zone) for a site not stored."""
    known = sites.get(site)
    return known.zone if known is not None else default


def consume(spans: Sequence[tuple[datetime, datetime]], work_s: float) -> list[tuple[datetime, datetime]]:
    """How a paused job would run ``work_s`` seconds along ``spans``: interval after
    interval, the last one stretched or cut to what is left (the daemon never pauses a
    job in its last interval, and it ends when the job exits)."""
    out: list[tuple[datetime, datetime]] = []
    left = work_s
    for i, (a, b) in enumerate(spans):
        if left <= 0:
            break
        length = (b - a).total_seconds()
        take = left if i == len(spans) - 1 else min(left, length)
        out.append((a, a + timedelta(seconds=take)))
        left -= take
    return out


def check_text(value: str, what: str, *, max_len: int = MAX_NAME_LEN, allow: str = "") -> str:
    """Refuse control characters (except those in ``allow``) and overlong strings."""
    if len(value) > max_len:
        raise BadInput(f"{what} is {len(value)} characters long: keep it under {max_len}")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs") and ch not in allow:
            raise BadInput(f"{what} {value[:40]!r} contains a control character: remove it")
    return value


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


def deadline_refusal(what: str, job: Job, fits: datetime, now: datetime) -> InfeasibleJob:
    """The refusal of a job (or a sweep, through one of its trials) that cannot finish by
    its deadline on the capacity left, naming the earliest finish that fits."""
    need = format_duration((fits - now).total_seconds(), ceil=True)
    return InfeasibleJob(
        f"{what} cannot finish by its deadline "
        f"{iso(job.deadline_at) if job.deadline_at else '(none)'}: the GPUs/CPUs of "
        f"{', '.join(dict.fromkeys([job.site, *job.allowed_sites]))} are committed until "
        f"then; the earliest finish that fits is {iso(fits)}: give --deadline {need} or later"
    )


@dataclass(frozen=True)
class SweepResult:
    """A stored sweep, its trials (planned) and each trial's plan entry, in index order."""

    sweep: Sweep
    trials: list[Job]
    entries: list[PlanEntry]
    plan_source: str
    fallback: bool


class Queue:
    """Submit, plan and cancel jobs against a store, an intensity service and a clock.

    Each collaborator is given as a function returning the current one: the composition
    root (:class:`~scheduler.app.App`) opens the store and sets up the providers only when
    first needed (a refused submit writes nothing, a bad trace is refused before a database
    is made), and a test or the demo may swap the clock or the settings of a running app.
    """

    def __init__(
        self,
        *,
        store: Callable[[], JobStore],
        intensity: Callable[[], IntensityService],
        settings: Callable[[], Settings],
        clock: Callable[[], Clock],
        user: Callable[[], str],
        database_exists: Callable[[], bool] = lambda: True,
    ) -> None:
        self._store, self._intensity, self._settings = store, intensity, settings
        self._clock, self._user = clock, user
        #: whether the database is there yet (reading sites must not create it)
        self._database_exists = database_exists
        self._forecasts: dict[str, tuple[datetime, int, Forecast, str, bool]] = {}
        # sites and policies, cached for a second (and dropped at once when this process
        # writes one): a bulk of submits should not read them from the database each time
        self._cache: dict[str, tuple[float, int, object]] = {}

    @property
    def store(self) -> JobStore:
        return self._store()

    @property
    def intensity(self) -> IntensityService:
        return self._intensity()

    @property
    def settings(self) -> Settings:
        return self._settings()

    @property
    def clock(self) -> Clock:
        return self._clock()

    @property
    def user(self) -> str:
        """Who submits and cancels (a job's owner)."""
        return self._user()

    def _cached(self, key: str, load: Callable[[], T]) -> T:
        now = time.monotonic()
        version = getattr(self.store, "config_version", 0)
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CONFIG_CACHE_S and hit[1] == version:
            return hit[2]  # type: ignore[return-value]
        value = load()
        self._cache[key] = (now, version, value)
        return value

    # -- policies -----------------------------------------------------------------------
    def _stored_policy(self, name: str) -> Policy | None:
        try:
            return self.store.get_policy(name)
        except NotFound:
            return None

    def get_policy(self, name: str) -> Policy:
        # a database not made yet holds none (and asking makes none: a refused submit on a
        # fresh data folder leaves nothing behind)
        exists = self._database_exists()
        stored = self._cached("policy:" + name, lambda: self._stored_policy(name)) if exists else None
        if stored is not None:
            return stored
        if name in BUILTIN_POLICIES:
            return BUILTIN_POLICIES[name]
        known = sorted({p.name for p in (self.store.list_policies() if exists else [])} | set(BUILTIN_POLICIES))
        raise NotFound(
            f"unknown policy {name!r}: known policies are {', '.join(known)} "
            "(create one with `carbonshift policy set NAME ...`)"
        )

    def list_policies(self) -> list[tuple[Policy, bool]]:
        """Stored policies, plus built-ins not overridden; ``(policy, builtin)``."""
        stored = {p.name: p for p in self.store.list_policies()}
        out = [(p, False) for p in stored.values()]
        out += [(p, True) for n, p in BUILTIN_POLICIES.items() if n not in stored]
        return sorted(out, key=lambda t: t[0].name)

    # -- sites --------------------------------------------------------------------------
    def sites(self) -> dict[str, Site]:
        """Stored sites plus the default ``local`` site (home zone from config).

        The default site manages no capacity (0 GPUs, 0 CPUs: the planner does not limit
        how many jobs overlap there) until ``carbonshift site add local --gpus N --cpus N``
        stores real figures.
        """
        # a database not made yet holds none (and asking makes none)
        sites = dict(self._cached("sites", lambda: {s.name: s for s in self.store.list_sites()})
                     if self._database_exists() else {})
        if DEFAULT_SITE not in sites:
            sites[DEFAULT_SITE] = Site(
                name=DEFAULT_SITE, zone=self.settings.default_zone, executor="local",
                gpus=0, cpus=0, pue=1.0,
            )
        return sites

    # -- forecasts ----------------------------------------------------------------------
    def forecast(self, zone: str, now: datetime, horizon_s: int) -> tuple[Forecast, str, bool]:
        """Forecast through the chain, memoised in-process for a minute of clock time."""
        memo = self._forecasts.get(zone)
        if memo is not None:
            at, horizon, fc, source, fb = memo
            if at <= now < at + timedelta(seconds=60) and (
                fc.end is not None and fc.end >= now + timedelta(seconds=min(horizon, horizon_s))
            ) and horizon >= horizon_s:
                return fc, source, fb
        answer = self.intensity.forecast(zone, now, max(horizon_s, 3600))
        result = (answer.forecast, answer.describe(), answer.fallback)
        self._forecasts[zone] = (now, max(horizon_s, 3600), *result)
        return result

    # -- submit ---------------------------------------------------------------------------
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
        sites = self.sites()
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
        policy = validate_policy(merge(self.get_policy(policy_name), overrides))
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

    def plan_options(self, **kw: object) -> PlanOptions:
        """The planner's options: the config's split of interruptible jobs, plus ``kw``."""
        s = self.settings
        return PlanOptions(min_chunk_s=int(s.min_chunk_s), max_pauses=s.max_pauses, **kw)  # type: ignore[arg-type]

    def plan_one(self, job: Job, now: datetime) -> tuple[PlanEntry, str, bool]:
        """Plan a single (validated) job against the current forecasts of the zones it may
        run in. Where a site manages capacity, the job is fitted around what is already
        committed there (planned and running jobs) and refused, with the earliest finish
        that would fit, when nothing fits by its deadline."""
        sites = self.sites()
        forecasts, sources = self.forecasts_for([job], sites, now)
        probe = job if job.id is not None else replace(job, id=-1)
        held = self.committed_capacity(probe, sites, now)
        options = (self.plan_options(reserved=held, allow_overdue=False) if held is not None
                   else self.plan_options())
        result = plan([probe], forecasts, sites, now, options)
        entry = result.entries.get(probe.id)  # type: ignore[arg-type]
        if entry is None and probe.id in result.earliest_finish:
            raise deadline_refusal(f"job {job.name!r}", job, result.earliest_finish[probe.id], now)
        if entry is None:
            raise InfeasibleJob(f"job {job.name!r} cannot be planned: "
                                + result.unplanned.get(probe.id, "no start fits its policy"))  # type: ignore[arg-type]
        return (entry, *sources[zone_of(entry.site, sites, job.zone)])

    def forecasts_for(
        self, jobs: Sequence[Job], sites: Mapping[str, Site], now: datetime, *, fresh: bool = False,
    ) -> tuple[dict[str, Forecast], dict[str, tuple[str, bool]]]:
        """Forecasts (and their source, fallback) of every zone ``jobs`` may run in: each
        job's home and every allowed site's zone, to the horizon they need; ``fresh``
        skips the in-process memo (a re-plan wants the latest forecasts)."""
        horizon = horizon_needed_s(jobs, now)
        zones = dict.fromkeys(
            zone_of(name, sites, j.zone) for j in jobs for name in (j.site, *j.allowed_sites)
            if name == j.site or name in sites
        )
        forecasts: dict[str, Forecast] = {}
        sources: dict[str, tuple[str, bool]] = {}
        for z in zones:
            if fresh:
                self._forecasts.pop(z, None)
            fc, source, fb = self.forecast(z, now, horizon)
            forecasts[z] = fc
            sources[z] = (source, fb)
        return forecasts, sources

    def committed_capacity(
        self, job: Job, sites: Mapping[str, Site], now: datetime
    ) -> tuple[tuple[str, datetime, datetime, int, int], ...] | None:
        """Capacity already held on the sites ``job`` may use that manage the resources it
        needs: ``(site, start, end, gpus, cpus)`` per planned or running job. ``None`` when
        no such site manages capacity (the job is then planned on its own, as before)."""
        names = [
            n for n in dict.fromkeys([job.site, *job.allowed_sites])
            if n in sites and ((sites[n].gpus > 0 and job.gpus > 0) or (sites[n].cpus > 0 and job.cpus > 0))
        ]
        if not names:
            return None
        return self._held_on(names, now, skip=job.id)

    def _held_on(
        self, names: Iterable[str], now: datetime, skip: int | None = None
    ) -> tuple[tuple[str, datetime, datetime, int, int], ...]:
        """``(site, start, end, gpus, cpus)`` of every planned or running job on ``names``."""
        held = []
        states = [JobState.PLANNED, JobState.RUNNING, JobState.SUSPENDED]
        jobs = [j for j in self.store.list_jobs(states, sites=list(names)) if j.id != skip]
        spans = self._stored_spans(jobs)
        for j in jobs:
            held += holds(j, spans.get(j.id), now)  # type: ignore[arg-type]
        return tuple(held)

    def _stored_spans(self, jobs: Iterable[Job]) -> dict[int, list[tuple[datetime, datetime]]]:
        """The planned intervals of the interruptible jobs among ``jobs`` (one query)."""
        ids = [j.id for j in jobs if j.interruptible and j.id is not None]
        return self.store.planned_intervals(ids) if ids else {}

    def submit(self, req: SubmitRequest, *, now: datetime | None = None) -> SubmitResult:
        """Validate, plan and store a job; nothing is written if anything is refused."""
        now = now or self.clock.now()
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
        self._apply_entry(job, entry, source, fallback)
        stored = self.store.add_job(job, event=(
            now, "submitted", f"planned {iso(entry.start)} on {entry.site} ({entry.reason}; {source})"
            + (f" in {len(entry.intervals)} intervals: {spans_text(entry.intervals)}"
               if len(entry.intervals) > 1 else "")
        ), intervals=entry.intervals if len(entry.intervals) > 1 else ())
        assert stored.id is not None
        return SubmitResult(stored, replace(entry, job_id=stored.id), source, fallback)

    def submit_many(self, reqs: Sequence[SubmitRequest], *, now: datetime | None = None) -> list[Job]:
        """Validate and plan many jobs, then store them in one transaction."""
        now = now or self.clock.now()
        jobs = [self.build_job(r, now) for r in reqs]
        for i, j in enumerate(jobs):
            j.id = -(i + 1)
        sites = self.sites()
        forecasts, sources = self.forecasts_for(jobs, sites, now)
        # capacity: the batch shares each site's slots, around what is already committed
        managed = [n for n, s in sites.items() if s.gpus > 0 or s.cpus > 0]
        options = (
            self.plan_options(reserved=self._held_on(managed, now), allow_overdue=False)
            if managed else self.plan_options()
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
            self._apply_entry(j, entry, *sources[zone_of(entry.site, sites, j.zone)])
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

        now = now or self.clock.now()
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
        sites = self.sites()
        forecasts, sources = self.forecasts_for(jobs, sites, now)
        managed = [n for n, s in sites.items() if s.gpus > 0 or s.cpus > 0]
        held = self._held_on(managed, now) if managed else ()
        result = plan(jobs, forecasts, sites, now, self.plan_options(reserved=held, allow_overdue=False))
        for j in jobs:
            j.sweep_limit = limit
        missing = [j for j in jobs if j.id not in result.entries]
        if missing and all(j.id in result.earliest_finish for j in missing):
            # where the whole sweep would end: every trial placed, late ones past the deadline
            late = plan(jobs, forecasts, sites, now, self.plan_options(reserved=held, allow_overdue=True))
            ends = [e.intervals[-1][1] if e.intervals else e.start + timedelta(seconds=j.duration_s)
                    for j in jobs if (e := late.entries.get(j.id)) is not None]  # type: ignore[arg-type]
            fits = max([*ends, *(result.earliest_finish[j.id] for j in missing)])  # type: ignore[index]
            late_one = missing[0]
            if late_one.deadline_at is None or fits > late_one.deadline_at:
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
            self._apply_entry(j, entry, *sources[zone_of(entry.site, sites, j.zone)])
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

    def cancel_sweep(self, sweep_id: int, *, now: datetime | None = None) -> tuple[Sweep, list[int], list[int]]:
        """Cancel a whole sweep: no trial is launched any more, the waiting ones become
        ``skipped`` and the running ones are cancelled (their agents stop them). Returns
        the sweep and the ids of the trials skipped and of those cancelled while running."""
        from scheduler.sweeps import CANCELLED_NOTE, stop

        now = now or self.clock.now()
        sweep = self.store.get_sweep(sweep_id)
        trials = self.store.list_jobs(sweep_id=sweep_id)
        for j in trials:
            self.check_owner(j)
        if all(j.state in TERMINAL_STATES for j in trials):
            raise BadInput(f"sweep {sweep_ref(sweep_id)} is already over "
                           f"({sweep.stop_reason or 'every trial ended'}): nothing to cancel")
        skipped = stop(self.store, sweep_id, now, "sweep cancelled", CANCELLED_NOTE)
        cancelled = []
        for j in self.store.list_jobs([JobState.RUNNING, JobState.SUSPENDED], sweep_id=sweep_id):
            assert j.id is not None
            try:
                self.cancel(j.id, now=now)
            except BadInput:
                continue  # it ended meanwhile
            cancelled.append(j.id)
        return self.store.get_sweep(sweep_id), skipped, cancelled

    @staticmethod
    def _apply_entry(job: Job, entry: PlanEntry, source: str, fallback: bool) -> None:
        job.state = JobState.PLANNED
        job.planned_start = entry.start
        job.planned_site = entry.site
        job.expected_g = entry.expected_g if math.isfinite(entry.expected_g) else None
        job.run_now_g = entry.run_now_g if math.isfinite(entry.run_now_g) else None
        job.plan_source = source
        job.note = f"{entry.reason}" + ("; planned on fallback carbon data" if fallback else "")

    # -- re-planning ----------------------------------------------------------------------
    def replan(self, now: datetime, *, hysteresis_pct: float | None = None) -> tuple[Plan, list[tuple[Job, PlanEntry]]]:
        """Re-plan every waiting job with fresh forecasts; write moves that save enough.

        A planned job moves only when the new plan saves more than ``hysteresis_pct`` of its
        current expected emissions (re-evaluated on the new forecast), so plans don't flap.
        Returns the plan and the list of (job, new entry) actually moved.
        """
        hysteresis = self.settings.replan_hysteresis_pct if hysteresis_pct is None else hysteresis_pct
        # paused interruptible jobs first: their remaining work keeps its place ahead of jobs
        # that have not started
        resumed_moves = self.replan_suspended(now, hysteresis_pct=hysteresis)
        # a planned job whose start has come is due, not re-planned: the daemon launches it
        jobs = [
            j for j in self.store.list_jobs(WAITING_STATES)
            if not (j.state is JobState.PLANNED and j.planned_start is not None and j.planned_start <= now)
        ]
        if not jobs:
            return Plan(), resumed_moves
        sites = self.sites()
        # every zone a job may run in: a site without a forecast is not an option, and a job
        # planned there would be moved home
        forecasts, sources = self.forecasts_for(jobs, sites, now, fresh=True)
        running = self._started_holds(now) if any(
            s.gpus > 0 or s.cpus > 0 for s in sites.values()) else []  # running or due: held
        # the whole queue together: capacity per site per slot, running jobs holding theirs;
        # placements in force move only for a gain above the hysteresis, inside the planner
        # (which prices them where they are, transfer included), so a kept job's capacity is
        # never handed to another and a move forced by another job's move is written
        in_force = {
            j.id: (j.planned_site or j.site, j.planned_start) for j in jobs
            if j.id is not None and j.state is JobState.PLANNED and j.planned_start is not None
            and j.planned_start >= now
        }
        new_plan = plan(jobs, forecasts, sites, now, self.plan_options(
            reserved=tuple(running), current=in_force, hysteresis_pct=hysteresis,
            sweep_reserved=self._sweep_holds(now) if any(j.sweep_limit for j in jobs) else (),
        ))
        moved: list[tuple[Job, PlanEntry]] = []
        keep = Plan()
        for j in jobs:
            assert j.id is not None
            entry = new_plan.entries.get(j.id)
            if entry is None:
                continue
            if j.state is JobState.PLANNED and entry.start == j.planned_start and (
                    entry.site == (j.planned_site or j.site)):
                continue
            keep.entries[j.id] = entry
            self._apply_entry(j, entry, *sources[zone_of(entry.site, sites, j.zone)])
            moved.append((j, entry))
        if keep.entries:
            self.store.apply_plan(keep, now)
            for j, _entry in moved:
                assert j.id is not None
                # only while still waiting: an agent may have claimed it since apply_plan
                self.store.update_job(j, expected=WAITING_STATES)
        return new_plan, resumed_moves + moved

    def _started_holds(
        self, now: datetime, *, skip: int | None = None
    ) -> list[tuple[str, datetime, datetime, int, int]]:
        """Capacity held by running and suspended jobs (their planned intervals ahead) and
        by planned jobs already due."""
        started = [
            j for j in self.store.list_jobs([JobState.RUNNING, JobState.SUSPENDED, JobState.PLANNED])
            if j.id != skip and (j.state is not JobState.PLANNED
                                 or (j.planned_start is not None and j.planned_start <= now))
        ]
        spans = self._stored_spans(started)
        out: list[tuple[str, datetime, datetime, int, int]] = []
        for j in started:
            out += holds(j, spans.get(j.id), now)  # type: ignore[arg-type]
        return out

    def _sweep_holds(self, now: datetime) -> tuple[tuple[int, datetime, datetime], ...]:
        """What started trials of capped sweeps (running, suspended, or planned and due)
        count against their sweeps' caps from ``now`` on (:func:`scheduler.holds.sweep_holds`)."""
        from scheduler.holds import sweep_holds

        started = [
            j for j in self.store.list_jobs([JobState.RUNNING, JobState.SUSPENDED, JobState.PLANNED])
            if j.sweep_limit is not None and (j.state is not JobState.PLANNED
                                              or (j.planned_start is not None and j.planned_start <= now))
        ]
        spans = self._stored_spans(started)
        return tuple(h for j in started for h in sweep_holds(j, spans.get(j.id), now))  # type: ignore[arg-type]

    def replan_suspended(
        self, now: datetime, *, hysteresis_pct: float | None = None
    ) -> list[tuple[Job, PlanEntry]]:
        """Re-plan the remaining work of paused interruptible jobs before their deadlines.

        A suspended job's remaining work is its duration less the time its run has run so
        far. It is planned on the run's site (a paused run does not move), placed before
        any waiting job, and moved only when the new intervals save more than
        ``hysteresis_pct`` of what its intervals in force are expected to emit (or when none
        is left ahead). A job still checkpointing (its last interval open) is left alone.
        Returns the (job, new entry) pairs written.
        """
        hysteresis = self.settings.replan_hysteresis_pct if hysteresis_pct is None else hysteresis_pct
        suspended = self.store.list_jobs([JobState.SUSPENDED])
        if not suspended:
            return []
        sites = self.sites()
        stored = self.store.planned_intervals(j.id for j in suspended if j.id is not None)
        moved: list[tuple[Job, PlanEntry]] = []
        for job in suspended:
            assert job.id is not None
            runs = self.store.runs_for_job(job.id)
            run = runs[-1] if runs and runs[-1].finished_at is None else None
            if run is None or run.id is None:
                continue
            done = self.store.run_intervals(run.id)
            if not done or any(iv.end is None for iv in done):
                continue
            ran_s = sum((iv.end - iv.start).total_seconds() for iv in done if iv.end is not None)
            remaining = max(60, math.ceil(job.duration_s - ran_s))
            site = sites.get(run.site)
            zone = site.zone if site is not None else job.zone
            pue = site.pue if site is not None else 1.0
            finish_by = job.deadline_at or (job.latest_start + timedelta(seconds=job.duration_s))
            probe = replace(
                job, state=JobState.PLANNED, duration_s=remaining, site=run.site,
                allowed_sites=[], earliest_start=now,
                latest_start=max(now, finish_by - timedelta(seconds=remaining)),
                run_now=False, threshold_g_per_kwh=None,
            )
            fc, source, _ = self.forecast(zone, now, horizon_needed_s([probe], now))
            held = tuple(self._started_holds(now, skip=job.id)) if site is not None and (
                site.gpus > 0 or site.cpus > 0) else ()
            entry = plan([probe], {zone: fc}, sites, now, self.plan_options(
                reserved=held, committed=frozenset({job.id}),
            )).entries.get(job.id)
            if entry is None:
                continue
            ahead = consume([(max(a, now), b) for a, b in stored.get(job.id, []) if b > now], remaining)
            if ahead and list(entry.intervals) == ahead:
                continue
            if ahead and math.isfinite(entry.expected_g):
                cur_g = sum(
                    window_mean_g_per_kwh(fc, a, max(1, int((b - a).total_seconds())))
                    * (b - a).total_seconds() for a, b in ahead
                ) * job.power_w * pue / 3.6e6
                gain = cur_g - entry.expected_g
                if not (math.isfinite(gain) and gain > cur_g * hysteresis / 100.0):
                    continue
            note = (f"re-planned while paused: {format_duration(remaining)} left in "
                    f"{len(entry.intervals)} interval(s); {entry.reason}; {source}")
            if self.store.replan_suspended(job.id, entry.intervals, now, note=note):
                job.note = note
                moved.append((job, entry))
        return moved

    # -- cancel ---------------------------------------------------------------------------
    def check_owner(self, job: Job) -> None:
        """Only the owner (or an admin from config) may cancel or change a job."""
        user = self.user
        if job.owner and job.owner != user and user not in self.settings.admins and user != "root":
            raise NotOwner(
                f"job {job.id} belongs to {job.owner!r}, not {user!r}: ask them, or an admin "
                "listed in the config's `admins`"
            )

    def cancel(self, job_id: int, *, now: datetime | None = None) -> tuple[Job, bool]:
        """Cancel a job. Returns the job and whether it was running (the daemon stops it)."""
        now = now or self.clock.now()
        job = self.store.get_job(job_id)
        self.check_owner(job)
        if job.state in TERMINAL_STATES:
            raise BadInput(f"job {job_id} is already {job.state}: nothing to cancel")
        was_running = job.state in (JobState.RUNNING, JobState.SUSPENDED)
        if not self.store.transition(
            job_id, JobState.CANCELLED,
            expected={JobState.PENDING, JobState.PLANNED, JobState.RUNNING, JobState.SUSPENDED},
            note="cancelled by " + self.user,
        ):
            job = self.store.get_job(job_id)
            raise BadInput(f"job {job_id} is already {job.state}: nothing to cancel")
        self.store.add_event(Event(job_id, now, "cancelled", f"cancelled by {self.user}"))
        return self.store.get_job(job_id), was_running

    def jobs(self, states: Iterable[JobState] | None = None) -> list[Job]:
        return self.store.list_jobs(states)
