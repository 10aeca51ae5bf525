"""The nouns of carbonshift: jobs, policies, sites, plans, runs.

Plain dataclasses with units in their names and timezone-aware UTC datetimes. They carry
no I/O; the store maps them to tables, the planner reads them, the CLI prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its life.

    ``pending -> planned -> running -> (succeeded | failed | cancelled)``; ``suspended`` for a
    paused interruptible job; ``lost`` for a run whose host or process died unobserved.
    """

    PENDING = "pending"
    PLANNED = "planned"
    RUNNING = "running"
    SUSPENDED = "suspended"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    #: a sweep's trial that will not be launched (sweep budget spent, ``sweep stop``); the
    #: job's ``note`` says why, e.g. ``skipped: sweep budget``
    SKIPPED = "skipped"


TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST, JobState.SKIPPED}
)
WAITING_STATES = frozenset({JobState.PENDING, JobState.PLANNED})


@dataclass(frozen=True, slots=True)
class Policy:
    """A named carbon deadline policy.

    Relative fields (``*_s``) count from the job's submission; absolute ones (``*_at``) are
    UTC instants. ``run_now`` disables shifting; ``threshold_g_per_kwh`` starts the job at
    the first window whose forecast mean is below it; ``budget_g`` refuses a job whose best
    window would still emit more.
    """

    name: str
    deadline_s: int | None = None
    deadline_at: datetime | None = None
    latest_start_s: int | None = None
    latest_start_at: datetime | None = None
    max_delay_s: int | None = None
    threshold_g_per_kwh: float | None = None
    budget_g: float | None = None
    run_now: bool = False
    interruptible: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Site:
    """A place jobs run: a grid zone, an executor, a capacity and a PUE."""

    name: str
    zone: str
    executor: str = "local"
    gpus: int = 0
    cpus: int = 0
    pue: float = 1.0
    transfer_delay_s: int = 0
    transfer_energy_j: float = 0.0


#: the most GPUs and CPU cores one job may ask for, or one site may have (beyond any machine)
MAX_GPUS = 1024
MAX_CPUS = 100_000


def check_count(value: int, what: str, limit: int) -> int:
    """A count of GPUs or CPUs: a whole number from 0 to ``limit``; :class:`BadInput` naming
    ``what`` and the value otherwise."""
    from scheduler.errors import BadInput

    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{what} {value!r} is not a whole number: give one like 1 or 8")
    if value < 0:
        raise BadInput(f"{what} {value} must not be negative")
    if value > limit:
        raise BadInput(f"{what} {value} is more than {limit:,}: give at most {limit}")
    return value


#: the most power one job may be estimated to draw, W (10 MW: a whole data centre)
MAX_POWER_W = 1e7


def check_power_w(power_w: float, what: str = "power") -> float:
    """A job's estimated mean power: a finite number of watts above 0, at most
    :data:`MAX_POWER_W`."""
    import math

    from scheduler.errors import BadInput

    if not isinstance(power_w, int | float) or not math.isfinite(power_w) or not 0 < power_w <= MAX_POWER_W:
        raise BadInput(f"{what} {power_w!r} W must be a positive number of watts, at most {MAX_POWER_W:.0e}")
    return float(power_w)


def check_resources(gpus: int, cpus: int, *, gpus_what: str = "--gpus", cpus_what: str = "--cpus") -> None:
    """GPUs and CPU cores of a job or a site within :data:`MAX_GPUS` and :data:`MAX_CPUS`."""
    check_count(gpus, gpus_what, MAX_GPUS)
    check_count(cpus, cpus_what, MAX_CPUS)


@dataclass(slots=True)
class Job:
    """A command with resources, an estimate, resolved policy constraints and a state.

    The policy is resolved at submission into absolute bounds (``earliest_start``,
    ``latest_start``, ``deadline_at``) so a job stays meaningful if its policy is later
    changed or removed. ``power_w`` is the estimated mean power draw used for planning.
    """

    name: str
    argv: list[str]
    duration_s: int
    zone: str
    submitted_at: datetime
    earliest_start: datetime
    latest_start: datetime
    deadline_at: datetime | None
    id: int | None = None
    cwd: str = "."
    env: dict[str, str] = field(default_factory=dict)
    shell: bool = False
    power_w: float = 100.0
    gpus: int = 0
    cpus: int = 1
    site: str = "local"
    allowed_sites: list[str] = field(default_factory=list)
    owner: str = ""
    policy_name: str | None = None
    threshold_g_per_kwh: float | None = None
    budget_g: float | None = None
    run_now: bool = False
    interruptible: bool = False
    priority: int = 0
    #: moving the job away from its home site: delay before it can start there and the
    #: energy spent moving its data; ``None`` uses the destination site's figures
    transfer_delay_s: int | None = None
    transfer_energy_j: float | None = None
    #: how an interruptible job is paused (resolved at submission; ``None`` otherwise):
    #: ``stop`` (SIGSTOP/SIGCONT of its process group) or ``checkpoint`` (``pause_signal``,
    #: up to ``pause_grace_s`` real seconds to exit, then re-launched to resume)
    pause_mode: str | None = None
    pause_signal: str | None = None
    pause_grace_s: float | None = None
    state: JobState = JobState.PENDING
    planned_start: datetime | None = None
    planned_site: str | None = None
    expected_g: float | None = None
    run_now_g: float | None = None
    plan_source: str | None = None
    note: str = ""
    attempts: int = 0
    updated_at: datetime | None = None
    #: a trial of a sweep (``carbonshift submit --array``/``--sweep``): the sweep's id, this
    #: trial's index in it, and the sweep's cap on trials running at once (``%N``; ``None``
    #: for no cap), copied onto each trial so the planner and the daemon need no lookup
    sweep_id: int | None = None
    array_index: int | None = None
    sweep_limit: int | None = None


