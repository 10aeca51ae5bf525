"""Initial schema: policies, sites, jobs, runs, samples, intensity points, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Hand-written to match scheduler/storage/tables.py (tests/storage/test_open.py compares
the migrated database with the metadata). Datetimes are ``DateTime(timezone=True)``:
``timestamptz`` on PostgreSQL, UTC text on SQLite (see ``tables.UTCDateTime``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("deadline_s", sa.Integer(), nullable=True),
        _ts("deadline_at", True),
        sa.Column("latest_start_s", sa.Integer(), nullable=True),
        _ts("latest_start_at", True),
        sa.Column("max_delay_s", sa.Integer(), nullable=True),
        sa.Column("threshold_g_per_kwh", sa.Float(), nullable=True),
        sa.Column("budget_g", sa.Float(), nullable=True),
        sa.Column("run_now", sa.Boolean(), nullable=False),
        sa.Column("interruptible", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_policies"),
    )
    op.create_table(
        "sites",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("zone", sa.String(100), nullable=False),
        sa.Column("executor", sa.String(50), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("pue", sa.Float(), nullable=False),
        sa.Column("transfer_delay_s", sa.Integer(), nullable=False),
        sa.Column("transfer_energy_j", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sites"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("argv", sa.JSON(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(100), nullable=False),
        _ts("submitted_at"),
        _ts("earliest_start"),
        _ts("latest_start"),
        _ts("deadline_at", True),
        sa.Column("cwd", sa.Text(), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("shell", sa.Boolean(), nullable=False),
        sa.Column("power_w", sa.Float(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("allowed_sites", sa.JSON(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("policy_name", sa.String(200), nullable=True),
        sa.Column("threshold_g_per_kwh", sa.Float(), nullable=True),
        sa.Column("budget_g", sa.Float(), nullable=True),
        sa.Column("run_now", sa.Boolean(), nullable=False),
        sa.Column("interruptible", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("transfer_delay_s", sa.Integer(), nullable=True),
        sa.Column("transfer_energy_j", sa.Float(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("planned_start", True),
        sa.Column("planned_site", sa.String(200), nullable=True),
        sa.Column("expected_g", sa.Float(), nullable=True),
        sa.Column("run_now_g", sa.Float(), nullable=True),
        sa.Column("plan_source", sa.String(100), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("updated_at", True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        _ts("lease_until", True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_state_planned_start", "jobs", ["state", "planned_start"])
    op.create_index("ix_jobs_submitted_at", "jobs", ["submitted_at"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("executor", sa.String(50), nullable=False),
        _ts("started_at"),
        sa.Column("handle", sa.String(200), nullable=True),
        sa.Column("host", sa.String(200), nullable=False),
        _ts("finished_at", True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("out_path", sa.Text(), nullable=True),
        sa.Column("err_path", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("lease_until", True),
        sa.Column("energy_j", sa.Float(), nullable=True),
        sa.Column("facility_energy_j", sa.Float(), nullable=True),
        sa.Column("emissions_g", sa.Float(), nullable=True),
        sa.Column("counterfactual_g", sa.Float(), nullable=True),
        sa.Column("energy_method", sa.String(50), nullable=True),
        sa.Column("intensity_kind", sa.String(50), nullable=True),
        sa.Column("intensity_provider", sa.String(100), nullable=True),
        sa.Column("pue", sa.Float(), nullable=True),
        sa.Column("measured_share", sa.Float(), nullable=True),
        sa.Column("actual_share", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_runs_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_job_id", "runs", ["job_id"])
    op.create_index("ix_runs_finished_at_host", "runs", ["finished_at", "host"])
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        _ts("start"),
        _ts("end"),
        sa.Column("device", sa.String(100), nullable=False),
        sa.Column("energy_j", sa.Float(), nullable=False),
        sa.Column("method", sa.String(50), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_samples_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_samples"),
    )
    op.create_index("ix_samples_run_id_start", "samples", ["run_id", "start"])
    op.create_table(
        "intensity_points",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("zone", sa.String(100), nullable=False),
        _ts("start"),
        _ts("end"),
        sa.Column("intensity_g_per_kwh", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("signal", sa.String(16), nullable=False),
        _ts("issued_at", True),
        _ts("issued_key"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        _ts("fetched_at"),
        sa.PrimaryKeyConstraint("id", name="pk_intensity_points"),
        sa.UniqueConstraint(
            "zone", "start", "kind", "provider", "signal", "issued_key",
            name="uq_intensity_points_zone_start_kind_provider_signal_issued_key",
        ),
    )
    op.create_table(
        "intensity_fetches",
        sa.Column("zone", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _ts("fetched_at"),
        sa.PrimaryKeyConstraint("zone", "provider", "kind", name="pk_intensity_fetches"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        _ts("at"),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_events_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_job_id", "events", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_events_job_id", table_name="events")
    op.drop_table("events")
    op.drop_table("intensity_fetches")
    op.drop_table("intensity_points")
    op.drop_index("ix_samples_run_id_start", table_name="samples")
    op.drop_table("samples")
    op.drop_index("ix_runs_finished_at_host", table_name="runs")
    op.drop_index("ix_runs_job_id", table_name="runs")
    op.drop_table("runs")
    op.drop_index("ix_jobs_submitted_at", table_name="jobs")
    op.drop_index("ix_jobs_state_planned_start", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("sites")
    op.drop_table("policies")
