"""The database schema: typed SQLAlchemy 2.0 declarative tables.

Every instant is stored through :class:`UTCDateTime`, which refuses naive datetimes on the
way in and hands back aware UTC datetimes on the way out, on SQLite (which has no time zone
type) as on PostgreSQL (``timestamptz``). The store talks to these tables through SQLAlchemy
Core (``Row.__table__``); the classes exist so the schema is written once, typed, and so
Alembic's ``0001_initial`` migration can be checked against it.

Intensity points are unique on (zone, start, kind, provider, signal, issued_at). SQL treats
two NULLs as distinct, so a unique constraint over a nullable ``issued_at`` would let the
same actual (un-issued) point in twice; the constraint is therefore on ``issued_key``, which
is ``issued_at`` or :data:`NO_ISSUE_SENTINEL` (the Unix epoch) when there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    Boolean,
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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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


class UTCDateTime(TypeDecorator[datetime]):
    """An instant stored in UTC, returned as an aware UTC :class:`datetime`.

    Binding a naive datetime raises :class:`NaiveDatetimeError` (a :class:`ValueError`).
    SQLite stores the naive UTC wall time as fixed-width text (so text order is time order);
    PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise NaiveDatetimeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(
                f"naive datetime {value.isoformat()!r}: carbonshift only stores aware UTC times"
            )
        utc = value.astimezone(UTC)
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


class Base(DeclarativeBase):
    """Declarative base: shared metadata with a naming convention, UTC datetimes."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class PolicyRow(Base):
    """A named carbon deadline policy (see :class:`scheduler.model.Policy`)."""

    __tablename__ = "policies"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    deadline_s: Mapped[int | None] = mapped_column(Integer)
    deadline_at: Mapped[datetime | None]
    latest_start_s: Mapped[int | None] = mapped_column(Integer)
    latest_start_at: Mapped[datetime | None]
    max_delay_s: Mapped[int | None] = mapped_column(Integer)
    threshold_g_per_kwh: Mapped[float | None] = mapped_column(Float)
    budget_g: Mapped[float | None] = mapped_column(Float)
    run_now: Mapped[bool] = mapped_column(Boolean, default=False)
    interruptible: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")


class SiteRow(Base):
    """A place jobs run (see :class:`scheduler.model.Site`)."""

    __tablename__ = "sites"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    zone: Mapped[str] = mapped_column(String(100))
    executor: Mapped[str] = mapped_column(String(50), default="local")
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    cpus: Mapped[int] = mapped_column(Integer, default=0)
    pue: Mapped[float] = mapped_column(Float, default=1.0)
    transfer_delay_s: Mapped[int] = mapped_column(Integer, default=0)
    transfer_energy_j: Mapped[float] = mapped_column(Float, default=0.0)


class JobRow(Base):
    """A job (see :class:`scheduler.model.Job`) plus lease columns for multi-host claims.

    ``claimed_by`` is the host that holds the job and ``lease_until`` when its claim lapses
    unless renewed; both are for hosts sharing one PostgreSQL queue.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_planned_start", "state", "planned_start"),
        Index("ix_jobs_submitted_at", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    argv: Mapped[list[str]] = mapped_column(JSON)
    duration_s: Mapped[int] = mapped_column(Integer)
    zone: Mapped[str] = mapped_column(String(100))
    submitted_at: Mapped[datetime]
    earliest_start: Mapped[datetime]
    latest_start: Mapped[datetime]
    deadline_at: Mapped[datetime | None]
    cwd: Mapped[str] = mapped_column(Text, default=".")
    env: Mapped[dict[str, Any]] = mapped_column(JSON)
    shell: Mapped[bool] = mapped_column(Boolean, default=False)
    power_w: Mapped[float] = mapped_column(Float, default=100.0)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    cpus: Mapped[int] = mapped_column(Integer, default=1)
    site: Mapped[str] = mapped_column(String(200), default="local")
    allowed_sites: Mapped[list[str]] = mapped_column(JSON)
    owner: Mapped[str] = mapped_column(String(200), default="")
    policy_name: Mapped[str | None] = mapped_column(String(200))
    threshold_g_per_kwh: Mapped[float | None] = mapped_column(Float)
    budget_g: Mapped[float | None] = mapped_column(Float)
    run_now: Mapped[bool] = mapped_column(Boolean, default=False)
    interruptible: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    transfer_delay_s: Mapped[int | None] = mapped_column(Integer)
    transfer_energy_j: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    planned_start: Mapped[datetime | None]
    planned_site: Mapped[str | None] = mapped_column(String(200))
    expected_g: Mapped[float | None] = mapped_column(Float)
    run_now_g: Mapped[float | None] = mapped_column(Float)
    plan_source: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]


