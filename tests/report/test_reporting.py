"""Reports over the hand-computed seed history (see report_seed.py for the figures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from report_seed import T0, seed_store

from scheduler.errors import BadInput
from scheduler.history import history_rows
from scheduler.reporting import (
    CarbonPrice,
    build_report,
    fmt_kwh,
    period_label,
    period_start,
    table_rows,
)
from scheduler.storage.store import open_store


@pytest.fixture(scope="module")
def rows():  # type: ignore[no-untyped-def]
    store = open_store("sqlite://")
    seed_store(store)
    out = history_rows(store)
    store.close()
    return out


NOW = T0 + timedelta(days=6)


def test_total_sums_every_figure(rows) -> None:  # type: ignore[no-untyped-def]
    rep = build_report(rows, by="day", now=NOW)
    t = rep.total
    assert (t.jobs, t.finished, t.succeeded, t.accounted) == (5, 3, 2, 3)
    assert t.energy_kwh == pytest.approx(13.5)
    assert t.emissions_kg == pytest.approx(4.4)
    assert t.run_now_kg == pytest.approx(6.0)
    assert t.saved_kg == pytest.approx(1.6)
    assert t.saved_pct == pytest.approx(100 * 1.6 / 6.0)
    # 2 GPUs x 3 h + 8 GPUs x 2 h; the 0-GPU job adds nothing
    assert t.gpu_hours == pytest.approx(22.0)
    # of the succeeded jobs with a deadline, job 1 finished in time, job 2 did not
    assert (t.deadline_hits, t.deadline_jobs, t.deadline_hit_pct) == (1, 2, 50.0)
    # delays: 12 h, 4 h, 0 h
    assert t.mean_delay_s == pytest.approx(16 * 3600 / 3)
    # energy-weighted: (3 x 1 + 10 x 0.5 + 0.5 x 0) / 13.5
    assert t.measured_share == pytest.approx(8.0 / 13.5)
    # emissions-weighted: (300 x 1 + 4000 x 0 + 100 x 1) / 4400
    assert t.actual_share == pytest.approx(400 / 4400)
    assert t.estimated_kg == pytest.approx((330 + 3500 + 90) / 1000)
    assert t.carbon_cost is None and t.cost_avoided is None


def test_by_day_fills_gaps_in_time_order(rows) -> None:  # type: ignore[no-untyped-def]
    rep = build_report(rows, by="day", now=NOW)
    assert [r.key for r in rep.rows] == ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]
    mon, tue, wed, thu = rep.rows
    assert mon.jobs == 1 and mon.emissions_kg == pytest.approx(0.3)
    assert tue.jobs == 1 and tue.emissions_kg == pytest.approx(4.0)
    assert wed.jobs == 0 and wed.accounted == 0 and wed.saved_pct is None
    assert thu.jobs == 3 and thu.emissions_kg == pytest.approx(0.1)
    assert sum(r.jobs for r in rep.rows) == rep.total.jobs


def test_day_boundaries_follow_the_time_zone(rows) -> None:  # type: ignore[no-untyped-def]
    # job 1 started Mon 22:00 UTC, which is Tue 00:00 at UTC+2
    plus2 = timezone(timedelta(hours=2))
    rep = build_report(rows, by="day", tz=plus2, now=NOW)
    assert rep.rows[0].key == "2026-03-03"
    assert rep.rows[0].jobs == 2


def test_by_week_and_month(rows) -> None:  # type: ignore[no-untyped-def]
    week = build_report(rows, by="week", now=NOW)
    assert [r.key for r in week.rows] == ["2026-W10"]
    assert week.rows[0].start == datetime(2026, 3, 2, tzinfo=UTC)
    month = build_report(rows, by="month", now=NOW)
    assert [r.key for r in month.rows] == ["2026-03"]
    assert month.rows[0].emissions_kg == pytest.approx(4.4)


def test_by_owner_sorted_by_emissions(rows) -> None:  # type: ignore[no-untyped-def]
    rep = build_report(rows, by="owner", now=NOW)
    assert [r.key for r in rep.rows] == ["bob", "alice", "carol"]
    bob, alice, carol = rep.rows
    assert bob.jobs == 2 and bob.emissions_kg == pytest.approx(4.0)
    assert alice.emissions_kg == pytest.approx(0.4) and alice.saved_kg == pytest.approx(0.6)
    assert carol.accounted == 0 and carol.saved_pct is None


def test_by_site_policy_zone_and_job(rows) -> None:  # type: ignore[no-untyped-def]
    assert [r.key for r in build_report(rows, by="site").rows] == ["hpc", "local"]
    pol = {r.key: r for r in build_report(rows, by="policy").rows}
    assert set(pol) == {"nightly", "default", "now"}
    assert pol["nightly"].saved_pct == pytest.approx(100 * 600 / 900)
    assert [r.key for r in build_report(rows, by="zone").rows] == ["DE", "GB"]
    jobs = build_report(rows, by="job").rows
    assert [r.key.split()[1] for r in jobs] == ["bert-ft", "llama-sweep", "eval", "waiting", "dropped"]


def test_carbon_price_gives_cost_and_cost_avoided(rows) -> None:  # type: ignore[no-untyped-def]
    price = CarbonPrice.parse("80EUR/t")
    rep = build_report(rows, by="owner", price=price)
    assert rep.total.carbon_cost == pytest.approx(4.4 / 1000 * 80)
    assert rep.total.cost_avoided == pytest.approx(1.6 / 1000 * 80)
    d = rep.as_dict()
    assert d["carbon_price_per_t"] == 80.0 and d["currency"] == "EUR"


@pytest.mark.parametrize(
    ("text", "per_t", "currency"),
    [
        ("80/t", 80.0, ""),
        ("80", 80.0, ""),
        ("80EUR/t", 80.0, "EUR"),
        ("€80/t", 80.0, "EUR"),
        ("EUR 80 / tco2e", 80.0, "EUR"),
        ("0.08/kg", 80.0, ""),
        ("85,5 usd/t", 85.5, "USD"),
        ("100 CHF/t", 100.0, "CHF"),
    ],
)
def test_carbon_price_parsing(text: str, per_t: float, currency: str) -> None:
    p = CarbonPrice.parse(text)
    assert p.per_t == pytest.approx(per_t)
    assert p.currency == currency
    assert p.cost(1e6) == pytest.approx(per_t)


@pytest.mark.parametrize("text", ["", "eighty", "-5/t", "80/lb", "80 EUROPEANS/t", "1/0"])
def test_bad_carbon_price_is_one_clear_error(text: str) -> None:
    with pytest.raises(BadInput, match="carbon price"):
        CarbonPrice.parse(text)


def test_unknown_grouping_is_refused() -> None:
    with pytest.raises(BadInput, match="--by 'hour'"):
        build_report([], by="hour")


def test_empty_history_gives_an_empty_report() -> None:
    rep = build_report([], by="day")
    assert rep.rows == [] and rep.total.jobs == 0 and rep.total.saved_pct is None
    assert rep.total.measured_share is None


def test_periods() -> None:
    t = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert period_label(period_start(t, "week", UTC), "week") == "2026-W53"
    assert period_label(period_start(t, "month", UTC), "month") == "2026-12"
    assert period_start(t, "day", timezone(timedelta(hours=1))).day == 1


def test_table_rows_show_units_and_total(rows) -> None:  # type: ignore[no-untyped-def]
    rep = build_report(rows, by="owner", price=CarbonPrice.parse("80/t"))
    headers, cells = table_rows(rep, lambda g: f"{g}g", lambda s: f"{s:.0f}s")
    assert headers[-2:] == ["carbon cost", "avoided"]
    assert cells[-1][0] == "total"
    assert cells[-1][headers.index("deadlines")] == "1/2"
    assert fmt_kwh(13.5) == "13.5 kWh"
    assert fmt_kwh(0.0025) == "2.50 Wh"
    assert fmt_kwh(9e-9) == "9.00 µWh"  # was "9e-06 Wh"


def test_accuracy_of_planner_estimates_and_live_projections(rows) -> None:  # type: ignore[no-untyped-def]
    from scheduler.progress import StoredProjection
    from scheduler.reporting import accuracy

    # job 1 was projected 10 % high at half way, job 2 20 % low at 80 %
    projections = {
        1: StoredProjection(T0, 3.3, 330.0, 0.5, "m"),
        2: StoredProjection(T0, 8.0, None, 0.8, "m"),
        4: StoredProjection(T0, 9.9, None, 0.1, "m"),  # no final figure yet: ignored
    }
    acc = accuracy(rows, projections)
    assert acc.planned_jobs == 3
    assert acc.planned_expected_kg == pytest.approx(3.92) and acc.planned_emitted_kg == pytest.approx(4.4)
    assert acc.planned_error_pct == pytest.approx(100 * (3920 - 4400) / 4400)
    assert acc.projection_jobs == 2
    assert acc.projection_mean_abs_error_pct == pytest.approx(15.0)
    assert acc.projection_mean_error_pct == pytest.approx(-5.0)
    assert acc.projection_mean_done_pct == pytest.approx(65.0)
    line = acc.describe(lambda g: f"{g:.0f} g")
    assert "expected 3920 g for 3 measured job(s), they emitted 4400 g (11% under)" in line
    assert "live projections of 2 job(s) were off by 15%" in line
    assert accuracy([], {}).describe(str) == ""
