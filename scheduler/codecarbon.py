"""History as CodeCarbon's ``emissions.csv``: ``carbonshift history --format codecarbon``.

The columns are CodeCarbon's (``codecarbon.output_methods.emissions_data.EmissionsData``,
3.x), in its order and units, so notebooks and dashboards that read CodeCarbon files read
carbonshift's history: emissions in kg CO2e, energies in kWh, powers in W (the run's mean),
duration in seconds. Mapping:

- ``project_name`` the job's name, ``experiment_id`` ``carbonshift-job-ID``, ``run_id``
  ``carbonshift-run-ID``; ``timestamp`` the run's end (ISO 8601, UTC);
- ``cpu_energy`` / ``gpu_energy`` / ``ram_energy`` the measured IT energy per device class
  (the method of each is in carbonshift's own history: ``energy_method``);
  ``energy_consumed`` the facility energy (IT energy x ``pue``), which the emissions use;
- ``country_iso_code`` (ISO 3) and ``country_name`` from the zone's country, ``region`` the
  zone itself (``US-CAL-CISO``); ``gpu_count`` the GPUs the job held;
- columns carbonshift does not know (hardware models, coordinates, water) are empty rather
  than guessed; ``tracking_mode`` is ``process``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scheduler.text.times import iso

if TYPE_CHECKING:
    from scheduler.history import HistoryRow
    from scheduler.storage.base import JobStore

#: CodeCarbon 3.x ``EmissionsData`` fields, in order
COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
    "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy",
    "ram_energy", "energy_consumed", "water_consumed", "country_name", "country_iso_code",
    "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version",
    "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)


def device_class(device: str) -> str:
    """``cpu``, ``gpu`` or ``ram`` for a probe's device name (``gpu:0``, ``memory``...)."""
    d = device.lower()
    if d.startswith("gpu"):
        return "gpu"
    if d.startswith(("memory", "dram", "ram")):
        return "ram"
    return "cpu"


def to_csv(rows: Sequence[HistoryRow], store: JobStore) -> str:
    """The CSV text of the rows that have a finished, accounted run."""
    from intensity.providers.static import lookup

    done = [r for r in rows if r.run_id is not None and r.energy_kwh is not None
            and r.finished_at is not None and r.started_at is not None]
    energy = store.device_energy(r.run_id for r in done if r.run_id is not None)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in done:
        assert r.run_id is not None and r.finished_at is not None and r.started_at is not None
        duration_s = max((r.finished_at - r.started_at).total_seconds(), 0.0)
        by_class = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
        for device, joules in energy.get(r.run_id, {}).items():
            by_class[device_class(device)] += joules
        kwh = {k: j / 3.6e6 for k, j in by_class.items()}
        power = {k: (j / duration_s if duration_s > 0 else 0.0) for k, j in by_class.items()}
        kg = (r.emissions_g or 0.0) / 1000.0
        country = lookup(r.zone)
        cells: dict[str, object] = {
            "timestamp": iso(r.finished_at), "project_name": r.name,
            "run_id": f"carbonshift-run-{r.run_id}", "experiment_id": f"carbonshift-job-{r.id}",
            "duration": duration_s, "emissions": kg,
            "emissions_rate": kg / duration_s if duration_s > 0 else 0.0,
            "cpu_power": power["cpu"], "gpu_power": power["gpu"], "ram_power": power["ram"],
            "cpu_energy": kwh["cpu"], "gpu_energy": kwh["gpu"], "ram_energy": kwh["ram"],
            "energy_consumed": r.energy_kwh,
            "country_name": country.country if country else "",
            "country_iso_code": country.iso3 if country else "",
            "region": r.zone, "gpu_count": r.gpus, "tracking_mode": "process", "on_cloud": "N",
            "pue": r.pue if r.pue is not None else 1.0,
        }
        w.writerow([_cell(cells.get(c, "")) for c in COLUMNS])
    return buf.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, float):
        return repr(value)  # full precision, never rounded to zero for tiny jobs
    return value