class RunRow(Base):
    """One attempt at a job; the accounting columns stay NULL until the run is accounted."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_job_id", "job_id"),
        Index("ix_runs_finished_at_host", "finished_at", "host"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    site: Mapped[str] = mapped_column(String(200))
    executor: Mapped[str] = mapped_column(String(50))
    started_at: Mapped[datetime]
    handle: Mapped[str | None] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200), default="")
    finished_at: Mapped[datetime | None]
    exit_code: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    out_path: Mapped[str | None] = mapped_column(Text)
    err_path: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
    lease_until: Mapped[datetime | None]
    # RunAccounting, NULL until accounted
    energy_j: Mapped[float | None] = mapped_column(Float)
    facility_energy_j: Mapped[float | None] = mapped_column(Float)
    emissions_g: Mapped[float | None] = mapped_column(Float)
    counterfactual_g: Mapped[float | None] = mapped_column(Float)
    energy_method: Mapped[str | None] = mapped_column(String(50))
    intensity_kind: Mapped[str | None] = mapped_column(String(50))
    intensity_provider: Mapped[str | None] = mapped_column(String(100))
    pue: Mapped[float | None] = mapped_column(Float)
    measured_share: Mapped[float | None] = mapped_column(Float)
    actual_share: Mapped[float | None] = mapped_column(Float)


class SampleRow(Base):
    """Energy a run used on one device over ``[start, end)`` (see :class:`probes.model.Sample`)."""

    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_run_id_start", "run_id", "start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    start: Mapped[datetime]
    end: Mapped[datetime]
    device: Mapped[str] = mapped_column(String(100))
    energy_j: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(50))
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")


class IntensityPointRow(Base):
    """One intensity value, every vintage kept (see :class:`intensity.model.IntensityPoint`).

    The unique constraint's leading (zone, start) columns also serve the hot
    "zone overlapping a window" query, so no separate (zone, start) index is needed.
    """

    __tablename__ = "intensity_points"
    __table_args__ = (
        UniqueConstraint("zone", "start", "kind", "provider", "signal", "issued_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    zone: Mapped[str] = mapped_column(String(100))
    start: Mapped[datetime]
    end: Mapped[datetime]
    intensity_g_per_kwh: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(100))
    signal: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[datetime | None]
    issued_key: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    fetched_at: Mapped[datetime]


class IntensityFetchRow(Base):
    """When points of a (zone, provider, kind) were last stored, new or not (the cache's clock)."""

    __tablename__ = "intensity_fetches"

    zone: Mapped[str] = mapped_column(String(100), primary_key=True)
    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    fetched_at: Mapped[datetime]


class EventRow(Base):
    """A line in a job's story (see :class:`scheduler.model.Event`)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_job_id", "job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text, default="")


class LeaseRow(Base):
    """A named lease (``planner``): who holds it and until when (see ``scheduler/leader.py``).

    ``term`` grows by one each time the holder changes: a fencing number that tells a
    holder whether it was replaced while it was not looking.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    term: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime]
    until: Mapped[datetime]


metadata = Base.metadata
policies = cast(Table, PolicyRow.__table__)
sites = cast(Table, SiteRow.__table__)
jobs = cast(Table, JobRow.__table__)
runs = cast(Table, RunRow.__table__)
samples = cast(Table, SampleRow.__table__)
intensity_points = cast(Table, IntensityPointRow.__table__)
intensity_fetches = cast(Table, IntensityFetchRow.__table__)
events = cast(Table, EventRow.__table__)
leases = cast(Table, LeaseRow.__table__)
