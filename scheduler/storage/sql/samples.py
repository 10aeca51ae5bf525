"""Energy samples of runs, and energy by device."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, insert, select

from probes.model import Method, Sample
from scheduler.storage import tables as t
from scheduler.storage.sql.engine import SqlEngine


class SqlSamples(SqlEngine):
    """The samples aggregate (the ``samples`` table)."""

    # -- samples --------------------------------------------------------------------------
    def add_samples(self, run_id: int, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        values = [
            {
                "run_id": run_id,
                "start": s.start,
                "end": s.end,
                "device": s.device,
                "energy_j": s.energy_j,
                "method": str(s.method),
                "estimated": s.estimated,
                "note": s.note,
            }
            for s in samples
        ]
        with self._child_tx(f"add {len(samples)} samples to run {run_id}",
                            f"no run {run_id} to add samples to") as conn:
            conn.execute(insert(t.samples), values)

    def samples_for_run(self, run_id: int) -> list[Sample]:
        c = t.samples.c
        with self._tx(f"read samples of run {run_id}", write=False) as conn:
            rows = conn.execute(
                select(t.samples).where(c.run_id == run_id).order_by(c.start, c.id)
            ).all()
        return [
            Sample(
                start=m["start"],
                end=m["end"],
                device=m["device"],
                energy_j=m["energy_j"],
                method=Method(m["method"]),
                estimated=bool(m["estimated"]),
                note=m["note"],
            )
            for m in (r._mapping for r in rows)
        ]

    def device_energy(self, run_ids: Iterable[int]) -> dict[int, dict[str, float]]:
        ids = sorted(set(run_ids))
        c = t.samples.c
        out: dict[int, dict[str, float]] = {i: {} for i in ids}
        with self._tx("read energy by device", write=False) as conn:
            for k in range(0, len(ids), 500):  # bounded IN lists
                rows = conn.execute(
                    select(c.run_id, c.device, func.sum(c.energy_j))
                    .where(c.run_id.in_(ids[k:k + 500])).group_by(c.run_id, c.device)
                ).all()
                for run_id, device, energy_j in rows:
                    out[int(run_id)][str(device)] = float(energy_j or 0.0)
        return out
