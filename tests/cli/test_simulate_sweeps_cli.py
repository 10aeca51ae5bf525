"""``carbonshift simulate`` with sweeps in the workload file, through the real CLI."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from intensity.providers.replay import SHIPPED_TRACE

WORKLOAD = (
    "submit,duration,deadline,sweep,array,max_concurrent\n"
    "2023-03-10T08:00:00Z,2h,36h,lr,6,2\n"          # six trials of sweep lr, at most 2 at once
    "2023-03-10T08:00:00Z,1h,36h,lr,2,\n"           # two more trials of lr (its cap stands)
    "2023-03-10T09:00:00Z,3h,30h,,4,\n"             # a sweep by itself, no cap
    "2023-03-10T10:00:00Z,1h,24h,,,\n"              # a plain job
)


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    return max(sum(a <= t < b for a, b in spans) for t, _ in spans)


def test_sweep_trials_never_exceed_their_cap_and_are_priced_as_independent(cs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wl = tmp_path / "sweeps.csv"
    wl.write_text(WORKLOAD)
    args = ["simulate", "--trace", str(SHIPPED_TRACE), "--workload", str(wl), "--forecast", "perfect",
            "--gpus", "8"]
    r = cs(*args, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["jobs"] == 13
    overall = data["overall"]
    assert overall["deadline_misses"] == 0 and overall["independent_deadline_misses"] == 0
    # the trials of lr (ids 1-8) planned together: never more than two running at once
    spans = [(datetime.fromisoformat(a), datetime.fromisoformat(b))
             for j in data["carbon_aware_jobs"] if j["id"] <= 8 for a, b in j["intervals"]]
    assert len(spans) >= 8 and most_at_once(spans) <= 2
    assert overall["together_vs_independent_g"] == overall["independent_g"] - overall["carbon_aware_g"]
    text = cs(*args)
    assert text.code == 0, text.err
    assert "independent jobs (no cap, each planned alone at its submission)" in text.out


def test_bad_sweep_columns_are_one_line_errors(cs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    head = "submit,duration,deadline,sweep,array,max_concurrent\n"
    cases = [
        ("2023-03-10T08:00:00Z,2h,36h,lr,4,0\n", "max_concurrent '0'"),
        ("2023-03-10T08:00:00Z,2h,36h,lr,4,four\n", "max_concurrent 'four'"),
        ("2023-03-10T08:00:00Z,2h,36h,lr,-3,\n", "array '-3'"),
        ("2023-03-10T08:00:00Z,2h,36h,lr,2.5,\n", "array '2.5'"),
        ("2023-03-10T08:00:00Z,2h,36h,,,3\n", "needs a sweep"),
        ("2023-03-10T08:00:00Z,2h,36h,lr,2,3\n2023-03-10T08:00:00Z,2h,36h,lr,2,4\n", "line 3: max_concurrent 4 differs"),
        ("2023-03-10T08:00:00Z,2h,36h,lr,2000000,\n", "past 1,000,000 jobs"),
    ]
    for i, (rows, needle) in enumerate(cases):
        wl = tmp_path / f"bad{i}.csv"
        wl.write_text(head + rows)
        r = cs("simulate", "--trace", str(SHIPPED_TRACE), "--workload", str(wl), "--forecast", "perfect")
        assert r.code == 2, (rows, r.err)
        assert needle in r.err, (rows, r.err)
        assert len(r.err.strip().splitlines()) == 1, r.err
