"""The composition root: settings -> store, intensity service, queue, clock, each built on
first use and handed its collaborators. It holds no rule of its own: a database URL's
normalisation and whether it exists are :mod:`scheduler.storage.location`'s, the clock a
``--clock`` names is :mod:`scheduler.clock`'s, the OS user :mod:`scheduler.users`', and
which engine an executor name means :mod:`scheduler.executors.registry`'s.

The CLI builds one :class:`App` per invocation; tests and the Python API build their own
with a store URL, a clock and settings of their choosing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from scheduler.clock import Clock, SystemClock, clock_from_env
from scheduler.config import Settings, load_settings
from scheduler.storage.location import normalise_db
from scheduler.users import current_user

if TYPE_CHECKING:
    from intensity.chain import IntensityService
    from scheduler.contracts import Executor
    from scheduler.domain.model import Job
    from scheduler.queue import Queue
    from scheduler.storage.base import JobStore
    from scheduler.storage.lite import IntensityCache
    from scheduler.storage.ports import SubmitReads


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
        submit_side_door: bool = False,
    ) -> None:
        self.settings = settings
        #: whether a submission on an SQLite file goes through the stdlib side door (one
        #: command's process: no SQLAlchemy to import); a long-lived app (the API, tests)
        #: keeps the store's own connection instead, which is cheaper per job
        self.submit_side_door = submit_side_door
        self.env: dict[str, str] = dict(env or {})
        self.clock: Clock = clock or SystemClock()
        self.user = user or current_user()
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
            from scheduler.storage.sql.engine import check_cli_url

            check_cli_url(db)
        return cls(settings, env=env, clock=clock or clock_from_env(env.get("CARBONSHIFT_CLOCK")),
                   submit_side_door=True)

    @property
    def store(self) -> JobStore:
        if self._store is None:
            from scheduler.storage.sql.opening import open_store

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
        from scheduler.storage.location import database_exists

        return self._store is not None or database_exists(
            self.settings.db, create_parents=self.settings.db_is_default)

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

    @property
    def submit_store(self) -> JobStore | SubmitReads:
        """What a submission reads and writes: the store, or (with ``submit_side_door``, on
        an SQLite file) the stdlib side door
        (:class:`~scheduler.storage.sql.fast_sqlite.LiteSubmitStore`) until something opens
        the store, so a submit never imports SQLAlchemy."""
        if not self.submit_side_door or self._store is not None:
            return self.store
        return self._lite_submit or self.store

    @cached_property
    def _lite_submit(self) -> SubmitReads | None:
        from scheduler.storage.lite import sqlite_file

        if sqlite_file(self.settings.db) is None:
            return None
        from scheduler.storage.sql.fast_sqlite import LiteSubmitStore

        return LiteSubmitStore(self.settings.db, lambda: self.store, lambda: self._store is not None)

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
                     database_exists=self.database_exists, executor=self._executor,
                     submit_store=lambda: self.submit_store)

    def _executor(self, name: str) -> Executor | None:
        """The executor ``name`` on these settings (stopping a cancelled run of this host)."""
        from scheduler.executors.registry import build_executor

        return build_executor(name, self.settings)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


__all__ = ["App", "clock_from_env", "normalise_db"]
