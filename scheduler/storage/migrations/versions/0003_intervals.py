"""Interruptible jobs: planned run intervals, the intervals a run really ran, pause settings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

``job_intervals`` holds the planner's run intervals of an interruptible job (a job with
none runs in one go); ``run_intervals`` what a run did between its launches, pauses and
resumptions; the three ``jobs.pause_*`` columns how the job is paused (``stop`` or
``checkpoint``, the checkpoint signal and grace), resolved at submission.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # plain ADD COLUMN (nullable, no default) works on SQLite as on PostgreSQL
    op.add_column("jobs", sa.Column("pause_mode", sa.String(16), nullable=True))
    op.add_column("jobs", sa.Column("pause_signal", sa.String(16), nullable=True))
    op.add_column("jobs", sa.Column("pause_grace_s", sa.Float(), nullable=True))
    op.create_table(
        "job_intervals",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        _ts("start"),
        _ts("end"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_intervals_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_intervals"),
    )
    op.create_table(
        "run_intervals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        _ts("start"),
        _ts("end", True),
        sa.Column("handle", sa.String(200), nullable=True),
        sa.Column("how", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_intervals_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_run_intervals"),
    )
    op.create_index("ix_run_intervals_run_id", "run_intervals", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_intervals_run_id", table_name="run_intervals")
    op.drop_table("run_intervals")
    op.drop_table("job_intervals")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("pause_grace_s")
        batch.drop_column("pause_signal")
        batch.drop_column("pause_mode")
