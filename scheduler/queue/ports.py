"""What the queue's services need from the rest of the program, and nothing more.

Each collaborator is a function returning the current one: the
composition root (:class:`~scheduler.app.App`) opens the store and sets up the providers
only when first needed (a refused submit writes nothing, a bad trace is refused before a
database is made), and a test or the demo may swap the clock or the settings of a running
app. The services (:mod:`.submit`, :mod:`.replan`, :mod:`.cancel`) receive a
:class:`QueuePorts` and the catalog (:class:`Catalog`) they share, never the whole App.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from intensity.chain import IntensityService
    from intensity.model import Forecast
    from scheduler.clock import Clock
    from scheduler.config import Settings
    from scheduler.contracts import Executor
    from scheduler.domain.model import Job, Policy, Site
    from scheduler.planning import PlanOptions
    from scheduler.storage.base import JobStore
    from scheduler.storage.ports import SubmitReads

@dataclass(frozen=True)
class QueuePorts:
    """The queue's collaborators, each read when needed."""

    store: Callable[[], JobStore]
    intensity: Callable[[], IntensityService]
    settings: Callable[[], Settings]
    clock: Callable[[], Clock]
    #: who submits and cancels (a job's owner)
    user: Callable[[], str]
    #: whether the database is there yet (reading sites or policies must not create it)
    database_exists: Callable[[], bool] = lambda: True
    #: what a submission reads (sites, policies, held capacity) and the job it adds; the
    #: store when not given (the CLI gives a side door that needs no SQLAlchemy)
    submit_store: Callable[[], SubmitReads] | None = None
    #: the executor a run's ``executor`` name means, to stop a cancelled run of this host
    #: (``None``: none answers to it); by default built from the settings
    #: (:func:`scheduler.executors.registry.build_executor`)
    executor: Callable[[str], Executor | None] | None = None


class UsesPorts:
    """The collaborators of a service handed :class:`QueuePorts`, each read when used."""

    ports: QueuePorts

    @property
    def store(self) -> JobStore:
        return self.ports.store()

    @property
    def submit_store(self) -> SubmitReads:
        """What a submission reads and the job it adds (:attr:`QueuePorts.submit_store`)."""
        given = self.ports.submit_store
        return given() if given is not None else self.ports.store()

    @property
    def intensity(self) -> IntensityService:
        return self.ports.intensity()

    @property
    def settings(self) -> Settings:
        return self.ports.settings()

    @property
    def clock(self) -> Clock:
        return self.ports.clock()

    @property
    def user(self) -> str:
        """Who submits and cancels (a job's owner)."""
        return self.ports.user()

    def now(self, now: datetime | None = None) -> datetime:
        """``now`` if given, else the clock's."""
        return now or self.ports.clock().now()


class Catalog(Protocol):
    """Sites, policies, forecasts and planner options as the services read them
    (:class:`scheduler.queue.catalog.QueueCatalog`)."""

    def sites(self) -> dict[str, Site]: ...

    def get_policy(self, name: str) -> Policy: ...

    def forecast(self, zone: str, now: datetime, horizon_s: int) -> tuple[Forecast, str, bool]: ...

    def forecasts_for(
        self, jobs: Sequence[Job], sites: Mapping[str, Site], now: datetime, *, fresh: bool = False,
    ) -> tuple[dict[str, Forecast], dict[str, tuple[str, bool]]]: ...

    def plan_options(self, **kw: object) -> PlanOptions: ...


__all__ = ["Catalog", "QueuePorts", "UsesPorts"]
