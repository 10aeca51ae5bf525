"""Prometheus metrics of a queue: ``/metrics`` on the dashboard and ``run --metrics-port``.

Every scrape reads the database afresh in a bounded number of queries (:meth:`totals`, one
intensity read per zone of a site), so any number of dashboards and daemons may serve it.
Names carry their units (``_joules``, ``_grams``, ``_g_per_kwh``) and every emission series
is labelled by site; the current intensity says its kind (actual or forecast) and provider.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from intensity.model import Kind
from scheduler.domain.model import JobState

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from scheduler.app import App
    from scheduler.storage.base import JobStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = tuple(s.value for s in JobState)


class _QueueCollector:
    def __init__(self, store: JobStore, now: datetime, zones: Iterable[str]) -> None:
        self.store = store
        self.now = now
        self.zones = sorted(set(zones))

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        totals = self.store.totals()
        jobs = GaugeMetricFamily("carbonshift_jobs", "Jobs in the queue by state.", labels=["state"])
        for state in sorted(set(STATES) | set(totals.jobs_by_state)):
            jobs.add_metric([state], totals.jobs_by_state.get(state, 0))
        yield jobs
        energy = CounterMetricFamily("carbonshift_energy_joules",
                                     "Measured IT energy of accounted runs (PUE not applied).",
                                     labels=["site"])
        facility = CounterMetricFamily("carbonshift_facility_energy_joules",
                                       "Energy of accounted runs times the site's PUE.",
                                       labels=["site"])
        emitted = CounterMetricFamily("carbonshift_emissions_grams",
                                      "CO2e emitted by accounted runs.", labels=["site"])
        run_now = CounterMetricFamily("carbonshift_run_now_emissions_grams",
                                      "CO2e the same runs would have emitted started at submission.",
                                      labels=["site"])
        saved = GaugeMetricFamily("carbonshift_saved_grams",
                                  "CO2e saved against running each job at submission.",
                                  labels=["site"])
        runs = CounterMetricFamily("carbonshift_accounted_runs", "Runs accounted.", labels=["site"])
        for site, tot in sorted(totals.sites.items()):
            energy.add_metric([site], tot.energy_j)
            facility.add_metric([site], tot.facility_energy_j)
            emitted.add_metric([site], tot.emissions_g)
            run_now.add_metric([site], tot.counterfactual_g)
            saved.add_metric([site], tot.counterfactual_g - tot.emissions_g)
            runs.add_metric([site], tot.runs)
        yield from (energy, facility, emitted, run_now, saved, runs)
        total_saved = GaugeMetricFamily("carbonshift_saved_grams_total_all_sites",
                                        "CO2e saved against run-now, all sites together.")
        total_saved.add_metric([], sum(t.counterfactual_g - t.emissions_g for t in totals.sites.values()))
        yield total_saved
        yield from self._intensity()
        plan = GaugeMetricFamily("carbonshift_last_plan_timestamp_seconds",
                                 "When the last plan was written (Unix time).")
        if totals.last_planned_at is not None:
            plan.add_metric([], totals.last_planned_at.timestamp())
        yield plan
        source = InfoMetricFamily("carbonshift_plan_source",
                                  "Where the last plan's forecast came from (the fallback link).")
        if totals.last_plan_source is not None:
            source.add_metric([], {"source": totals.last_plan_source})
        yield source

    def _intensity(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        from intensity.providers.static import lookup

        g = GaugeMetricFamily("carbonshift_intensity_g_per_kwh",
                              "Grid intensity now per zone: the stored value covering now (actual "
                              "where known, else the newest forecast), else the static annual "
                              "average the fallback chain would use.",
                              labels=["zone", "kind", "provider"])
        for zone in self.zones:
            points = [p for p in self.store.get_points(zone, self.now - timedelta(hours=1),
                                                       self.now + timedelta(seconds=1))
                      if p.start <= self.now < p.end]
            if not points:
                average = lookup(zone)
                if average is not None:
                    g.add_metric([zone, "static", "static"], average.intensity_g_per_kwh)
                continue
            actual = [p for p in points if p.kind is Kind.ACTUAL]
            best = max(actual or points, key=lambda p: p.issued_at or p.start)
            g.add_metric([zone, str(best.kind), best.provider], best.intensity_g_per_kwh)
        yield g


def render_app(app: App) -> bytes:
    """:func:`render` for an app: its store, its clock, its sites' zones."""
    return render(app.store, app.clock.now(), [site.zone for site in app.queue.sites().values()])


def render(store: JobStore, now: datetime, zones: Iterable[str]) -> bytes:
    """The text exposition of the queue's metrics as of ``now``; the intensity of each of
    ``zones`` (the sites' zones)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_QueueCollector(store, now, zones))
    return generate_latest(registry)
