"""GPU energy through NVML: the only module that imports ``pynvml``.

For each GPU the scheduler gave the job (``target.gpu_indices``), energy is the delta of
``nvmlDeviceGetTotalEnergyConsumption`` (millijoules, Volta and newer): method
``nvml_energy_counter``. Where the counter is not supported, ``nvmlDeviceGetPowerUsage``
(milliwatts) is sampled every ``power_period_s`` (0.5 s) and at each reading, and
integrated by the trapezoidal rule over real seconds: method ``nvml_power_integration``,
a coarser figure (the driver's power reading is itself averaged), flagged by its method.

Attribution, flagged ``estimated`` with the basis in the note:

- a GPU running processes other than the job's is *shared*: the job gets its share of
  the SM utilisation of the GPU's processes (``nvmlDeviceGetProcessUtilization``), else of
  their GPU memory, else an equal split. Where none of the GPU's processes is visible in
  our PID namespace (a container), the GPU is attributed whole, and the note says so;
- a GPU in MIG mode has one energy counter, on the parent: the job gets the parent's
  energy x the memory share of the MIG instances running its processes (1/N of the
  instances where its processes cannot be seen).

NVML errors become :mod:`probes.errors` exceptions here: no driver or library ->
``ProbeUnavailable``; a GPU lost -> ``DeviceLost`` (that GPU is dropped with a note, the
others go on). A fake ``pynvml``-like module can be passed as ``nvml`` (the tests do).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psutil

from probes.base import EnergyProbe
from probes.energy import counter_delta, trapezoid_energy_j
from probes.errors import DeviceLost, ProbeError, ProbeUnavailable
from probes.model import Method, ProbeTarget, Sample
from probes.process import ProcessTree

# NVML return codes (nvml.h), used where the module does not define them.
_CODES = {
    "NVML_ERROR_UNINITIALIZED": 1,
    "NVML_ERROR_INVALID_ARGUMENT": 2,
    "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_ERROR_NO_PERMISSION": 4,
    "NVML_ERROR_NOT_FOUND": 6,
    "NVML_ERROR_DRIVER_NOT_LOADED": 9,
    "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
    "NVML_ERROR_FUNCTION_NOT_FOUND": 13,
    "NVML_ERROR_GPU_IS_LOST": 15,
}


class NotSupported(ProbeError):
    """The GPU does not support this NVML query (``NVML_ERROR_NOT_SUPPORTED``)."""


def _code(nv: Any, name: str) -> int:
    return int(getattr(nv, name, _CODES[name]))


def load_nvml() -> Any:
    """The real ``pynvml`` module; :class:`ProbeUnavailable` if nvidia-ml-py is missing."""
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ProbeUnavailable("nvidia-ml-py (pynvml) is not installed") from exc
    return pynvml


def map_error(nv: Any, exc: BaseException, what: str) -> ProbeError:
    """Our exception for an NVML error raised while doing ``what``."""
    code = getattr(exc, "value", None)
    text = f"{what}: {exc}"
    if code == _code(nv, "NVML_ERROR_NOT_SUPPORTED"):
        return NotSupported(text)
    if code in (_code(nv, "NVML_ERROR_GPU_IS_LOST"),):
        return DeviceLost(text)
    if code in (
        _code(nv, "NVML_ERROR_LIBRARY_NOT_FOUND"),
        _code(nv, "NVML_ERROR_DRIVER_NOT_LOADED"),
        _code(nv, "NVML_ERROR_NO_PERMISSION"),
        _code(nv, "NVML_ERROR_UNINITIALIZED"),
        _code(nv, "NVML_ERROR_FUNCTION_NOT_FOUND"),
    ):
        return ProbeUnavailable(text)
    return ProbeError(text)


def _call(nv: Any, fn: str, *args: Any) -> Any:
    try:
        return getattr(nv, fn)(*args)
    except nv.NVMLError as exc:
        raise map_error(nv, exc, fn) from exc


@dataclass
class _Gpu:
    index: int
    handle: Any
    counter: bool
    mig: bool
    prev_mj: float = 0.0
    prev_power_w: float = 0.0
    prev_mono_s: float = 0.0
    last_util_ts: int = 0
    notes: list[str] = field(default_factory=list)
    #: power samples ``(monotonic_s, power_w)`` taken between readings (power integration)
    points: list[tuple[float, float]] = field(default_factory=list)


class NvmlProbe(EnergyProbe):
    """Energy of the job's GPUs (devices ``gpu:N``); see the module docstring.

    ``use_counter=False`` forces power integration (to compare both methods on one GPU).
    Where a GPU is power-integrated, a small daemon thread samples its power every
    ``power_period_s`` real seconds between readings (``None``: only at readings), so the
    trapezoids are short whatever the sampler's interval.
    """

    method = Method.NVML_ENERGY_COUNTER
    roles = frozenset({"gpu"})

    def __init__(
        self,
        *,
        tree: ProcessTree | None = None,
        nvml: Any | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        use_counter: bool = True,
        power_period_s: float | None = 0.5,
    ) -> None:
        self.tree = tree
        self.use_counter = use_counter
        self.power_period_s = power_period_s
        self._power_lock = threading.Lock()
        self._power_stop = threading.Event()
        self._power_thread: threading.Thread | None = None
        self._nv = nvml
        self._monotonic = monotonic
        self._gpus: list[_Gpu] = []
        self._initialised = False
        self._prev_at: datetime | None = None
        self._notes: list[str] = []

    # -- EnergyProbe ------------------------------------------------------------------------

    def begin(self, target: ProbeTarget, now: datetime) -> None:
        self._prev_at = now
        if not target.gpu_indices:
            return  # nothing assigned: nothing to measure, and no reason to load NVML
        nv = self._nv if self._nv is not None else load_nvml()
        self._nv = nv
        try:
            _call(nv, "nvmlInit")
        except NotSupported as exc:
            raise ProbeUnavailable(str(exc)) from exc
        self._initialised = True
        if self.tree is not None:
            self.tree.attach(target, key=now)
        for index in target.gpu_indices:
            self._gpus.append(self._open(index))
        if all(not g.counter for g in self._gpus):
            self.method = Method.NVML_POWER_INTEGRATION
        if self.power_period_s and any(not g.counter for g in self._gpus):
            self._power_thread = threading.Thread(
                target=self._power_loop, name="carbonshift-nvml-power", daemon=True
            )
            self._power_thread.start()
        for g in self._gpus:
            if not g.counter and self.use_counter:
                every = (
                    f"every {self.power_period_s:g} s"
                    if self.power_period_s
                    else "at every reading"
                )
                self._notes.append(
                    f"gpu:{g.index}: energy counter not supported; power integration of samples {every}"
                )

    def read(self, now: datetime) -> list[Sample]:
        if self._prev_at is None:
            raise ProbeError("NVML probe read before begin")
        start, self._prev_at = self._prev_at, now
        if not self._gpus:
            if self._initialised:
                raise DeviceLost("every GPU of the job was lost")
            return []
        pids = (
            self.tree.read(key=now).pids
            if self.tree is not None and self.tree.attached
            else frozenset()
        )
        samples: list[Sample] = []
        for gpu in list(self._gpus):
            try:
                energy_j = self._energy_j(gpu)
                share, basis = self._share(gpu, pids)
            except DeviceLost as exc:
                self._gpus.remove(gpu)
                self._notes.append(f"gpu:{gpu.index} lost mid-run, no longer measured: {exc}")
                continue
            method = Method.NVML_ENERGY_COUNTER if gpu.counter else Method.NVML_POWER_INTEGRATION
            estimated = share < 0.999 or bool(basis)
            samples.append(
                Sample(start, now, f"gpu:{gpu.index}", energy_j * share, method, estimated, basis)
            )
        if not self._gpus:
            raise DeviceLost("every GPU of the job was lost")
        return samples

    def drain_notes(self) -> list[str]:
        notes, self._notes = self._notes, []
        return notes

    def poll_power(self) -> None:
        """Take one power sample of each power-integrated GPU (the power thread's tick)."""
        for gpu in list(self._gpus):
            if gpu.counter:
                continue
            try:
                power_w = float(_call(self._nv, "nvmlDeviceGetPowerUsage", gpu.handle)) / 1000.0
            except ProbeError:
                continue  # the next reading reports a lost GPU
            with self._power_lock:
                gpu.points.append((self._monotonic(), power_w))

    def _power_loop(self) -> None:
        assert self.power_period_s
        while not self._power_stop.wait(self.power_period_s):
            self.poll_power()

    def close(self) -> None:
        self._power_stop.set()
        if self._power_thread is not None:
            self._power_thread.join(timeout=5)
            self._power_thread = None
        if self._initialised and self._nv is not None:
            self._initialised = False
            try:
                self._nv.nvmlShutdown()
            except Exception:
                pass

    # -- internals --------------------------------------------------------------------------

    def _open(self, index: int) -> _Gpu:
        nv = self._nv
        try:
            handle = _call(nv, "nvmlDeviceGetHandleByIndex", index)
        except ProbeError as exc:
            raise ProbeUnavailable(f"gpu:{index} cannot be opened: {exc}") from exc
        mig = False
        try:
            current, _pending = _call(nv, "nvmlDeviceGetMigMode", handle)
            mig = current == getattr(nv, "NVML_DEVICE_MIG_ENABLE", 1)
        except ProbeError:  # not supported (no MIG on this GPU), or not answerable: plain GPU
            mig = False
        gpu = _Gpu(index, handle, counter=self.use_counter, mig=mig, prev_mono_s=self._monotonic())
        try:
            if gpu.counter:
                gpu.prev_mj = float(_call(nv, "nvmlDeviceGetTotalEnergyConsumption", handle))
        except NotSupported:
            gpu.counter = False
        if not gpu.counter:
            gpu.prev_power_w = float(_call(nv, "nvmlDeviceGetPowerUsage", handle)) / 1000.0
        return gpu

    def _energy_j(self, gpu: _Gpu) -> float:
        nv = self._nv
        mono_s = self._monotonic()
        if gpu.counter:
            mj = float(_call(nv, "nvmlDeviceGetTotalEnergyConsumption", gpu.handle))
            energy_j = counter_delta(gpu.prev_mj, mj) / 1000.0
            gpu.prev_mj = mj
        else:
            power_w = float(_call(nv, "nvmlDeviceGetPowerUsage", gpu.handle)) / 1000.0
            with self._power_lock:
                between = [p for p in gpu.points if gpu.prev_mono_s < p[0] < mono_s]
                gpu.points = [p for p in gpu.points if p[0] >= mono_s]  # for the next interval
            points = [(gpu.prev_mono_s, gpu.prev_power_w), *sorted(between), (mono_s, power_w)]
            energy_j = trapezoid_energy_j(points)
            gpu.prev_power_w = power_w
        gpu.prev_mono_s = mono_s
        return energy_j

    def _processes(self, handle: Any) -> list[Any]:
        try:
            return list(_call(self._nv, "nvmlDeviceGetComputeRunningProcesses", handle))
        except DeviceLost:
            raise
        except ProbeError:
            return []

    def _share(self, gpu: _Gpu, job_pids: frozenset[int]) -> tuple[float, str]:
        """The job's share of the GPU's energy, and its basis ("" when it is the whole)."""
        if gpu.mig:
            return self._mig_share(gpu, job_pids)
        procs = self._processes(gpu.handle)
        others = [p for p in procs if p.pid not in job_pids]
        if not others or not job_pids:
            return 1.0, ""
        mine = [p for p in procs if p.pid in job_pids]
        if not mine:
            if not any(psutil.pid_exists(p.pid) for p in others):
                return 1.0, (
                    f"gpu:{gpu.index} runs {len(others)} process(es) not visible here (another PID namespace?); "
                    "attributed whole"
                )
            return (
                0.0,
                f"shared gpu:{gpu.index}: none of its {len(others)} process(es) is the job's; share 0",
            )
        share, basis = self._util_share(gpu, job_pids)
        if basis == "":
            weights = {p.pid: float(getattr(p, "usedGpuMemory", 0) or 0) for p in procs}
            total = sum(weights.values())
            if total > 0:
                share = sum(w for pid, w in weights.items() if pid in job_pids) / total
                basis = "GPU memory"
            else:
                share, basis = len(mine) / len(procs), "process count"
        return (
            share,
            f"shared gpu:{gpu.index} with {len(others)} other process(es); job share {share:.3f} by {basis}",
        )

    def _util_share(self, gpu: _Gpu, job_pids: frozenset[int]) -> tuple[float, str]:
        try:
            samples = _call(
                self._nv, "nvmlDeviceGetProcessUtilization", gpu.handle, gpu.last_util_ts
            )
        except DeviceLost:
            raise
        except ProbeError:
            return 0.0, ""
        total = mine = 0.0
        for s in samples or []:
            gpu.last_util_ts = max(gpu.last_util_ts, int(getattr(s, "timeStamp", 0)))
            sm = float(getattr(s, "smUtil", 0) or 0)
            total += sm
            if s.pid in job_pids:
                mine += sm
        if total <= 0:
            return 0.0, ""
        return mine / total, "SM utilisation"

    def _mig_share(self, gpu: _Gpu, job_pids: frozenset[int]) -> tuple[float, str]:
        nv = self._nv
        try:
            count = int(_call(nv, "nvmlDeviceGetMaxMigDeviceCount", gpu.handle))
            parent_b = float(_call(nv, "nvmlDeviceGetMemoryInfo", gpu.handle).total)
        except DeviceLost:
            raise
        except ProbeError as exc:
            return (
                1.0,
                f"MIG on gpu:{gpu.index}: instances unreadable ({exc}); parent attributed whole",
            )
        instances: list[tuple[float, bool]] = []
        for i in range(count):
            try:
                mig = _call(nv, "nvmlDeviceGetMigDeviceHandleByIndex", gpu.handle, i)
                mem_b = float(_call(nv, "nvmlDeviceGetMemoryInfo", mig).total)
            except DeviceLost:
                raise
            except ProbeError:
                continue
            has_job = any(p.pid in job_pids for p in self._processes(mig))
            instances.append((mem_b, has_job))
        if not instances:
            return 1.0, f"MIG on gpu:{gpu.index}: no instances found; parent attributed whole"
        job_b = sum(m for m, has in instances if has)
        if job_b > 0 and parent_b > 0:
            s = min(1.0, job_b / parent_b)
            return s, (
                f"MIG on gpu:{gpu.index}: parent energy x share {s:.3f} "
                f"(instance memory {job_b / 2**30:.1f} of {parent_b / 2**30:.1f} GiB)"
            )
        s = 1.0 / len(instances)
        return (
            s,
            f"MIG on gpu:{gpu.index}: job's instance not identified; 1/{len(instances)} of the parent",
        )


def nvml_status(nvml: Any | None = None) -> list[tuple[str, bool, str, str]]:
    """``(method, available, reason, fix)`` rows for ``carbonshift probes``."""
    counter, power = str(Method.NVML_ENERGY_COUNTER), str(Method.NVML_POWER_INTEGRATION)
    try:
        nv = nvml if nvml is not None else load_nvml()
    except ProbeUnavailable as exc:
        return [(counter, False, str(exc), "pip install nvidia-ml-py")]
    try:
        _call(nv, "nvmlInit")
    except ProbeError as exc:
        code = getattr(exc.__cause__, "value", None)
        if code == _code(nv, "NVML_ERROR_LIBRARY_NOT_FOUND"):
            return [
                (
                    counter,
                    False,
                    "no NVIDIA driver: libnvidia-ml.so.1 not found",
                    "install the NVIDIA driver",
                )
            ]
        if code == _code(nv, "NVML_ERROR_DRIVER_NOT_LOADED"):
            return [
                (
                    counter,
                    False,
                    "NVIDIA driver not loaded",
                    "load the nvidia kernel module (modprobe nvidia)",
                )
            ]
        if code == _code(nv, "NVML_ERROR_NO_PERMISSION"):
            return [
                (
                    counter,
                    False,
                    "no permission to use NVML",
                    "give the user read/write access to /dev/nvidia*",
                )
            ]
        return [(counter, False, f"NVML init failed: {exc}", "")]
    try:
        n = int(_call(nv, "nvmlDeviceGetCount"))
        if n == 0:
            return [(counter, False, "NVML works but sees no GPU", "")]
        with_counter, without = [], []
        for i in range(n):
            handle = _call(nv, "nvmlDeviceGetHandleByIndex", i)
            try:
                _call(nv, "nvmlDeviceGetTotalEnergyConsumption", handle)
                with_counter.append(i)
            except NotSupported:
                without.append(i)
        rows = []
        if with_counter:
            rows.append(
                (counter, True, f"energy counter on gpu {', '.join(map(str, with_counter))}", "")
            )
        if without:
            rows.append(
                (
                    counter,
                    False,
                    f"gpu {', '.join(map(str, without))}: energy counter not supported (pre-Volta)",
                    "",
                )
            )
            rows.append(
                (power, True, f"power integration on gpu {', '.join(map(str, without))}", "")
            )
        return rows
    except ProbeError as exc:
        return [(counter, False, f"NVML query failed: {exc}", "")]
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:
            pass
