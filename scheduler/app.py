"""Wires the parts together: settings -> store, intensity service, queue, clock.

The CLI builds one :class:`App` per invocation; tests and the Python API build their own
with a store URL, a clock and settings of their choosing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler.clock import Clock, SystemClock
from scheduler.config import Settings, load_settings

if TYPE_CHECKING:
    from intensity.chain import IntensityService
    from scheduler.contracts import Executor
    from scheduler.model import Job
    from scheduler.queue import Queue
    from scheduler.storage.base import JobStore
    from scheduler.storage.lite import IntensityCache


def normalise_db(value: str) -> str:
    """A ``--db`` value: a URL as is, a plain path as an absolute SQLite URL."""
    if "\0" in value:
        from scheduler.errors import BadInput

        raise BadInput(f"--db {value[:60]!r} holds a NUL character: give a file path or a database URL")
    if "://" in value:
        return value
    return "sqlite:///" + str(Path(value).expanduser().resolve())


class App:
    """One carbonshift instance: settings, a store, an intensity service, a clock."""

    def __init__(
        self,
        settings: Settings,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        user: str | None = None,
        store: JobStore | None = None,
    ) -> None:
        self.settings = settings
        self.env: dict[str, str] = dict(env or {})
        self.clock: Clock = clock or SystemClock()
        self.user = user or _current_user()
        self._store = store

    @classmethod
    def from_cli(cls, *, db: str | None, config: str | None, env: Mapping[str, str],
                 replay: Sequence[str] = (), clock: Clock | None = None) -> App:
        """The app of one command: ``--db``, ``--config``, ``--replay ZONE=FILE`` entries and
        the ``--clock`` (else ``CARBONSHIFT_CLOCK``) over the environment and config file."""
        overrides: dict[str, Any] = {"replay": list(replay)}
        if db is not None and not db.strip():
            from scheduler.errors import BadInput

            raise BadInput("--db is empty: give a file path or a database URL")
        if db:
            overrides["db"] = normalise_db(db)
        elif env.get("CARBONSHIFT_DB"):
            overrides["db"] = normalise_db(env["CARBONSHIFT_DB"])
        settings = load_settings(env=env, config_path=config, overrides=overrides)
        db = settings.db
        if not (db.startswith("sqlite:///") and len(db) > 10 and "memory" not in db):
            # anything but a plain SQLite file: parse it fully (this loads SQLAlchemy, which
            # a plain file's short commands never need)
            from scheduler.storage.store import check_cli_url

            check_cli_url(db)
        return cls(settings, env=env, clock=clock or clock_from_env(env.get("CARBONSHIFT_CLOCK")))

    @property
    def store(self) -> JobStore:
        if self._store is None:
            from scheduler.storage.store import open_store

            self._store = open_store(self.settings.db, create_parents=self.settings.db_is_default)
        return self._store

    @property
    def lite_url(self) -> str | None:
        """The database URL that a read may answer through the stdlib side door
        (:mod:`scheduler.storage.lite`), which goes to the store for anything it cannot vouch
        for; ``None`` once the store is open (or was given), which then answers everything."""
        return self.settings.db if self._store is None else None

    def database_exists(self) -> bool:
        """Whether the database is there already (always, for a server): a command that only
        reads answers "nothing yet" instead of creating the file and its folders. A given
        path whose folder is missing raises :class:`~scheduler.errors.BadDatabase`, as
        opening it would."""
        from scheduler.storage.lite import sqlite_file
        from scheduler.storage.location import check_folder

        path = sqlite_file(self.settings.db)
        if self._store is not None or path is None or path.exists():
            return True
        check_folder(path, create_parents=self.settings.db_is_default)
        return False

    def job(self, job_id: int) -> Job:
        """The job ``job_id`` (:meth:`~scheduler.storage.base.JobStore.get_job`); a database
        not made yet holds none, so a command given an unknown id on a fresh data folder is
        refused with nothing created."""
        if not self.database_exists():
            from scheduler.errors import no_job

            raise no_job(job_id)
        return self.store.get_job(job_id)

    @cached_property
    def intensity_cache(self) -> JobStore | IntensityCache:
        """The intensity service's cache and failure log: the store, read through the
        stdlib side door (:class:`~scheduler.storage.lite.IntensityCache`) until something
        opens the store, so a decision served from the cache never imports SQLAlchemy."""
        if self._store is not None:
            return self._store
        from scheduler.storage.lite import IntensityCache

        return IntensityCache(self.settings.db, lambda: self.store, lambda: self._store is not None)

    @cached_property
    def intensity(self) -> IntensityService:
        from scheduler.intensity_setup import build_intensity_service

        # a function: the cache is built (and a new database made) only once the providers
        # are set up, so a bad trace or provider is refused with nothing written
        return build_intensity_service(self.settings, self.env, lambda: self.intensity_cache)

    @cached_property
    def queue(self) -> Queue:
        from scheduler.queue import Queue

        # functions, not values: the store opens and the providers are set up on first use,
        # and the clock, settings and user may be replaced after the queue is built
        return Queue(store=lambda: self.store, intensity=lambda: self.intensity,
                     settings=lambda: self.settings, clock=lambda: self.clock, user=lambda: self.user,
                     database_exists=self.database_exists, executor=self._executor)

    def _executor(self, name: str) -> Executor | None:
        """The executor ``name`` on these settings (stopping a cancelled run of this host)."""
        from scheduler.executors.registry import build_executor

        return build_executor(name, self.settings)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def clock_from_env(value: str | None, *, what: str = "CARBONSHIFT_CLOCK") -> Clock | None:
    """``CARBONSHIFT_CLOCK=2023-03-15T17:00Z`` or ``--clock`` (or ``...Z*3600``): start the
    clock at that instant, running that many times faster than real time. For replays,
    demos and tests."""
    if not value:
        return None
    from scheduler.clock import AcceleratedClock
    from scheduler.errors import BadInput
    from scheduler.timeutil import parse_time

    text, _, factor_text = value.partition("*")
    try:
        factor = float(factor_text) if factor_text else 1.0
    except ValueError:
        raise BadInput(f"{what} factor {factor_text!r} is not a number: give ISO[*FACTOR], like "
                       "2023-06-14T16:00Z*3600") from None
    if not factor > 0 or factor == float("inf"):
        raise BadInput(f"{what} factor {factor_text!r} must be a positive number")
    return AcceleratedClock(parse_time(text, what=what), factor)


def _current_user() -> str:
    """The OS user running this process. Not ``getpass.getuser()``: that believes
    ``$USER``/``$LOGNAME``, and a job's owner must not be a variable anyone can set."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        import getpass  # (imports termios: only on this rare path)

        try:
            return getpass.getuser()
        except Exception:
            return str(os.getuid())
