"""What the agent asks of sweeps (:mod:`scheduler.sweeps`) about their trials: whether one
may start, putting one back, and a sweep's budget after a run. The sweeps' rules take the
whole app; this adapter is the one part of the agent that holds it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.domain.model import Job

if TYPE_CHECKING:
    from scheduler.app import App
    from scheduler.sweeps import Gate


class Trials:
    def __init__(self, app: App) -> None:
        self.app = app

    @staticmethod
    def lease_name(sweep_id: int) -> str:
        """The lease an agent holds from a trial's gate to its run's row."""
        from scheduler import sweeps

        return sweeps.launch_lease(sweep_id)

    def gate(self, job: Job, now: datetime) -> Gate:
        """Whether the claimed trial ``job`` may start now (:func:`scheduler.sweeps.launch_gate`)."""
        from scheduler import sweeps

        return sweeps.launch_gate(self.app, job, now)

    def put_back(self, job: Job, note: str) -> Gate:
        """Undo the claim of a trial that may not start yet (:func:`scheduler.sweeps.put_back`)."""
        from scheduler import sweeps

        return sweeps.put_back(self.app, job, note)

    def check_budget(self, sweep_id: int, now: datetime) -> str | None:
        """Stop the sweep if the rest would break its budget; the line saying so, if it did."""
        from scheduler import sweeps

        return sweeps.check_budget(self.app, self.app.store.get_sweep(sweep_id), now)
