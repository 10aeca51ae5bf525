"""This process's timers (APScheduler 3.x): one date trigger per planned job of the
agent's sites (``job-N``) and one per interruptible run's next pause or resumption
(``run-N``), kept in step with the database every tick. The database stays the source of
truth: a timer that fires only asks the agent to look (claim, then launch; or pause)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.clock import Clock
from scheduler.contracts import JobStore


class Timers:
    def __init__(self, store: JobStore, clock: Clock, sites: Iterable[str] | None) -> None:
        self.store, self.clock = store, clock
        self.sites = set(sites) if sites is not None else None
        self._scheduler: Any = None
        self._jobs: dict[int, datetime] = {}
        self._runs: dict[int, datetime] = {}

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
        self._scheduler.start()

    def pause(self) -> None:
        if self._scheduler is not None:
            self._scheduler.pause()

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def fired_job(self, job_id: int) -> None:
        self._jobs.pop(job_id, None)

    def fired_run(self, run_id: int) -> None:
        self._runs.pop(run_id, None)

    def sync(self, fire_job: Callable[[int], None], boundaries: Callable[[], dict[int, datetime]],
             fire_run: Callable[[int], None]) -> None:
        """A timer for each job planned later (jobs already due are the launcher's) and
        for each run's next boundary (``boundaries()``: run id -> when)."""
        if self._scheduler is None:
            return
        planned = self.store.planned_starts(after=self.clock.now(), sites=self.sites)
        self._keep("job", self._jobs, planned, fire_job)
        self._keep("run", self._runs, boundaries(), fire_run)

    def _keep(self, prefix: str, have: dict[int, datetime], wanted: dict[int, datetime],
              fire: Callable[[int], None]) -> None:
        sched = self._scheduler
        for key in list(have):
            if key not in wanted:
                have.pop(key, None)
                try:
                    sched.remove_job(f"{prefix}-{key}")
                except Exception:
                    pass
        for key, at in wanted.items():
            if have.get(key) == at:
                continue
            run_at = datetime.now(UTC) + timedelta(seconds=self.clock.real_delay_s(at))
            sched.add_job(fire, "date", run_date=run_at, args=[key], id=f"{prefix}-{key}",
                          replace_existing=True)
            have[key] = at
