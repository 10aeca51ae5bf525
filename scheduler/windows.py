"""The best window for one job in one zone, as `carbonshift forecast ZONE`, `wait-window`,
:meth:`carbonshift.Client.best_window` and :func:`carbonshift.wait_for_window` answer it.

One function, :func:`choose_window`, asks the provider chain for the zone's forecast and
picks the lowest-mean window of the job's length that ends by the deadline (the earliest
on ties), beside the run-now window it is compared with. The choice is
:func:`intensity.series.best_window`: the planner's own arithmetic, so `forecast ZONE` and a
submit's plan name the same start. Callers give the service and the
time; nothing here reads the clock or the environment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from scheduler.errors import BadInput
from scheduler.text.times import format_duration, iso

if TYPE_CHECKING:
    from intensity.chain import ForecastAnswer, IntensityService
    from intensity.model import IntensityPoint


@dataclass(frozen=True)
class WindowChoice:
    """Where a job of ``duration_s`` finishing by ``deadline_at`` emits least in ``zone``."""

    zone: str
    now: datetime
    duration_s: int
    deadline_at: datetime
    start: datetime
    end: datetime
    mean_g_per_kwh: float
    now_mean_g_per_kwh: float
    answer: ForecastAnswer
    points: tuple[IntensityPoint, ...]

    @property
    def saving_pct(self) -> float:
        """How much lower the window's mean is than the run-now window's, in percent."""
        if self.now_mean_g_per_kwh <= 0:
            return 0.0
        return (self.now_mean_g_per_kwh - self.mean_g_per_kwh) / self.now_mean_g_per_kwh * 100

    def to_dict(self) -> dict[str, Any]:
        """The JSON fields `forecast --json` and `wait-window --json` print."""
        return {
            "zone": self.zone,
            "now": self.now,
            "duration_s": self.duration_s,
            "deadline": self.deadline_at,
            "best_start": self.start,
            "best_end": self.end,
            "best_mean_g_per_kwh": round(self.mean_g_per_kwh, 3),
            "now_mean_g_per_kwh": round(self.now_mean_g_per_kwh, 3),
            "saving_pct": round(self.saving_pct, 2),
            "link": str(self.answer.link),
            "provider": self.answer.provider,
            "fallback": self.answer.fallback,
            "notes": list(self.answer.notes),
        }


def choose_window(service: IntensityService, zone: str, now: datetime, duration_s: int,
                  deadline_at: datetime, *, deadline_text: str = "", duration_text: str = "",
                  deadline_what: str = "deadline", duration_what: str = "duration") -> WindowChoice:
    """The zone's best window for the job; :class:`BadInput` when it cannot fit.

    ``*_text`` are what the user wrote and ``*_what`` how they wrote it (``--deadline``),
    for the messages."""
    room_s = check_fits(now, duration_s, deadline_at, deadline_text=deadline_text,
                        duration_text=duration_text, deadline_what=deadline_what,
                        duration_what=duration_what)
    from intensity.series import best_window, window_mean_g_per_kwh

    horizon_s = max(service.horizon_s, math.ceil(room_s))
    answer = service.forecast(zone, now, horizon_s)
    # the window is chosen on the whole forecast, as a submit's plan chooses it
    # (intensity.series: the same integral, the same fill, the same answer on near-ties)
    every = answer.forecast.points
    best = best_window(every, duration_s, now, deadline_at)
    # run now = at the first whole second, where the best window may start too (the planner's
    # run-now counterfactual), so a best window that starts now has the run-now mean
    now_start = datetime.fromtimestamp(math.ceil(now.timestamp()), UTC)
    now_mean = window_mean_g_per_kwh(every, now_start, now_start + timedelta(seconds=duration_s))
    points = tuple(p for p in every if p.end > now)
    return WindowChoice(zone=zone, now=now, duration_s=duration_s, deadline_at=deadline_at,
                        start=best.start, end=best.end, mean_g_per_kwh=best.mean_g_per_kwh,
                        now_mean_g_per_kwh=now_mean, answer=answer, points=points)


def check_fits(now: datetime, duration_s: int, deadline_at: datetime, *, deadline_text: str = "",
               duration_text: str = "", deadline_what: str = "deadline",
               duration_what: str = "duration") -> float:
    """The seconds from ``now`` to the deadline; :class:`BadInput` if the job cannot fit."""
    room_s = (deadline_at - now).total_seconds()
    if room_s <= 0:
        raise BadInput(f"{deadline_what} {deadline_text or iso(deadline_at)!r} is not after now "
                       f"({iso(now)}): give a later one")
    if duration_s > room_s:
        raise BadInput(
            f"{duration_what} {duration_text or format_duration(duration_s)} is longer than the "
            f"{format_duration(room_s)} until the deadline: give a shorter duration or a "
            f"later {deadline_what}"
        )
    return room_s
