"""Relocation: a job moves to a cleaner allowed site when that pays for the transfer."""

from __future__ import annotations

from datetime import timedelta

from scheduler.planner import PlanOptions, plan
from tests.planner.helpers import T0, forecast, grams, isclose, job, site

FCS = {
    "DIRTY": forecast("DIRTY", [500_000] * 6, [3600] * 6),
    "CLEAN": forecast("CLEAN", [300_000, 50_000, 50_000, 50_000, 300_000, 300_000], [3600] * 6),
}


def sites(delay_s: int = 1800, energy_j: float = 0.0, pue: float = 1.0) -> dict:
    return {
        "home": site("home", "DIRTY", gpus=4),
        "green": site("green", "CLEAN", gpus=4, delay_s=delay_s, energy_j=energy_j, pue=pue),
    }


def test_moves_to_the_cleaner_site_after_the_transfer_delay() -> None:
    j = job(1, 3600, 0, 4 * 3600, site="home", allowed=["home", "green"], gpus=1)
    e = plan([j], FCS, sites(delay_s=5400), T0).entries[1]
    assert e.site == "green"
    assert e.start == T0 + timedelta(seconds=5400)  # 1.5 h: the first start the delay allows
    assert isclose(e.expected_g, grams(50_000 * 3600, j.power_w))
    assert "relocated from home" in e.reason
    assert isclose(e.run_now_g, grams(500_000 * 3600, j.power_w))  # run-now is at home


def test_transfer_energy_and_pue_count_against_moving() -> None:
    j = job(1, 3600, 0, 4 * 3600, site="home", allowed=["home", "green"], gpus=1)
    # 2 kWh of transfer at home's 500 g/kWh = 1000 g, more than the 450 g moving saves
    e = plan([j], FCS, sites(energy_j=2 * 3.6e6), T0).entries[1]
    assert e.site == "home"
    e = plan([j], FCS, sites(energy_j=0.5 * 3.6e6), T0).entries[1]
    assert e.site == "green"
    assert isclose(e.expected_g, grams(50_000 * 3600, j.power_w) + 0.5 * 500)
    e = plan([j], FCS, sites(pue=20.0), T0).entries[1]
    assert e.site == "home"


def test_per_job_transfer_figures_override_the_site() -> None:
    j = job(1, 3600, 0, 4 * 3600, site="home", allowed=["home", "green"], gpus=1)
    j.transfer_delay_s = 4 * 3600 + 1  # the delay makes the green site miss the window
    e = plan([j], FCS, sites(), T0).entries[1]
    assert e.site == "home"


def test_a_job_without_allowed_sites_stays_home() -> None:
    j = job(1, 3600, 0, 4 * 3600, site="home", gpus=1)
    assert plan([j], FCS, sites(), T0).entries[1].site == "home"


def test_capacity_at_the_clean_site_staggers_then_sends_the_overflow_home() -> None:
    s = sites(delay_s=0)
    jobs = [job(i, 3 * 3600, 0, 3 * 3600, site="home", allowed=["home", "green"], gpus=2)
            for i in range(1, 4)]
    entries = plan(jobs, FCS, s, T0, PlanOptions(slot_s=3600)).entries
    # 4 GPUs hold two 2-GPU jobs at once: staggering all three at green (0 h, 1 h, 3 h:
    # 400 + 150 + 650 units) beats two in the clean hours and one at home (150+150+1500)
    starts = sorted((e.start - T0) // timedelta(hours=1) for e in entries.values())
    assert {e.site for e in entries.values()} == {"green"}
    assert starts == [0, 1, 3]
    # five such jobs need 30 GPU-hours; green holds 24 in the six hours: one goes home
    jobs += [job(i, 3 * 3600, 0, 3 * 3600, site="home", allowed=["home", "green"], gpus=2)
             for i in (4, 5)]
    entries = plan(jobs, FCS, s, T0, PlanOptions(slot_s=3600)).entries
    assert sum(e.site == "home" for e in entries.values()) == 1
