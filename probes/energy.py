"""Pure arithmetic of energy measurement: counter deltas, wrap-around, integration, shares.

No I/O and no clock here, so every rule is tested on plain numbers. Units are those of the
arguments (microjoules in, microjoules out); the adapters convert once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence


def counter_delta(previous: float, current: float, max_range: float | None = None) -> float:
    """Increase of a monotonic energy counter between two readings.

    A counter that went down wrapped at ``max_range`` (RAPL's ``max_energy_range_uj``): the
    increase is ``max_range - previous + current``. Without a known range a decrease is a
    reset (driver reload, device swap), counted as 0 rather than as negative energy.
    """
    if current >= previous:
        return current - previous
    if max_range is not None and max_range > 0 and previous <= max_range:
        return max_range - previous + current
    return 0.0


def clamped_increment(previous: float, current: float) -> float:
    """``current - previous``, never below 0 (a total that lost a member never goes back)."""
    return max(0.0, current - previous)


def trapezoid_energy_j(points: Sequence[tuple[float, float]]) -> float:
    """Energy in joules of power samples ``(time_s, power_w)`` by the trapezoidal rule.

    Points must be in time order; pairs whose time does not increase contribute nothing.
    """
    energy_j = 0.0
    for (t0_s, p0_w), (t1_s, p1_w) in itertools.pairwise(points):
        dt_s = t1_s - t0_s
        if dt_s > 0:
            energy_j += (p0_w + p1_w) / 2.0 * dt_s
    return energy_j


def share(part: float, whole: float) -> float:
    """``part / whole`` clamped to ``[0, 1]``; 0 when ``whole`` is not positive."""
    if whole <= 0 or part <= 0:
        return 0.0
    return min(1.0, part / whole)


def split_by_weights(total: float, weights: Iterable[float]) -> list[float]:
    """Split ``total`` in proportion to non-negative ``weights`` (equally if all are 0)."""
    ws = [max(0.0, w) for w in weights]
    if not ws:
        return []
    s = sum(ws)
    if s <= 0:
        return [total / len(ws)] * len(ws)
    return [total * w / s for w in ws]
