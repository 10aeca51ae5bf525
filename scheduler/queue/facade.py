"""The queue as one object: the services of this package, built from the same ports.

:class:`Queue` keeps the surface the edges and the daemon use (``app.queue.submit(...)``,
``.replan``, ``.cancel``...) and delegates each call to the service that owns it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.domain.model import Job, JobState, Plan, PlanEntry, Policy, Site, Sweep
from scheduler.queue.cancel import CancelService
from scheduler.queue.capacity import HeldCapacity
from scheduler.queue.catalog import QueueCatalog
from scheduler.queue.ports import QueuePorts, UsesPorts
from scheduler.queue.replan import ReplanService
from scheduler.queue.submit import SubmitRequest, SubmitResult, SubmitService, SweepResult

if TYPE_CHECKING:
    from intensity.chain import IntensityService
    from intensity.model import Forecast
    from scheduler.clock import Clock
    from scheduler.config import Settings
    from scheduler.contracts import Executor
    from scheduler.domain.holds import Hold
    from scheduler.planning import PlanOptions
    from scheduler.storage.base import JobStore
    from scheduler.storage.ports import SubmitReads


class Queue(UsesPorts):
    """Submit, plan and cancel jobs against a store, an intensity service and a clock.

    Each collaborator is given as a function returning the current one (see
    :mod:`scheduler.queue.ports`).
    """

    def __init__(
        self,
        *,
        store: Callable[[], JobStore],
        intensity: Callable[[], IntensityService],
        settings: Callable[[], Settings],
        clock: Callable[[], Clock],
        user: Callable[[], str],
        database_exists: Callable[[], bool] = lambda: True,
        submit_store: Callable[[], SubmitReads] | None = None,
        executor: Callable[[str], Executor | None] | None = None,
    ) -> None:
        self.ports = QueuePorts(store=store, intensity=intensity, settings=settings, clock=clock,
                                user=user, database_exists=database_exists, submit_store=submit_store,
                                executor=executor)
        self.catalog = QueueCatalog(self.ports)
        self.held = HeldCapacity(submit_store or store)
        self.submitting = SubmitService(self.ports, self.catalog, self.held)
        self.replanning = ReplanService(self.ports, self.catalog, self.held)
        self.cancelling = CancelService(self.ports)

    @property
    def _forecasts(self) -> dict[str, tuple[datetime, int, Forecast, str, bool]]:
        """The in-process forecast memo (a soak test clears it to force fresh reads)."""
        return self.catalog.forecast_memo

    # -- catalog ------------------------------------------------------------------------
    def get_policy(self, name: str) -> Policy:
        return self.catalog.get_policy(name)

    def list_policies(self) -> list[tuple[Policy, bool]]:
        return self.catalog.list_policies()

    def sites(self) -> dict[str, Site]:
        return self.catalog.sites()

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> tuple[Forecast, str, bool]:
        return self.catalog.forecast(zone, now, horizon_s)

    def forecasts_for(
        self, jobs: Sequence[Job], sites: Mapping[str, Site], now: datetime, *, fresh: bool = False,
    ) -> tuple[dict[str, Forecast], dict[str, tuple[str, bool]]]:
        return self.catalog.forecasts_for(jobs, sites, now, fresh=fresh)

    def plan_options(self, **kw: object) -> PlanOptions:
        return self.catalog.plan_options(**kw)

    def committed_capacity(self, job: Job, sites: Mapping[str, Site], now: datetime) -> tuple[Hold, ...] | None:
        return self.held.committed(job, sites, now)

    # -- submit -------------------------------------------------------------------------
    def build_job(self, req: SubmitRequest, now: datetime) -> Job:
        return self.submitting.build_job(req, now)

    def plan_one(self, job: Job, now: datetime) -> tuple[PlanEntry, str, bool]:
        return self.submitting.plan_one(job, now)

    def submit(self, req: SubmitRequest, *, now: datetime | None = None) -> SubmitResult:
        return self.submitting.submit(req, now=now)

    def submit_many(self, reqs: Sequence[SubmitRequest], *, now: datetime | None = None) -> list[Job]:
        return self.submitting.submit_many(reqs, now=now)

    def submit_sweep(
        self, reqs: Sequence[SubmitRequest], indices: Sequence[int], *, name: str,
        limit: int | None = None, budget_g: float | None = None, now: datetime | None = None,
    ) -> SweepResult:
        return self.submitting.submit_sweep(reqs, indices, name=name, limit=limit, budget_g=budget_g, now=now)

    # -- re-planning --------------------------------------------------------------------
    def replan(self, now: datetime, *, hysteresis_pct: float | None = None) -> tuple[Plan, list[tuple[Job, PlanEntry]]]:
        """Re-plan paused jobs' remaining work and every waiting job, in one plan; write
        the moves that save enough (:class:`~scheduler.queue.replan.ReplanService`)."""
        return self.replanning.replan(now, hysteresis_pct=hysteresis_pct)

    def replan_suspended(self, now: datetime, *, hysteresis_pct: float | None = None) -> list[tuple[Job, PlanEntry]]:
        """Re-plan only the paused jobs' remaining work (the same plan, without the
        waiting jobs); the (job, new entry) pairs written."""
        return self.replanning.replan(now, hysteresis_pct=hysteresis_pct, waiting=False)[1]

    # -- cancel -------------------------------------------------------------------------
    def check_owner(self, job: Job) -> None:
        self.cancelling.check_owner(job)

    def check_cancel(self, kind: str, ref_id: int, *, suffix: str = "") -> Job | Sweep:
        return self.cancelling.check(kind, ref_id, suffix=suffix)

    def cancel(self, job_id: int, *, now: datetime | None = None) -> tuple[Job, bool]:
        return self.cancelling.cancel(job_id, now=now)

    def cancel_sweep(self, sweep_id: int, *, now: datetime | None = None) -> tuple[Sweep, list[int], list[int]]:
        return self.cancelling.cancel_sweep(sweep_id, now=now)

    def stop_here(self, job_id: int, grace_s: float) -> bool:
        return self.cancelling.stop_here(job_id, grace_s)

    def jobs(self, states: Iterable[JobState] | None = None) -> list[Job]:
        return self.store.list_jobs(states)


__all__ = ["Queue"]
