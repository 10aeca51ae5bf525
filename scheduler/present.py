"""Stored values as plain data for every edge: the JSON of the CLI, the web API and the
dashboard share these, so a job reads the same wherever it is shown.

No I/O and no click here: an edge turns what these return into text or bytes.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.model import Job


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for our values: datetimes as UTC ISO with ``Z``, NaN and
    infinities as ``null``, enums as their value."""
    if isinstance(value, datetime):
        from scheduler.timeutil import iso

        return iso(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def planned_spans(job: Job, stored: list[tuple[datetime, datetime]] | None) -> list[tuple[datetime, datetime]]:
    """A job's planned run intervals: those stored (an interruptible job the planner
    split), else one from its planned start for its duration (none before it is planned)."""
    if stored:
        return stored
    if job.planned_start is None:
        return []
    return [(job.planned_start, job.planned_start + timedelta(seconds=job.duration_s))]


def job_dict(job: Job, spans: list[tuple[datetime, datetime]] | None = None) -> dict[str, object]:
    """A job as the JSON of ``queue``, ``show`` and the web API's ``/api/queue``."""
    from scheduler.model import sweep_ref

    return {
        "id": job.id, "name": job.name, "state": str(job.state), "owner": job.owner,
        "argv": job.argv, "cwd": job.cwd, "shell": job.shell, "duration_s": job.duration_s,
        "power_w": job.power_w, "gpus": job.gpus, "cpus": job.cpus, "zone": job.zone,
        "site": job.site, "allowed_sites": job.allowed_sites, "policy": job.policy_name,
        "submitted_at": job.submitted_at, "earliest_start": job.earliest_start,
        "latest_start": job.latest_start, "deadline": job.deadline_at,
        "threshold_g_per_kwh": job.threshold_g_per_kwh, "budget_g": job.budget_g,
        "run_now": job.run_now, "interruptible": job.interruptible, "priority": job.priority,
        "planned_start": job.planned_start, "planned_site": job.planned_site,
        "expected_g": job.expected_g, "run_now_g": job.run_now_g, "plan_source": job.plan_source,
        "note": job.note, "attempts": job.attempts,
        "transfer_delay_s": job.transfer_delay_s, "transfer_energy_j": job.transfer_energy_j,
        "pause_mode": job.pause_mode, "pause_signal": job.pause_signal,
        "pause_grace_s": job.pause_grace_s,
        "intervals": [{"start": a, "end": b} for a, b in planned_spans(job, spans)],
        "sweep": sweep_ref(job.sweep_id) if job.sweep_id is not None else None,
        "sweep_id": job.sweep_id, "array_index": job.array_index, "sweep_limit": job.sweep_limit,
    }


__all__ = ["job_dict", "json_default", "planned_spans"]
