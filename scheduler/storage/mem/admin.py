"""Totals, schema revision and integrity: what :class:`~scheduler.storage.ports.Admin` asks.

Part of :class:`~scheduler.storage.mem.store.MemoryStore` (see :mod:`scheduler.storage.mem.state`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from scheduler.domain.model import Job
from scheduler.storage.base import SiteTotals, Totals
from scheduler.storage.mem.state import MemoryState


class MemoryAdmin(MemoryState):
    """The store's bookkeeping: totals per site, counts per state, the schema revision it keeps."""

    def close(self) -> None:
        """Nothing to release: the data stays until the object goes."""

    def totals(self) -> Totals:
        with self._lock:
            sites: dict[str, list[float]] = {}
            for run in self._runs.values():
                acc = run.accounting
                if acc is None or acc.energy_j is None:
                    continue
                sums = sites.setdefault(run.site, [0, 0.0, 0.0, 0.0, 0.0])
                for k, value in enumerate((1, acc.energy_j, acc.facility_energy_j,
                                           acc.emissions_g, acc.counterfactual_g), start=0):
                    sums[k] += value or 0.0
            planned = [j for j in self._jobs.values()
                       if j.planned_start is not None and j.plan_source is not None]
            last = max(planned, default=None,
                       key=lambda j: (j.updated_at or datetime.min.replace(tzinfo=UTC), j.id or 0))
            return Totals(
                jobs_by_state=self._counts(self._jobs),
                sites={name: SiteTotals(int(n), float(e), float(f), float(g), float(c))
                       for name, (n, e, f, g, c) in sites.items()},
                last_planned_at=None if last is None else last.updated_at,
                last_plan_source=None if last is None else last.plan_source,
            )

    @staticmethod
    def _counts(jobs: dict[int, Job]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in jobs.values():
            counts[job.state.value] = counts.get(job.state.value, 0) + 1
        return counts

    def revision(self) -> str | None:
        """The schema revision whose semantics this store keeps: always the newest."""
        from scheduler.storage.sql.admin import HEAD_REVISION

        return HEAD_REVISION

    def count_jobs_by_state(self) -> dict[str, int]:
        with self._lock:
            return self._counts(self._jobs)

    def integrity_problems(self) -> list[str]:
        """None: every reference is checked as it is written."""
        return []

    def upgrade(self, progress: Callable[[int, int, str], None] | None = None) -> str:
        """Nothing to apply (see :meth:`revision`)."""
        return self.revision() or "none"


__all__ = ["MemoryAdmin"]
