"""Stored values as plain data for every edge: the JSON of the CLI, the web API and the
dashboard share these, so a job reads the same wherever it is shown.

No I/O and no click here: an edge turns what these return into text or bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from scheduler.text.quantities import fmt_energy_kwh, fmt_pct, fmt_saved
from scheduler.text.quantities import fmt_mass_g as fmt_g
from scheduler.text.times import iso

if TYPE_CHECKING:
    from scheduler.domain.model import Job
    from scheduler.sweep_summary import SweepSummary


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for our values: datetimes as UTC ISO with ``Z``, NaN and
    infinities as ``null``, enums as their value."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_text(data: Any) -> str:
    """``json.dumps(data, default=json_default, indent=2, ensure_ascii=False)``, the same
    text, faster for what the CLI prints most: a list of flat objects (one per job).

    With ``indent`` the standard library encodes in pure Python, a generator per value;
    a list's items that are flat dicts (str keys; str, int, float, bool, ``None`` or
    datetime values of exactly those types) are written here in one pass, and any other
    item (or anything not a list) goes to :func:`json.dumps`, its lines indented one
    level (a JSON text holds no raw newline but between its tokens)."""
    if not isinstance(data, list) or not data:
        return _dumps(data)
    return "[\n  " + ",\n  ".join([_flat_object(item) or _dumps(item).replace("\n", "\n  ")
                                     for item in data]) + "\n]"


def _dumps(data: Any) -> str:
    return json.dumps(data, default=json_default, indent=2, ensure_ascii=False)


_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _flat_object(item: object) -> str | None:
    """A flat dict at the second level of an indented list, as ``json.dumps`` writes it;
    ``None`` when it is not one."""
    if type(item) is not dict or not item:
        return None
    parts = []
    for key, value in item.items():
        kind = type(key)
        if kind is not str:
            return None
        kind = type(value)
        if kind is str:
            text = _encode_str(value)
        elif value is None:
            text = "null"
        elif kind is int:
            text = int.__repr__(value)
        elif kind is float:
            # json's floatstr: repr, NaN and the infinities as JavaScript writes them
            text = (float.__repr__(value) if value == value and value not in (_INF, -_INF)
                    else "NaN" if value != value else "Infinity" if value > 0 else "-Infinity")
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is datetime:
            text = _encode_str(json_default(value))
        else:
            return None
        parts.append(f"{_encode_str(key)}: {text}")
    return "{\n    " + ",\n    ".join(parts) + "\n  }"


_INF = float("inf")


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
    from scheduler.domain.model import sweep_ref

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


#: the columns of a sweep's row in every table
SWEEP_HEADERS = ["sweep", "name", "state", "owner", "trials", "deadline", "expected", "energy",
                 "emissions", "if run now", "saved", "budget used"]


def budget_text(s: SweepSummary) -> str:
    """``450 g of 1.00 kg (45%)``: the grams the daemon counts against the budget."""
    if s.budget_g is None or s.budget_used_g is None:
        return "-"
    return f"{fmt_g(s.budget_used_g)} of {fmt_g(s.budget_g)} ({fmt_pct(s.budget_used_pct, 0)})"


def sweep_cells(s: SweepSummary, when: Callable[[datetime | None], str]) -> list[str]:
    """A sweep's cells under :data:`SWEEP_HEADERS`; ``when`` formats a time (as the CLI or
    the page prints one)."""
    emitted = fmt_g(s.emissions_g)
    if s.intensity_kind:
        emitted += f" ({s.intensity_kind})"
    return [
        s.ref, s.name, s.state, s.owner, f"{s.trials_text()} of {s.size}", when(s.deadline_at),
        fmt_g(s.expected_g), fmt_energy_kwh(s.energy_kwh), emitted, fmt_g(s.counterfactual_g),
        fmt_saved(s.saved_g, s.saved_pct) if s.saved_g is not None else "-", budget_text(s),
    ]


def sweep_dict(s: SweepSummary, trials: Sequence[dict[str, object]] | None = None) -> dict[str, object]:
    """A sweep's JSON object: its summary, ``"kind": "sweep"``, its trials when given."""
    data: dict[str, object] = {"kind": "sweep", **s.as_dict()}
    if trials is not None:
        data["trials"] = list(trials)
    return data


def report_dict(rep: object, sweeps: dict[str, SweepSummary]) -> dict[str, object]:
    """A report's JSON; by sweep, each row's ``sweep`` is its summary (``None`` for ``-``)."""
    from scheduler.reporting import Report

    assert isinstance(rep, Report)
    data = rep.as_dict()
    if rep.by == "sweep":
        for row in data["rows"]:  # type: ignore[attr-defined]
            s = sweeps.get(row["key"])
            row["sweep"] = s.as_dict() if s is not None else None
    return data


__all__ = ["SWEEP_HEADERS", "budget_text", "job_dict", "json_default", "json_text", "planned_spans", "report_dict",
           "sweep_cells", "sweep_dict"]
