"""Log a job's accounted figures to the MLflow run it belongs to (optional, ``mlflow`` extra).

A job belongs to an MLflow run when its environment (``submit --env``, or the submitter's
environment through the allow-list) carries ``MLFLOW_RUN_ID`` and ``MLFLOW_TRACKING_URI``.
Once its run is accounted the daemon logs ``carbonshift.energy_j``,
``carbonshift.emissions_g`` and ``carbonshift.saved_g`` (against run-now) to that run with
mlflow's client, imported only then. Credentials for the tracking server come from the
daemon's own environment (``MLFLOW_TRACKING_TOKEN``...; never from the job's, which is
stored), as does ``MLFLOW_ALLOW_FILE_STORE`` for a ``file://`` store. Logging runs in its
own (non-daemon) thread, so a slow tracking server never holds up the daemon and a daemon
that exits still finishes it; a failure is one warning line in the daemon's log, never a
failed job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

log = logging.getLogger("carbonshift.daemon")

RUN_ID_VAR = "MLFLOW_RUN_ID"
TRACKING_URI_VAR = "MLFLOW_TRACKING_URI"
#: what the job may carry from the submitter's environment (no credentials: job
#: environments are stored in the database)
ENV_VARS = (RUN_ID_VAR, TRACKING_URI_VAR, "MLFLOW_EXPERIMENT_ID")


def metric_names(energy_j: float, emissions_g: float, saved_g: float,
                 name: str | None = None) -> dict[str, float]:
    """The metrics carbonshift logs: ``carbonshift[.<name>].energy_j`` / ``.emissions_g`` /
    ``.saved_g``; ``name`` (a measured block's) made safe for an MLflow metric key."""
    prefix = "carbonshift"
    if name is not None:
        key = "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)[:200] or "block"
        prefix += f".{key}"
    return {f"{prefix}.energy_j": energy_j, f"{prefix}.emissions_g": emissions_g,
            f"{prefix}.saved_g": saved_g}


def log_job_metrics(env: Mapping[str, str], metrics: Mapping[str, float], *,
                    what: str) -> threading.Thread | None:
    """Log ``metrics`` to the MLflow run named in the job environment ``env``, in a thread
    (returned, ``None`` when ``env`` names no run); ``what`` names the job in a warning."""
    run_id, uri = env.get(RUN_ID_VAR, "").strip(), env.get(TRACKING_URI_VAR, "").strip()
    if not run_id or not uri:
        return None
    thread = threading.Thread(target=_log, args=(uri, run_id, dict(metrics), what),
                              name=f"carbonshift-mlflow-{run_id[:12]}")
    thread.start()
    return thread


def _log(uri: str, run_id: str, metrics: dict[str, float], what: str) -> None:
    try:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        at_ms = int(time.time() * 1000)
        MlflowClient(tracking_uri=uri).log_batch(
            run_id, metrics=[Metric(k, float(v), at_ms, 0) for k, v in metrics.items()])
    except ImportError:
        log.warning("%s: MLflow run %s not logged: mlflow is not installed "
                    "(pip install 'carbonshift[mlflow]')", what, run_id)
    except Exception as exc:  # a tracking server's failure never fails the job
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        log.warning("%s: MLflow run %s not logged: %s", what, run_id, text)
