"""Power samples of runs, and the energy per device they add up to.

Part of :class:`~scheduler.storage.mem.store.MemoryStore` (see :mod:`scheduler.storage.mem.state`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from probes.model import Method, Sample
from scheduler.errors import NotFound
from scheduler.storage.mem.state import MemoryState, _flag, _not_null, _utc


class MemorySamples(MemoryState):
    """Samples per run, in the order they were taken."""

    def add_samples(self, run_id: int, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        what = f"add {len(samples)} samples to run {run_id}"
        stored = [dataclasses.replace(s, start=_utc(s.start), end=_utc(s.end),
                                      method=Method(s.method), estimated=_flag(s.estimated))
                  for s in samples]
        for s in stored:
            _not_null("samples", s, what)
        with self._lock:
            if run_id not in self._runs:
                raise NotFound(f"no run {run_id} to add samples to")
            mine = self._samples[run_id]
            for s in stored:
                mine.append((self._ids.take("samples", None, lambda _: False), s))

    def samples_for_run(self, run_id: int) -> list[Sample]:
        with self._lock:
            return [s for _, s in sorted(self._samples.get(run_id, []),
                                         key=lambda pair: (pair[1].start, pair[0]))]

    def device_energy(self, run_ids: Iterable[int]) -> dict[int, dict[str, float]]:
        with self._lock:
            out: dict[int, dict[str, float]] = {}
            for run_id in sorted(set(run_ids)):
                per = out[run_id] = {}
                for _, s in self._samples.get(run_id, []):
                    per[s.device] = per.get(s.device, 0.0) + float(s.energy_j or 0.0)
            return out


__all__ = ["MemorySamples"]
