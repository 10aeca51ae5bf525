"""Text columns without a length limit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

0001-0003 gave names, handles, hosts, plan sources and provider names ``VARCHAR(n)``
limits. SQLite ignores them; PostgreSQL refuses every write of a longer value, so a data
folder of 160 characters in a run's handle, or the 190-character offline fallback note in a
job's ``plan_source``, stopped all work on a shared queue. This widens them to ``VARCHAR``
without a length (the same as ``text`` on PostgreSQL; changing it rewrites no rows). On
SQLite there is nothing to do: it stores any length already, and its declared types are
only affinities. Columns that hold a closed enum's values keep their length.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column, length in 0001-0003, nullable) of every column this revision widens
WIDENED: tuple[tuple[str, str, int, bool], ...] = (
    ("policies", "name", 200, False),
    ("sites", "name", 200, False),
    ("sites", "zone", 100, False),
    ("sites", "executor", 50, False),
    ("jobs", "name", 200, False),
    ("jobs", "zone", 100, False),
    ("jobs", "site", 200, False),
    ("jobs", "owner", 200, False),
    ("jobs", "policy_name", 200, True),
    ("jobs", "planned_site", 200, True),
    ("jobs", "plan_source", 100, True),
    ("jobs", "claimed_by", 200, True),
    ("jobs", "pause_signal", 16, True),
    ("runs", "site", 200, False),
    ("runs", "executor", 50, False),
    ("runs", "handle", 200, True),
    ("runs", "host", 200, False),
    ("runs", "energy_method", 50, True),
    ("runs", "intensity_kind", 50, True),
    ("runs", "intensity_provider", 100, True),
    ("run_intervals", "handle", 200, True),
    ("samples", "device", 100, False),
    ("intensity_points", "zone", 100, False),
    ("intensity_points", "provider", 100, False),
    ("intensity_fetches", "zone", 100, False),
    ("intensity_fetches", "provider", 100, False),
    ("events", "kind", 50, False),
    ("leases", "name", 200, False),
    ("leases", "holder", 200, False),
)


def _alter(*, widen: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite enforces no length: nothing to widen or narrow
    for table, column, length, nullable in WIDENED:
        bounded, unbounded = sa.String(length), sa.String()
        op.alter_column(
            table, column,
            type_=unbounded if widen else bounded,
            existing_type=bounded if widen else unbounded,
            existing_nullable=nullable,
        )


def upgrade() -> None:
    _alter(widen=True)


def downgrade() -> None:
    # fails on PostgreSQL if a longer value was stored since: nothing is truncated silently
    _alter(widen=False)
