"""Where a new SQLite database may be created: the one rule, for the store and for commands
that only read (standard library only, so ``queue`` stays free of SQLAlchemy)."""

from __future__ import annotations

from pathlib import Path

from scheduler.errors import BadDatabase


def check_folder(path: Path, *, create_parents: bool) -> None:
    """Refuse a new database file whose folder is missing unless ``create_parents``.

    Only the default location (under the data directory) has its folders created: a path
    the user gave (``--db``, ``CARBONSHIFT_DB``, ``db`` in the config) with a missing
    folder is most likely a typo, and creating it would silently start an empty queue.
    """
    if create_parents or path.parent.is_dir():
        return
    raise BadDatabase(
        f"folder {path.parent} of database {path} does not exist: fix the path given with "
        "--db (or CARBONSHIFT_DB, or db in the config file), or create the folder first"
    )
