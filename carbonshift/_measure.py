"""``carbonshift.measure``: measure a block of Python code with the probes of a job.

::

    with carbonshift.measure(name="eval", zone="GB") as m:
        evaluate(model)
    print(m.energy_j, m.emissions_g, m.intensity_kind, m.intensity_provider)

    @carbonshift.measure(name="train-step")
    def step(batch): ...

The block is measured in this process by the same sampler and probes as a scheduled job
(this process's CPU time, its children, the GPUs in ``gpus`` or ``CUDA_VISIBLE_DEVICES``),
accounted at the zone's intensity (actual where the provider has it, else its forecast,
named), and recorded in ``carbonshift history`` as an unscheduled run under ``name``.

- Inside an active MLflow run (``mlflow`` imported, ``mlflow.start_run()``) the block's
  energy, emissions and saved grams are logged as metrics ``carbonshift.<name>.*``.
- An exception inside the block is recorded (the run fails with the exception's type) and
  re-raised; ``sys.exit()`` inside it records the exit code.
- A process that ends inside the block (an uncaught exit in another thread, the end of the
  script) still records the block at interpreter exit. Only ``os._exit`` and SIGKILL lose it.
- Nested and concurrent blocks are each measured on their own; they share this process, so
  each one's CPU figure counts all of the process's threads during its span (say so when
  you add them up).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from probes.model import Sample
    from probes.sampler import Sampler
    from scheduler.api import Client
    from scheduler.domain.model import Job


@dataclass
class Measurement:
    """What one measured block used and emitted (filled in when the block ends)."""

    name: str
    zone: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float = 0.0
    #: total energy in joules, and per device and probe method (``estimated`` says which
    #: rows are estimates, e.g. CPU time x power per core)
    energy_j: float = 0.0
    devices: list[dict[str, Any]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    emissions_g: float = 0.0
    #: ``actual`` or ``forecast`` (or a mix), and the provider the intensity came from
    intensity_kind: str = ""
    intensity_provider: str = ""
    exit_code: int | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    #: the job id in history (``None`` with ``record=False``)
    job_id: int | None = None

    @property
    def energy_by_device_j(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for row in self.devices:
            out[row["device"]] = out.get(row["device"], 0.0) + row["energy_j"]
        return out


class measure(contextlib.ContextDecorator):
    """Measure a block (``with``) or every call of a function (decorator).

    ``name`` labels the run in history (default: the decorated function's name, else
    ``measure``); ``zone`` the grid zone for emissions (default: the local site's zone);
    ``gpus`` the GPU indices the block uses (default: ``CUDA_VISIBLE_DEVICES``);
    ``interval_s`` the sampling interval (default: the config's); ``record=False`` measures
    without writing to history; ``db`` / ``client`` choose the database (default: the
    CLI's).
    """

    def __init__(self, name: str | None = None, *, zone: str | None = None,
                 gpus: Sequence[int] | None = None, interval_s: float | None = None,
                 record: bool = True, db: str | None = None, client: Client | None = None) -> None:
        self._name = name
        self._zone = zone
        self._gpus = tuple(gpus) if gpus is not None else None
        self._interval_s = interval_s
        self._record = record
        self._db = db
        self._client = client
        self._active: _Block | None = None

    def __call__(self, func: Any) -> Any:
        if self._name is None:
            self._name = getattr(func, "__name__", None)
        return super().__call__(func)

    def _recreate_cm(self) -> measure:
        # a decorated function may run nested or in several threads at once: one block each
        return measure(self._name, zone=self._zone, gpus=self._gpus, interval_s=self._interval_s,
                       record=self._record, db=self._db, client=self._client)

    def __enter__(self) -> Measurement:
        if self._active is not None:
            raise RuntimeError("this measure() block is already running; create one per block")
        self._active = _Block(self)
        return self._active.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        block, self._active = self._active, None
        if block is not None:
            block.end(exc)
        return False  # never swallow the block's exception


class _Block:
    """One running measured block: its sampler, its job, its at-exit guard."""

    def __init__(self, spec: measure) -> None:
        self.spec = spec
        self.result = Measurement(name=spec._name or "measure")
        self.samples: list[Sample] = []
        self.sampler: Sampler | None = None
        self.job: Job | None = None
        self._own_client = False
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._done = False

    def start(self) -> Measurement:
        from probes.detect import default_probes
        from probes.model import ProbeTarget
        from probes.sampler import Sampler
        from scheduler import measuring
        from scheduler.api import Client
        from scheduler.errors import BadInput
        from scheduler.measuring import check_gpu_indices
        from scheduler.measuring import parse_gpu_indices as parse_gpus

        spec = self.spec
        if spec._client is None:
            self._client, self._own_client = Client(spec._db), True
        else:
            self._client = spec._client
        app = self._client.app
        environ = dict(os.environ)
        # typed indices keep the CLI's rule without being written out as --gpus text
        gpu_indices = (check_gpu_indices(spec._gpus) if spec._gpus is not None
                       else parse_gpus(None, environ))
        interval = app.settings.sampling_interval_s if spec._interval_s is None else spec._interval_s
        if not interval > 0:
            raise BadInput(f"interval_s {spec._interval_s!r} must be a positive number of seconds")
        argv = [sys.executable or "python", f"<carbonshift.measure {self.result.name}>"]
        self.job = measuring.begin(app, argv=argv, zone=spec._zone, cwd=os.getcwd(),
                                   environ=environ, gpus=len(gpu_indices), at=app.clock.now(),
                                   name=self.result.name)
        self.result.zone = self.job.zone
        self.result.started_at = app.clock.now()
        self.sampler = Sampler(
            ProbeTarget(pid=os.getpid(), gpu_indices=gpu_indices), now=app.clock.now,
            sink=self.samples.extend, interval_s=interval,
            probes=default_probes(measuring.probe_config(app.settings)),
        )
        self.sampler.start()
        atexit.register(self._at_exit)
        return self.result

    def _at_exit(self) -> None:
        self.end(None, reason="the process exited inside the measured block")

    def end(self, exc: BaseException | None, *, reason: str = "") -> None:
        from scheduler import measuring
        from scheduler.measuring import by_device

        with self._lock:
            if self._done:
                return
            self._done = True
        atexit.unregister(self._at_exit)
        assert self.sampler is not None and self.job is not None and self._client is not None
        app = self._client.app
        try:
            self.sampler.stop()
            finished_at = app.clock.now()
            code = 0
            if isinstance(exc, SystemExit):
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            elif exc is not None:
                code = 1
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                self.result.error = reason
            started = self.result.started_at
            assert started is not None
            recorded = measuring.finish(
                app, self.job, samples=self.samples, sampler=self.sampler, started_at=started,
                finished_at=finished_at, exit_code=code, handle=f"pid {os.getpid()} (in-process)",
                reason=reason, record=self.spec._record,
                note=f"block measured in-process by carbonshift.measure({self.result.name!r})",
            )
            acct = recorded.accounting
            r = self.result
            r.finished_at, r.exit_code, r.job_id = finished_at, code, recorded.job_id
            r.duration_s = (finished_at - started).total_seconds()
            r.energy_j, r.emissions_g = acct.energy_j, acct.emissions_g
            r.intensity_kind, r.intensity_provider = acct.intensity_kind, acct.intensity_provider
            r.devices, r.methods = by_device(self.samples), list(self.sampler.methods)
            r.notes = list(self.sampler.notes)
            _log_to_mlflow(r)
        finally:
            if self._own_client:
                self._client.close()


def _log_to_mlflow(r: Measurement) -> None:
    """Inside an active MLflow run (of a process that imported mlflow), log the block's
    figures as metrics ``carbonshift.<name>.energy_j`` / ``.emissions_g`` / ``.saved_g``."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return
    try:
        if mlflow.active_run() is None:
            return
        from scheduler.mlflow_log import metric_names

        # an unscheduled block runs at once: its run-now counterfactual is itself
        mlflow.log_metrics(metric_names(r.energy_j, r.emissions_g, 0.0, name=r.name))
    except Exception as exc:  # a tracking server's failure never fails the user's code
        r.notes.append(f"MLflow: could not log metrics: {exc}")
