"""Sweeps: trials submitted as one unit.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

A ``sweeps`` row per ``carbonshift submit --array``/``--sweep`` (its name, size, deadline,
``%N`` cap, carbon budget, and when and why it stopped launching trials); each trial is a
job carrying ``sweep_id``, ``array_index`` and ``sweep_limit`` (the cap, copied so the
planner and the daemon need no lookup). The new jobs columns are nullable without a
default, so a plain ``ADD COLUMN`` works on SQLite as on PostgreSQL and rewrites no rows.
``jobs.sweep_id`` is indexed but has no foreign key: SQLite can only add one by rebuilding
``jobs``, which would cascade-delete every run; sweeps are never deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_concurrent", sa.Integer(), nullable=True),
        sa.Column("budget_g", sa.Float(), nullable=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sweeps"),
    )
    op.add_column("jobs", sa.Column("sweep_id", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("array_index", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("sweep_limit", sa.Integer(), nullable=True))
    op.create_index("ix_jobs_sweep_id", "jobs", ["sweep_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_sweep_id", table_name="jobs")
    op.drop_column("jobs", "sweep_limit")
    op.drop_column("jobs", "array_index")
    op.drop_column("jobs", "sweep_id")
    op.drop_table("sweeps")
