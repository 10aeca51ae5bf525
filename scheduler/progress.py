"""Progress of running jobs, and the projection of their total energy and emissions.

The progress protocol
---------------------

A job may say how far it has got, so that ``carbonshift wait`` and ``show`` project its
total from progress rather than from the submitted duration. The executor sets the
environment variable ``CARBONSHIFT_PROGRESS_FILE`` to a path next to the run's log files;
the job (re)writes that file whenever it likes, as JSON::

    {"done": 3, "total": 10, "unit": "epoch"}

or ``{"fraction": 0.3}``, optionally with ``"message"``. Plain text is accepted too:
``3/10`` or ``epoch 3/10``. Write it atomically (to a temporary file, then
``os.replace``) so readers never see half a file; :func:`write_progress` does that and
does nothing when the variable is not set, so the same training script runs with and
without carbonshift. A job that reports nothing is projected from its duration.

Projection
----------

:func:`project` is pure. From the energy samples so far it takes the energy used and the
recent power; the remaining energy is, in order of preference:

1. **progress**: energy so far x (1 - f) / f, where f is the reported fraction done
   (energy per unit of progress assumed constant);
2. **duration**: recent power x (estimated duration - elapsed);
3. **overrun**: the job is past its estimate and reports no progress: nothing more is
   projected, and the figure is a lower bound.

Emissions so far come from the samples and the intensity points, as in accounting;
the remaining emissions use the forecast mean over the remaining time.

The last projection made while a job runs is stored as a ``projection`` event of the job,
so ``show`` and the Python API can compare it with the final figure in history.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

from intensity.model import IntensityPoint, forecast_of
from probes.model import Sample

PROGRESS_ENV = "CARBONSHIFT_PROGRESS_FILE"
PROJECTION_EVENT = "projection"
MAX_PROGRESS_BYTES = 4096
_TEXT_RE = re.compile(r"^\s*(?:(?P<unit>[A-Za-z_ -]+?)\s+)?(?P<done>\d+(?:\.\d+)?)\s*/\s*(?P<total>\d+(?:\.\d+)?)\s*$")
_EVENT_RE = re.compile(
    r"projected total (?P<wh>[0-9.eE+-]+) Wh, (?P<g>[0-9.eE+-]+|-) gCO2e at (?P<pct>[0-9.]+|-)% done"
)


@dataclass(frozen=True)
class Progress:
    """How far a job says it has got: ``fraction`` in [0, 1], and ``done``/``total`` if given."""

    fraction: float
    done: float | None = None
    total: float | None = None
    unit: str = ""
    message: str = ""

    def describe(self) -> str:
        if self.done is not None and self.total is not None:
            unit = f"{self.unit} " if self.unit else ""
            return f"{unit}{self.done:g}/{self.total:g}"
        return f"{self.fraction * 100:.0f}%"


def progress_path_for(out_path: str) -> str:
    """The progress file of a run, next to its stdout log (the executor's convention)."""
    base = out_path[:-4] if out_path.endswith(".out") else out_path
    return base + ".progress.json"


def parse_progress(text: str) -> Progress | None:
    """A :class:`Progress` from the file's content, or ``None`` if it says nothing usable."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        unit = str(data.get("unit") or "")[:40]
        message = str(data.get("message") or "")[:200]
        done, total, frac = _num(data.get("done")), _num(data.get("total")), _num(data.get("fraction"))
        if done is not None and total is not None and total > 0:
            return Progress(_clamp(done / total), done, total, unit, message)
        if frac is not None:
            return Progress(_clamp(frac), unit=unit, message=message)
        return None
    m = _TEXT_RE.match(text.splitlines()[-1] if text else "")
    if m and float(m.group("total")) > 0:
        done, total = float(m.group("done")), float(m.group("total"))
        return Progress(_clamp(done / total), done, total, (m.group("unit") or "").strip())
    return None


def _num(v: object) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def _clamp(f: float) -> float:
    return min(1.0, max(0.0, f))


def read_progress(path: str | Path | None) -> Progress | None:
    """Read a progress file; a missing, huge or garbled file is simply no progress."""
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_PROGRESS_BYTES + 1)
    except OSError:
        return None
    if len(raw) > MAX_PROGRESS_BYTES:
        return None
    return parse_progress(raw.decode("utf-8", errors="replace"))


def write_progress(
    done: float,
    total: float,
    *,
    unit: str = "",
    message: str = "",
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """For jobs: report ``done`` of ``total`` atomically. Returns whether a file was written.

    ``path`` defaults to ``$CARBONSHIFT_PROGRESS_FILE`` (this helper runs inside the job,
    the one place that reads it); without either it does nothing.
    """
    target = path or (env if env is not None else os.environ).get(PROGRESS_ENV)
    if not target:
        return False
    target = Path(target)
    data = json.dumps({"done": done, "total": total, "unit": unit, "message": message})
    try:  # a folder the job may not write (run_as_owner: the agent's private logs) is no crash
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".progress-")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True


@dataclass(frozen=True)
class Projection:
    """Where a running job stands and where it is heading. Energies in J, masses in g."""

    as_of: datetime
    elapsed_s: float
    energy_j: float
    emissions_g: float | None
    power_w: float
    remaining_s: float | None
    total_energy_j: float
    total_emissions_g: float | None
    basis: str
    fraction_done: float | None
    intensity_now_g_per_kwh: float | None
    progress: Progress | None = None

    def describe(self) -> str:
        """``projected 12.3 Wh, 4.56 g (epoch 3/10)``."""
        from scheduler.text.quantities import fmt_energy_j, fmt_mass_g

        g = f", {fmt_mass_g(self.total_emissions_g)}" if self.total_emissions_g is not None else ""
        why = {
            "progress": self.progress.describe() if self.progress else "progress",
            "duration": "from the estimated duration",
            "overrun": "past its estimate: at least",
        }.get(self.basis, self.basis)
        return f"projected {fmt_energy_j(self.total_energy_j)}{g} ({why})"


def recent_power_w(samples: Sequence[Sample], as_of: datetime, window_s: float = 60.0) -> float:
    """Total power (all devices) over the last ``window_s`` of samples before ``as_of``."""
    lo = as_of - timedelta(seconds=window_s)
    recent = [s for s in samples if s.end > lo and s.end <= as_of and s.end > s.start]
    if not recent:
        recent = [s for s in samples if s.end > s.start]
        if not recent:
            return 0.0
    start = max(lo, min(s.start for s in recent))
    span = (as_of - start).total_seconds()
    if span <= 0:
        return 0.0
    energy = 0.0
    for s in recent:
        a, b = max(s.start, start), min(s.end, as_of)
        if b > a:
            energy += s.energy_j * (b - a).total_seconds() / s.duration_s
    return energy / span


def project(
    samples: Sequence[Sample],
    *,
    started_at: datetime,
    now: datetime,
    duration_s: float,
    progress: Progress | None = None,
    points: Sequence[IntensityPoint] = (),
    pue: float = 1.0,
    window_s: float = 60.0,
    intervals: Sequence[tuple[datetime, datetime | None]] = (),
) -> Projection:
    """Project a running job's total energy and emissions (see the module docstring).

    ``intervals`` are those a paused (interruptible) run has run so far: the pauses between
    them do not count as elapsed run time."""
    from scheduler.domain.accounting import account

    as_of = max([s.end for s in samples], default=now)
    as_of = min(as_of, now) if as_of > now else as_of
    paused_s = sum(
        (b[0] - a[1]).total_seconds()
        for a, b in pairwise(intervals) if a[1] is not None and b[0] <= as_of
    )
    elapsed = max(0.0, (as_of - started_at).total_seconds() - paused_s)
    energy = sum(max(0.0, s.energy_j) for s in samples)
    power = recent_power_w(samples, as_of, window_s)
    emitted: float | None = None
    zone_points = list(points)
    if samples and zone_points:
        acct = account(samples, zone_points, started_at=started_at, submitted_at=started_at, pue=pue)
        emitted = acct.emissions_g if acct.intensity_kind != "none" else None
    fraction: float | None = None
    if progress is not None and progress.fraction > 0:
        fraction = progress.fraction
        basis = "progress"
        total_energy = energy / fraction
        remaining_s: float | None = elapsed * (1 - fraction) / fraction
    elif elapsed < duration_s:
        basis = "duration"
        remaining_s = duration_s - elapsed
        total_energy = energy + power * remaining_s
        fraction = elapsed / duration_s if duration_s > 0 else None
    else:
        basis = "overrun"
        remaining_s = None
        total_energy = energy
    intensity_now: float | None = None
    total_emissions: float | None = None
    if zone_points:
        fc = forecast_of(zone_points[0].zone, [p for p in zone_points if p.zone == zone_points[0].zone])
        pt = fc.at(now)
        intensity_now = pt.intensity_g_per_kwh if pt else None
        if emitted is not None or not samples:
            rest_j = max(0.0, total_energy - energy)
            rest_g = 0.0
            if rest_j > 0 and remaining_s:
                mean = fc.window_mean_g_per_kwh(as_of, as_of + timedelta(seconds=max(1.0, remaining_s)))
                rest_g = rest_j * pue / 3.6e6 * mean if math.isfinite(mean) else float("nan")
            total = (emitted or 0.0) + rest_g
            total_emissions = total if math.isfinite(total) else None
    return Projection(
        as_of=as_of, elapsed_s=elapsed, energy_j=energy, emissions_g=emitted, power_w=power,
        remaining_s=remaining_s, total_energy_j=total_energy, total_emissions_g=total_emissions,
        basis=basis, fraction_done=fraction, intensity_now_g_per_kwh=intensity_now,
        progress=progress,
    )


def projection_message(p: Projection) -> str:
    """The text of a ``projection`` event (parsed back by :func:`parse_projection`;
    `show` lists it, so its figures are plain decimals, six significant digits)."""
    from scheduler.text.quantities import fmt_number

    def plain(x: float) -> str:
        return fmt_number(x, 6).replace(",", "")

    g = plain(p.total_emissions_g) if p.total_emissions_g is not None else "-"
    pct = f"{p.fraction_done * 100:.1f}" if p.fraction_done is not None else "-"
    why = p.progress.describe() if p.basis == "progress" and p.progress else p.basis
    return (f"projected total {plain(p.total_energy_j / 3600)} Wh, {g} gCO2e at {pct}% done "
            f"(basis {p.basis}: {why}; {p.power_w:.0f} W now)")


@dataclass(frozen=True)
class StoredProjection:
    """A projection read back from a job's events."""

    at: datetime
    energy_kwh: float
    emissions_g: float | None
    fraction_done: float | None
    message: str


def parse_projection(at: datetime, message: str) -> StoredProjection | None:
    m = _EVENT_RE.search(message)
    if not m:
        return None
    try:
        wh = float(m.group("wh"))
        g = None if m.group("g") == "-" else float(m.group("g"))
        pct = None if m.group("pct") == "-" else float(m.group("pct")) / 100.0
    except ValueError:
        return None
    return StoredProjection(at, wh / 1000.0, g, pct, message)


def last_projection(events: Sequence[object]) -> StoredProjection | None:
    """The last ``projection`` event among a job's events, parsed."""
    from scheduler.domain.model import Event

    for e in reversed(list(events)):
        if isinstance(e, Event) and e.kind == PROJECTION_EVENT:
            p = parse_projection(e.at, e.message)
            if p is not None:
                return p
    return None


def projection_error_pct(projected: float | None, final: float | None) -> float | None:
    """How far the projection was from the final figure, in percent of the final figure."""
    if projected is None or final is None or final <= 0:
        return None
    return 100.0 * (projected - final) / final


__all__ = [
    "PROGRESS_ENV",
    "PROJECTION_EVENT",
    "Progress",
    "Projection",
    "ProjectionRecorder",
    "StoredProjection",
    "last_projection",
    "live_projection",
    "parse_progress",
    "parse_projection",
    "progress_path_for",
    "project",
    "projection_error_pct",
    "projection_message",
    "read_progress",
    "recent_power_w",
    "stored_projections",
    "write_progress",
]


def live_projection(app: object, job: object, run: object, now: datetime) -> Projection | None:
    """Glue for ``wait``, ``show``, the API and the dashboard: project one running run
    from its stored samples, its progress file (on this host) and the cached intensity
    points of its site's zone. Never calls a provider."""
    from scheduler.app import App
    from scheduler.domain.model import Job, Run
    from scheduler.errors import CarbonshiftError

    assert isinstance(app, App) and isinstance(job, Job) and isinstance(run, Run)
    if run.id is None:
        return None
    try:
        samples = app.store.samples_for_run(run.id)
        site = app.queue.sites().get(run.site)
        zone = site.zone if site is not None else job.zone
        pue = site.pue if site is not None else 1.0
        horizon = now + timedelta(seconds=job.duration_s + 3600)
        points = app.store.get_points(zone, run.started_at - timedelta(hours=1), horizon)
    except CarbonshiftError:
        return None
    progress = read_progress(progress_path_for(run.out_path)) if run.out_path else None
    try:
        spans = [(iv.start, iv.end) for iv in app.store.run_intervals(run.id)] if job.interruptible else []
    except CarbonshiftError:
        spans = []
    return project(samples, started_at=run.started_at, now=now, duration_s=job.duration_s, intervals=spans,
                   progress=progress, points=points, pue=pue)


def stored_projections(events: Sequence[object]) -> list[StoredProjection]:
    """Every ``projection`` event of a job, oldest first, parsed."""
    from scheduler.domain.model import Event

    out = []
    for e in events:
        if isinstance(e, Event) and e.kind == PROJECTION_EVENT:
            p = parse_projection(e.at, e.message)
            if p is not None:
                out.append(p)
    return out


class ProjectionRecorder:
    """Records a running job's projection as ``projection`` events, sparingly: the first
    one, the first based on reported progress, then when the progress moves (at most every
    ``min_s`` seconds), and at least every ``max_s`` seconds. Used by ``wait`` and :meth:`Client.wait`; its clock is
    the real monotonic one (it paces writes, it does not date them)."""

    def __init__(self, *, min_s: float = 10.0, max_s: float = 300.0) -> None:
        import time

        self._mono = time.monotonic
        self.min_s = min_s
        self.max_s = max_s
        self._last: tuple[float | None, float] | None = None

    def offer(self, app: object, job_id: int, proj: Projection, now: datetime) -> bool:
        """Record ``proj`` if it is due; return whether it was recorded."""
        from scheduler.app import App
        from scheduler.domain.model import Event
        from scheduler.errors import CarbonshiftError

        assert isinstance(app, App)
        if proj.energy_j <= 0:
            return False
        key = proj.progress.fraction if proj.progress else None
        t = self._mono()
        if self._last is not None:
            since = t - self._last[1]
            first_progress = key is not None and self._last[0] is None
            moved = key != self._last[0] and since >= self.min_s
            if not (first_progress or moved or since >= self.max_s):
                return False
        try:
            app.store.add_event(Event(job_id, now, PROJECTION_EVENT, projection_message(proj)))
        except CarbonshiftError:
            return False
        self._last = (key, t)
        return True
