"""Old home of the standard-library side doors, kept so existing imports work: they live in
:mod:`scheduler.storage.sql.fast_sqlite` (the speed side doors of the store, in one place)."""

from scheduler.storage.sql.fast_sqlite import (
    BOOL_FIELDS,
    DATETIME_FIELDS,
    FAILURE_KIND,
    HISTORY_JOB_COLUMNS,
    HISTORY_RUN_COLUMNS,
    JOB_FIELDS,
    JSON_FIELDS,
    POINT_FIELDS,
    VERSIONS_DIR,
    IntensityCache,
    events_of_kind,
    head_revision,
    history_view,
    planned_intervals,
    queue_view,
    sqlite_file,
    sqlite_text,
)

__all__ = [
    "BOOL_FIELDS", "DATETIME_FIELDS", "FAILURE_KIND", "HISTORY_JOB_COLUMNS", "HISTORY_RUN_COLUMNS", "JOB_FIELDS", "JSON_FIELDS", "POINT_FIELDS",
    "VERSIONS_DIR", "IntensityCache", "events_of_kind", "head_revision", "history_view", "planned_intervals", "queue_view",
    "sqlite_file", "sqlite_text",
]
