"""Old home of the SQL job store, kept so existing imports work.

The store lives in :mod:`scheduler.storage.sql`, split by aggregate: :class:`SqlStore` in
:mod:`scheduler.storage.sql.store`, :func:`open_store` in :mod:`scheduler.storage.sql.opening`,
the schema revision in :mod:`scheduler.storage.sql.admin`, the URL helpers in
:mod:`scheduler.storage.sql.engine`.
"""

from __future__ import annotations

from scheduler.storage.sql.admin import HEAD_REVISION, KNOWN_REVISIONS, MIGRATIONS_DIR
from scheduler.storage.sql.engine import (
    BUSY_TIMEOUT_S,
    check_cli_url,
    disk_nearly_full,
    parse_url,
    safe_url,
    sqlite_path,
)
from scheduler.storage.sql.fast_sqlite import DISK_FULL_BELOW_B
from scheduler.storage.sql.opening import SQLITE_HEADER, open_store
from scheduler.storage.sql.points import FAILURE_KIND
from scheduler.storage.sql.store import SqlStore

__all__ = [
    "BUSY_TIMEOUT_S", "DISK_FULL_BELOW_B", "FAILURE_KIND", "HEAD_REVISION", "KNOWN_REVISIONS",
    "MIGRATIONS_DIR", "SQLITE_HEADER", "SqlStore", "check_cli_url", "disk_nearly_full", "open_store",
    "parse_url", "safe_url", "sqlite_path",
]
