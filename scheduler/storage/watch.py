"""What a daemon does when its SQLite file is deleted or replaced under it.

Its open connections keep reading and writing the old file, which no other process sees
(a new ``submit`` creates a new file at the path) and which vanishes when the daemon
closes it: results written there would be lost, and jobs submitted since never run. The
daemon checks :meth:`~scheduler.storage.base.JobStore.file_lost` every tick; once it is
lost it launches nothing more, follows its running jobs to their end, and keeps a copy of
the database it holds (refreshed whenever one of them ends) beside the lost path, so that
their outcomes can be read back (``carbonshift --db COPY history``). :class:`FileLost`
holds that state and words the log line, one at most a minute.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from scheduler.errors import CarbonshiftError
from scheduler.storage.base import JobStore

#: seconds between two repetitions of the warning
REPEAT_S = 60.0


class FileLost:
    """The daemon's database file is gone: say so, save a copy, count the runs left."""

    def __init__(self, store: JobStore, why: str) -> None:
        from scheduler.storage.sql.engine import sqlite_path

        url = getattr(store, "url", None)
        path = sqlite_path(url) if isinstance(url, str) else None
        self.store = store
        self.why = why
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = path.parent if path is not None and path.parent.is_dir() else Path(
            tempfile.gettempdir())
        name = path.name if path is not None else "carbonshift.db"
        #: where the copy of the database this daemon holds is kept
        self.copy = folder / f"{name}.lost-{stamp}"
        self._said_at: float | None = None
        self._running: int | None = None
        self._saved: str | None = None

    def _save(self) -> None:
        try:
            self.store.save_copy(self.copy)
            self._saved = f"copied to {self.copy}"
        except CarbonshiftError as exc:
            self._saved = f"NOT copied: {exc}"

    def update(self, running: int) -> str | None:
        """The warning to log now (at most once a minute, and when a run ends), or None."""
        changed = running != self._running
        if changed:
            self._running = running
            self._save()
        now = time.monotonic()
        if not changed and self._said_at is not None and now - self._said_at < REPEAT_S:
            return None
        self._said_at = now
        return (f"{self.why} under this daemon: launching nothing; {running} running job(s) "
                f"followed to their end in the database it still holds, {self._saved}; it "
                "then exits with status 1: restart it on the new database")

    def final(self) -> str:
        return (f"{self.why}: no job left running; what this daemon recorded is "
                f"{self._saved} (read it with carbonshift --db COPY history); exiting with "
                "status 1")
