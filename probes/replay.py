"""Recorded samples as an :class:`~probes.base.EnergyProbe`: the fake the design promised.

A recording is a list of ``(time_s, value)`` points, ``time_s`` in seconds from the start of
the recording, ``value`` either a power in watts (``kind="power_w"``, integrated by the
trapezoidal rule between points, linearly in between) or a cumulative energy counter in joules
(``kind="energy_j"``, interpolated linearly). :meth:`ReplayProbe.begin` pins the recording's
time 0 to the time it is given; each :meth:`~ReplayProbe.read` returns the energy of the
recording over ``[previous reading, now)`` mapped the same way. Reading past the recording's
end raises :class:`~probes.errors.ProbeError` (the sampler then falls back, as for a device
lost mid-run): a replay never invents energy it was not given.

The samples say ``method="replay"`` and ``estimated=False`` unless told otherwise: a report
fed by a replay names where its figures came from. Pure arithmetic, no clock and no I/O except
:meth:`ReplayProbe.from_csv`.
"""

from __future__ import annotations

import bisect
import csv
import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from probes.base import EnergyProbe
from probes.energy import trapezoid_energy_j
from probes.errors import ProbeError, ProbeUnavailable
from probes.model import Method, ProbeTarget, Sample

Kind = Literal["power_w", "energy_j"]
_KINDS: tuple[Kind, ...] = ("power_w", "energy_j")


def cumulative_energy_j(points: Sequence[tuple[float, float]], kind: Kind) -> list[float]:
    """The energy in joules used from the first point to each point of a recording."""
    if kind == "energy_j":
        return [value - points[0][1] for _, value in points]
    steps_j = (trapezoid_energy_j(pair) for pair in itertools.pairwise(points))
    return list(itertools.accumulate(steps_j, initial=0.0))


class ReplayProbe(EnergyProbe):
    """Replays a recording of one device's power or energy as the probe is read.

    ``device`` and ``roles`` say what the recording covers (``gpu:0`` with ``{"gpu"}``...),
    ``method`` what the samples will say (``replay`` by default: honest about their origin).
    """

    def __init__(
        self,
        points: Iterable[tuple[float, float]],
        *,
        kind: Kind = "power_w",
        device: str = "cpu",
        roles: frozenset[str] = frozenset({"cpu"}),
        method: Method = Method.REPLAY,
        estimated: bool = False,
    ) -> None:
        pts = [(float(t_s), float(v)) for t_s, v in points]
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {', '.join(_KINDS)}, not {kind!r}")
        if len(pts) < 2:
            raise ValueError("a recording needs at least two points")
        if any(t1 <= t0 for (t0, _), (t1, _) in itertools.pairwise(pts)):
            raise ValueError("a recording's times must increase strictly")
        if kind == "power_w" and any(v < 0 for _, v in pts):
            raise ValueError("power must not be negative")
        if kind == "energy_j" and any(v1 < v0 for (_, v0), (_, v1) in itertools.pairwise(pts)):
            raise ValueError("an energy counter must not decrease")
        self.kind: Kind = kind
        self.device = device
        self.roles = roles
        self.method = method
        self.estimated = estimated
        self._times_s = [t_s - pts[0][0] for t_s, _ in pts]
        self._values = [v for _, v in pts]
        self._energy_j = cumulative_energy_j(pts, kind)
        self._origin: datetime | None = None
        self._previous: datetime | None = None

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: object) -> ReplayProbe:
        """A recording from a CSV file with a header ``time_s,power_w`` or ``time_s,energy_j``."""
        with Path(path).open(newline="") as f:
            rows = list(csv.DictReader(f))
        fields = set(rows[0]) if rows else set()
        kinds = [k for k in _KINDS if k in fields]
        if "time_s" not in fields or len(kinds) != 1:
            raise ValueError(f"{path}: expected a header time_s and one of power_w, energy_j")
        kind = kinds[0]
        return cls([(float(r["time_s"]), float(r[kind])) for r in rows], kind=kind, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_samples(cls, samples: Sequence[Sample], **kwargs: object) -> ReplayProbe:
        """Replays samples recorded earlier (one device, contiguous, in time order)."""
        if not samples:
            raise ValueError("no samples to replay")
        if len({s.device for s in samples}) != 1:
            raise ValueError("samples of one device only")
        t0 = samples[0].start
        points = [(0.0, 0.0)]
        total_j = 0.0
        for previous, s in zip([None, *samples], samples, strict=False):
            if previous is not None and s.start != previous.end:
                raise ValueError("samples must be contiguous and in time order")
            total_j += s.energy_j
            points.append(((s.end - t0).total_seconds(), total_j))
        kwargs.setdefault("device", samples[0].device)
        return cls(points, kind="energy_j", **kwargs)  # type: ignore[arg-type]

    @property
    def duration_s(self) -> float:
        """Length of the recording."""
        return self._times_s[-1]

    def energy_between_j(self, start_s: float, end_s: float) -> float:
        """Energy of the recording over ``[start_s, end_s]`` seconds from its start."""
        return self._at(end_s) - self._at(start_s)

    def _at(self, t_s: float) -> float:
        if t_s < 0 or t_s > self._times_s[-1]:
            raise ProbeError(
                f"replay of {self.device}: {t_s:g} s is outside the recording (0 to {self._times_s[-1]:g} s)"
            )
        i = bisect.bisect_right(self._times_s, t_s) - 1
        if i >= len(self._times_s) - 1:
            return self._energy_j[-1]
        t0_s, t1_s = self._times_s[i], self._times_s[i + 1]
        e0_j, e1_j = self._energy_j[i], self._energy_j[i + 1]
        if self.kind == "energy_j":
            return e0_j + (e1_j - e0_j) * (t_s - t0_s) / (t1_s - t0_s)
        # power varies linearly between the points: the trapezoid up to t_s, exactly
        p0_w, p1_w = self._values[i], self._values[i + 1]
        p_w = p0_w + (p1_w - p0_w) * (t_s - t0_s) / (t1_s - t0_s)
        return e0_j + (p0_w + p_w) / 2.0 * (t_s - t0_s)

    def begin(self, target: ProbeTarget, now: datetime) -> None:
        if self._origin is not None:
            raise ProbeUnavailable(f"replay of {self.device} already began")
        self._origin = self._previous = now

    def read(self, now: datetime) -> list[Sample]:
        if self._origin is None or self._previous is None:
            raise ProbeError("replay read before begin")
        start, origin = self._previous, self._origin
        energy_j = self.energy_between_j((start - origin).total_seconds(), (now - origin).total_seconds())
        self._previous = now
        return [Sample(start, now, self.device, energy_j, self.method, estimated=self.estimated, note="replay")]
