"""The database schema: SQLAlchemy 2.0 Core tables, every column typed.

The store talks to these tables through SQLAlchemy Core only, so the schema is written as
plain :class:`~sqlalchemy.Table` objects: importing the ORM's declarative machinery would
cost every command (``carbonshift submit`` included) about 80 ms of start-up for nothing.
Alembic's migrations are checked against this metadata (``tests/storage/test_open.py``).

Every instant is stored through :class:`UTCDateTime`, which refuses naive datetimes on the
way in and hands back aware UTC datetimes on the way out, on SQLite (which has no time zone
type) as on PostgreSQL (``timestamptz``).

Intensity points are unique on (zone, start, kind, provider, signal, issued_at). SQL treats
two NULLs as distinct, so a unique constraint over a nullable ``issued_at`` would let the
same actual (un-issued) point in twice; the constraint is therefore on ``issued_key``, which
is ``issued_at`` or :data:`NO_ISSUE_SENTINEL` (the Unix epoch) when there is none.

Text columns have no length limit (``String()``: ``VARCHAR`` without a length, the same as
``text`` on PostgreSQL; SQLite never enforces lengths). Names, handles, paths, plan sources
and provider notes come from users and from the machine, and a value over a limit would
fail every write that carries it on PostgreSQL alone (migration 0004 widened the limits of
0001-0003). Only columns holding one of a closed enum's values keep a length (``state``,
``pause_mode``, an intensity point's ``kind``/``signal``/``source``, a sample's ``method``);
``tests/storage/test_open.py`` checks that every value of each enum fits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from scheduler.errors import BadInput

#: ``issued_key`` of a point that has no ``issued_at`` (actuals, static averages).
NO_ISSUE_SENTINEL = datetime(1970, 1, 1, tzinfo=UTC)

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class NaiveDatetimeError(BadInput, ValueError):
    """A datetime without a time zone reached the database; carbonshift only stores aware UTC."""


def aware_utc(value: datetime | None) -> datetime | None:
    """``value`` in UTC (``None`` stays ``None``); :class:`NaiveDatetimeError` for a naive
    datetime or anything else: the store's one rule for the times it is given."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise NaiveDatetimeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
    if value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"naive datetime {value.isoformat()!r}: carbonshift only stores aware UTC times"
        )
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant stored in UTC, returned as an aware UTC :class:`datetime`.

    Binding a naive datetime raises :class:`NaiveDatetimeError` (a :class:`ValueError`).
    SQLite stores the naive UTC wall time as fixed-width text (so text order is time order);
    PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        utc = aware_utc(value)
        if utc is None:
            return None
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)
        return utc

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        # SQLite: one call from aware datetime to the stored text, instead of this class's
        # conversion followed by the dialect's formatting (inserting a job binds seven).
        if dialect.name == "sqlite":
            return _sqlite_bind
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_result
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw text from SQLite when the type was bypassed
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_bind(value: Any) -> str | None:
    """Aware datetime -> ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (SQLAlchemy's SQLite format)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise NaiveDatetimeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
    offset = value.utcoffset()
    if offset is None:
        raise NaiveDatetimeError(
            f"naive datetime {value.isoformat()!r}: carbonshift only stores aware UTC times"
        )
    if offset:
        value = value - offset
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


def _sqlite_result(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(parsed, datetime)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _col(name: str, type_: Any, *args: Any, null: bool = False, **kw: Any) -> Column[Any]:
    """A column, NOT NULL unless ``null`` (the declarative default for non-optional types)."""
    return Column(name, type_, *args, nullable=null, **kw)


def _when(name: str, *, null: bool = False) -> Column[Any]:
    return _col(name, UTCDateTime(), null=null)


#: A named carbon deadline policy (see :class:`scheduler.model.Policy`).
policies = Table(
    "policies", metadata,
    _col("name", String(), primary_key=True),
    _col("deadline_s", Integer, null=True),
    _when("deadline_at", null=True),
    _col("latest_start_s", Integer, null=True),
    _when("latest_start_at", null=True),
    _col("max_delay_s", Integer, null=True),
    _col("threshold_g_per_kwh", Float, null=True),
    _col("budget_g", Float, null=True),
    _col("run_now", Boolean, default=False),
    _col("interruptible", Boolean, default=False),
    _col("description", Text, default=""),
)

#: A place jobs run (see :class:`scheduler.model.Site`).
sites = Table(
    "sites", metadata,
    _col("name", String(), primary_key=True),
    _col("zone", String()),
    _col("executor", String(), default="local"),
    _col("gpus", Integer, default=0),
    _col("cpus", Integer, default=0),
    _col("pue", Float, default=1.0),
    _col("transfer_delay_s", Integer, default=0),
    _col("transfer_energy_j", Float, default=0.0),
)

#: A sweep: trials submitted as one unit (see :class:`scheduler.model.Sweep`; migration 0005).
sweeps = Table(
    "sweeps", metadata,
    _col("id", Integer, primary_key=True, autoincrement=True),
    _col("name", String()),
    _col("size", Integer),
    _when("submitted_at"),
    _when("deadline_at", null=True),
    _col("max_concurrent", Integer, null=True),
    _col("budget_g", Float, null=True),
    _col("owner", String(), default=""),
    _when("stopped_at", null=True),
    _col("stop_reason", Text, default=""),
)

#: A job (see :class:`scheduler.model.Job`). ``claimed_by`` and ``lease_until`` are unused
#: (run leases live on ``runs``); they stay for schema compatibility.
jobs = Table(
    "jobs", metadata,
    _col("id", Integer, primary_key=True, autoincrement=True),
    _col("name", String()),
    _col("argv", JSON),
    _col("duration_s", Integer),
    _col("zone", String()),
    _when("submitted_at"),
    _when("earliest_start"),
    _when("latest_start"),
    _when("deadline_at", null=True),
    _col("cwd", Text, default="."),
    _col("env", JSON),
    _col("shell", Boolean, default=False),
    _col("power_w", Float, default=100.0),
    _col("gpus", Integer, default=0),
    _col("cpus", Integer, default=1),
    _col("site", String(), default="local"),
    _col("allowed_sites", JSON),
    _col("owner", String(), default=""),
    _col("policy_name", String(), null=True),
    _col("threshold_g_per_kwh", Float, null=True),
    _col("budget_g", Float, null=True),
    _col("run_now", Boolean, default=False),
    _col("interruptible", Boolean, default=False),
    _col("priority", Integer, default=0),
    _col("transfer_delay_s", Integer, null=True),
    _col("transfer_energy_j", Float, null=True),
    _col("state", String(16)),
    _when("planned_start", null=True),
    _col("planned_site", String(), null=True),
    _col("expected_g", Float, null=True),
    _col("run_now_g", Float, null=True),
    _col("plan_source", String(), null=True),
    _col("note", Text, default=""),
    _col("attempts", Integer, default=0),
    _when("updated_at", null=True),
    _col("claimed_by", String(), null=True),
    _when("lease_until", null=True),
    # interruptible jobs (migration 0003): how a pause is done, resolved at submission
    _col("pause_mode", String(16), null=True),
    _col("pause_signal", String(), null=True),
    _col("pause_grace_s", Float, null=True),
    # trials of a sweep (migration 0005): the sweep, the trial's index, the sweep's %N cap
    _col("sweep_id", Integer, null=True),  # no foreign key: see migration 0005
    _col("array_index", Integer, null=True),
    _col("sweep_limit", Integer, null=True),
    Index("ix_jobs_state_planned_start", "state", "planned_start"),
    Index("ix_jobs_submitted_at", "submitted_at"),
    Index("ix_jobs_sweep_id", "sweep_id"),
)

#: One attempt at a job; the accounting columns stay NULL until the run is accounted.
runs = Table(
    "runs", metadata,
    _col("id", Integer, primary_key=True, autoincrement=True),
    _col("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE")),
    _col("site", String()),
    _col("executor", String()),
    _when("started_at"),
    _col("handle", String(), null=True),
    _col("host", String(), default=""),
    _when("finished_at", null=True),
    _col("exit_code", Integer, null=True),
    _col("state", String(16)),
    _col("out_path", Text, null=True),
    _col("err_path", Text, null=True),
    _col("reason", Text, default=""),
    _when("lease_until", null=True),
    # RunAccounting, NULL until accounted
    _col("energy_j", Float, null=True),
    _col("facility_energy_j", Float, null=True),
    _col("emissions_g", Float, null=True),
    _col("counterfactual_g", Float, null=True),
    _col("energy_method", String(), null=True),
    _col("intensity_kind", String(), null=True),
    _col("intensity_provider", String(), null=True),
    _col("pue", Float, null=True),
    _col("measured_share", Float, null=True),
    _col("actual_share", Float, null=True),
    Index("ix_runs_job_id", "job_id"),
    Index("ix_runs_finished_at_host", "finished_at", "host"),
)

#: The run intervals planned for an interruptible job, in order (migration 0003). A job
#: without rows runs in one go: ``[planned_start, planned_start + duration_s]``.
job_intervals = Table(
    "job_intervals", metadata,
    _col("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    _col("seq", Integer, primary_key=True),
    _when("start"),
    _when("end"),
)

#: What an interruptible run really did: one row per stretch it ran, from its launch or
#: resumption to its pause or exit (``end`` NULL while it runs). ``handle`` is the process
#: (or engine job) of that stretch; ``how`` says how it ended (paused, checkpointed, exit).
run_intervals = Table(
    "run_intervals", metadata,
    _col("id", Integer, primary_key=True, autoincrement=True),
    _col("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE")),
    _when("start"),
    _when("end", null=True),
    _col("handle", String(), null=True),
    _col("how", Text, default=""),
    Index("ix_run_intervals_run_id", "run_id"),
)

#: Energy a run used on one device over ``[start, end)`` (see :class:`probes.model.Sample`).
samples = Table(
    "samples", metadata,
    _col("id", Integer, primary_key=True, autoincrement=True),
    _col("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE")),
    _when("start"),
    _when("end"),
    _col("device", String()),
    _col("energy_j", Float),
    _col("method", String(50)),
    _col("estimated", Boolean, default=False),
    _col("note", Text, default=""),
    Index("ix_samples_run_id_start", "run_id", "start"),
)

#: One intensity value, every vintage kept (see :class:`intensity.model.IntensityPoint`).
#: The unique constraint's leading (zone, start) columns also serve the hot "zone
#: overlapping a window" query, so no separate (zone, start) index is needed.
intensity_points = Table(
    "intensity_points", metadata,
    _col("id", Integer, primary_key=True, autoincrement=True),
    _col("zone", String()),
    _when("start"),
    _when("end"),
    _col("intensity_g_per_kwh", Float),
    _col("kind", String(16)),
    _col("provider", String()),
    _col("signal", String(16)),
    _when("issued_at", null=True),
    _when("issued_key"),
    _col("source", String(16)),
    _col("estimated", Boolean, default=False),
    _when("fetched_at"),
    UniqueConstraint("zone", "start", "kind", "provider", "signal", "issued_key"),
)

#: When points of a (zone, provider, kind) were last stored, new or not (the cache's clock).
intensity_fetches = Table(
    "intensity_fetches", metadata,
    _col("zone", String(), primary_key=True),
    _col("provider", String(), primary_key=True),
    _col("kind", String(16), primary_key=True),
    _when("fetched_at"),
)

#: A line in a job's story (see :class:`scheduler.model.Event`).
events = Table(
    "events", metadata,
    _col("id", Integer, primary_key=True, autoincrement=True),
    _col("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE")),
    _when("at"),
    _col("kind", String()),
    _col("message", Text, default=""),
    Index("ix_events_job_id", "job_id"),
)

#: A named lease (``planner``): who holds it and until when (see ``scheduler/leader.py``).
#: ``term`` grows by one each time the holder changes: a fencing number that tells a holder
#: whether it was replaced while it was not looking.
leases = Table(
    "leases", metadata,
    _col("name", String(), primary_key=True),
    _col("holder", String()),
    _col("term", Integer),
    _when("acquired_at"),
    _when("until"),
)
