"""Where the database is: a ``--db`` value as a URL, whether it exists yet, and where a new
SQLite database may be created: the one rule, for the store and for commands that only read
(standard library only, so ``queue`` stays free of SQLAlchemy)."""

from __future__ import annotations

from pathlib import Path

from scheduler.errors import BadDatabase, BadInput


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


def normalise_db(value: str) -> str:
    """A ``--db`` value: a URL as is, a plain path as an absolute SQLite URL."""
    if "\0" in value:
        raise BadInput(f"--db {value[:60]!r} holds a NUL character: give a file path or a database URL")
    if "://" in value:
        return value
    return "sqlite:///" + str(Path(value).expanduser().resolve())


def database_exists(url: str, *, create_parents: bool) -> bool:
    """Whether the database at ``url`` is there already (always, for a server): a command
    that only reads answers "nothing yet" instead of creating the file and its folders. A
    path whose folder is missing raises :class:`~scheduler.errors.BadDatabase` (unless
    ``create_parents``), as opening it would."""
    from scheduler.storage.lite import sqlite_file

    path = sqlite_file(url)
    if path is None or path.exists():
        return True
    check_folder(path, create_parents=create_parents)
    return False