def sweep_ref(sweep_id: int) -> str:
    """How a sweep's id is written everywhere (``s3``), apart from a job's (``3``)."""
    return f"s{sweep_id}"


@dataclass(slots=True)
class Sweep:
    """A hyperparameter search submitted as one unit: trials as jobs sharing one policy.

    ``deadline_at`` is the whole sweep's (every trial must finish by it); ``max_concurrent``
    is the ``%N`` cap; ``budget_g`` the carbon budget of the whole sweep (expected grams at
    submit, then measured grams of finished and running trials); ``stopped_at`` and
    ``stop_reason`` are set when no more trials will be launched (``sweep stop``, budget
    spent, ``cancel``).
    """

    name: str
    size: int
    submitted_at: datetime
    id: int | None = None
    deadline_at: datetime | None = None
    max_concurrent: int | None = None
    budget_g: float | None = None
    owner: str = ""
    stopped_at: datetime | None = None
    stop_reason: str = ""


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """Where and when one job is planned, and the emissions the forecast expects.

    ``intervals`` lists the run intervals: one for a job that runs in one go, several for an
    interruptible job the planner split. ``run_now_g`` is the same estimate for starting at
    the earliest allowed time on the home site, the counterfactual at planning time.
    """

    job_id: int
    site: str
    start: datetime
    expected_g: float
    run_now_g: float
    mean_intensity_g_per_kwh: float
    reason: str
    intervals: tuple[tuple[datetime, datetime], ...] = ()


#: each field's own slot setter, in field order (see :func:`plan_entry`)
PLAN_ENTRY_SETTERS = tuple(PlanEntry.__dict__[f.name].__set__ for f in fields(PlanEntry))


def plan_entry(job_id: int, site: str, start: datetime, expected_g: float, run_now_g: float,
               mean_intensity_g_per_kwh: float, reason: str,
               intervals: tuple[tuple[datetime, datetime], ...]) -> PlanEntry:
    """``PlanEntry(...)`` of the same fields, made faster: a frozen dataclass's ``__init__``
    sets every field through ``object.__setattr__`` (about 0.66 us an entry here), and the
    planner writes tens of thousands a plan; ``object.__new__`` and the slots' own setters
    take half of that. The same object, still frozen to every other writer."""
    e = _new(PlanEntry)
    _set_id(e, job_id)
    _set_site(e, site)
    _set_start(e, start)
    _set_g(e, expected_g)
    _set_now_g(e, run_now_g)
    _set_mean(e, mean_intensity_g_per_kwh)
    _set_why(e, reason)
    _set_runs(e, intervals)
    return e


_new = object.__new__
_set_id, _set_site, _set_start, _set_g, _set_now_g, _set_mean, _set_why, _set_runs = PLAN_ENTRY_SETTERS


@dataclass(slots=True)
class Plan:
    """The planner's answer: an entry per plannable job, and why the others were not.

    ``earliest_finish`` gives, for a job that could not be planned by its deadline (capacity
    taken), the earliest finish that would fit.
    """

    entries: dict[int, PlanEntry] = field(default_factory=dict)
    unplanned: dict[int, str] = field(default_factory=dict)
    earliest_finish: dict[int, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunAccounting:
    """Energy and emissions of a finished run, with where each figure came from.

    ``energy_j`` is measured IT energy (PUE not applied); ``facility_energy_j`` is it times
    the site's PUE, and emissions use the facility figure. ``counterfactual_g`` is the same
    measured power profile had the job started at submission on its home zone.
    """

    energy_j: float
    facility_energy_j: float
    emissions_g: float
    counterfactual_g: float
    energy_method: str
    intensity_kind: str
    intensity_provider: str
    pue: float = 1.0
    measured_share: float = 0.0
    actual_share: float = 0.0

    @property
    def saved_g(self) -> float:
        return self.counterfactual_g - self.emissions_g

    @property
    def energy_kwh(self) -> float:
        return self.facility_energy_j / 3.6e6


@dataclass(slots=True)
class Run:
    """One attempt at a job on a site through an executor."""

    job_id: int
    site: str
    executor: str
    started_at: datetime
    id: int | None = None
    handle: str | None = None
    host: str = ""
    finished_at: datetime | None = None
    exit_code: int | None = None
    state: JobState = JobState.RUNNING
    out_path: str | None = None
    err_path: str | None = None
    reason: str = ""
    lease_until: datetime | None = None
    accounting: RunAccounting | None = None


@dataclass(frozen=True, slots=True)
class RunInterval:
    """One stretch a run really ran: from its launch or resumption to its pause or exit.

    ``end`` is ``None`` while it runs; ``handle`` is the process (or engine job) of that
    stretch; ``how`` says how it ended (``paused: SIGSTOP``, ``checkpointed: exit 0``...).
    """

    run_id: int
    start: datetime
    end: datetime | None = None
    handle: str | None = None
    how: str = ""
    id: int | None = None


#: pause modes of interruptible jobs
PAUSE_MODES = ("stop", "checkpoint")


@dataclass(frozen=True, slots=True)
class Event:
    """A line in a job's story: planned, replanned, started, finished, lost..."""

    job_id: int
    at: datetime
    kind: str
    message: str
    id: int | None = None
