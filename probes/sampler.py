"""Background sampling of one run: a reading at start, one every interval, one at exit.

The sampler owns a daemon thread per run. Timestamps come from ``now()`` (the scheduler's
clock, possibly accelerated); the sampling period is in real seconds. Probes are grouped
by role (``gpu``, ``cpu``, ``memory``): the first working probe of each role is used, the
others read on standby (cheap: they share one process-tree scan) and take over, with a
note, when it fails. A probe failure or a sink failure never reaches the job: samples the
sink refused are kept and offered again at the next flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from probes.base import EnergyProbe
from probes.model import ProbeTarget, Sample

log = logging.getLogger(__name__)

#: Pauses between the flush attempts at :meth:`Sampler.stop` (a locked database clears).
_STOP_RETRY_PAUSES_S = (0.1, 0.5)


class Sampler:
    """Measures one run with ``probes`` (default: :func:`probes.detect.default_probes`).

    ``sink`` receives the pending samples as one batch once ``batch_size`` are pending,
    at the first reading ``flush_interval_s`` real seconds (default: one ``interval_s``)
    or more after the last flush, and at :meth:`stop`. What the sink holds is thus at
    most ``flush_interval_s`` plus one interval behind: readers of the stored samples
    (``wait``, ``show``, the dashboard) see energy within two intervals of the start with
    the default. ``on_note`` is told each degradation as it happens; :attr:`notes` keeps
    them all.
    """

    def __init__(
        self,
        target: ProbeTarget,
        *,
        now: Callable[[], datetime],
        sink: Callable[[list[Sample]], None],
        interval_s: float = 5.0,
        probes: Sequence[EnergyProbe] | None = None,
        on_note: Callable[[str], None] | None = None,
        batch_size: int = 50,
        flush_interval_s: float | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.target = target
        self._now = now
        self._sink = sink
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.flush_interval_s = interval_s if flush_interval_s is None else flush_interval_s
        self._on_note = on_note
        if probes is None:
            from probes.detect import ProbeConfig, default_probes

            probes = default_probes(ProbeConfig())
        self._probes: list[EnergyProbe] = list(probes)
        self._live: list[EnergyProbe] = []
        self._pending: list[Sample] = []
        self._methods: list[str] = []
        self._notes: list[str] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time: a batch is delivered once
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopped = False
        self._last_flush_mono_s = time.monotonic()
        self._sink_failures = 0
        self.sampler_cpu_s = 0.0  # CPU time the sampling thread spent reading and flushing

    # -- public API -------------------------------------------------------------------------

    @property
    def methods(self) -> list[str]:
        """Methods whose samples were used, in order of first use."""
        with self._lock:
            return list(self._methods)

    @property
    def notes(self) -> list[str]:
        """Degradations: probes unavailable or dropped, the fallbacks used, sink failures."""
        with self._lock:
            return list(self._notes)

    @property
    def unflushed(self) -> list[Sample]:
        """Samples the sink has not accepted yet."""
        with self._lock:
            return list(self._pending)

    def start(self) -> None:
        """Take the baseline reading now, then read every ``interval_s`` real seconds."""
        if self._started:
            raise RuntimeError("sampler already started")
        self._started = True
        at = self._now()
        failed: list[tuple[EnergyProbe, BaseException]] = []
        for probe in self._probes:
            try:
                probe.begin(self.target, at)
            except Exception as err:
                failed.append((probe, err))
                self._close(probe)
                continue
            self._live.append(probe)
        for probe, error in failed:
            self._note(f"{probe.method} not available: {_why(error)}; {self._fallback(probe)}")
        self._collect_notes()
        self._thread = threading.Thread(
            target=self._run, name=f"carbonshift-sampler-{self.target.pid}", daemon=True
        )
        self._thread.start()

    def stop(self, *, final_cpu_s: float | None = None) -> None:
        """Take the last reading (at process exit) and flush everything to the sink.

        ``final_cpu_s`` is the reaped job's total CPU time from ``os.wait4`` rusage. A sink
        that fails is tried three times; what it still refuses stays in :attr:`unflushed`
        (with a note) for the caller to store some other way.
        """
        if not self._started or self._stopped:
            return
        self._stopped = True
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join()
        at = self._now()
        for probe in list(self._live):
            try:
                probe.observe_exit(cpu_s=final_cpu_s)
            except Exception as exc:  # an optional hook failing is no reason to drop the probe
                log.debug("observe_exit failed for %s: %s", probe.method, exc)
        self._read_all(at, final=True)
        for probe in self._live:
            self._close(probe)
        for pause_s in _STOP_RETRY_PAUSES_S:
            if self.flush():
                return
            time.sleep(pause_s)
        if not self.flush():
            self._note(
                f"sink still failing at stop: {len(self.unflushed)} samples left in Sampler.unflushed"
            )

    def flush(self) -> bool:
        """Offer the pending samples to the sink; ``True`` when none remain pending."""
        with self._flush_lock:
            with self._lock:
                batch = list(self._pending)
            if not batch:
                return True
            try:
                self._sink(batch)
            except Exception as exc:
                self._sink_failures += 1
                if self._sink_failures == 1 or self._sink_failures % 100 == 0:
                    self._note(
                        f"sink failed ({self._sink_failures}x), {len(batch)} samples kept for retry: {_why(exc)}"
                    )
                return False
            with self._lock:
                del self._pending[: len(batch)]
                self._last_flush_mono_s = time.monotonic()
                return not self._pending

    # -- internals --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            t0 = time.thread_time()
            try:
                self._read_all(self._now(), final=False)
                # readings come every interval: the one nearest the bound flushes (a wait
                # that wakes a hair early must not put the flush off by a whole interval)
                since_s = time.monotonic() - self._last_flush_mono_s
                due = since_s >= self.flush_interval_s - self.interval_s / 2
                if len(self._pending) >= self.batch_size or due:
                    self.flush()
            except Exception as exc:  # never let the thread die: the job must not notice
                log.exception("sampler tick failed")
                self._note(f"sampler tick failed: {_why(exc)}")
            self.sampler_cpu_s += time.thread_time() - t0

    def _read_all(self, at: datetime, *, final: bool) -> None:
        readings: list[tuple[EnergyProbe, list[Sample]]] = []
        for probe in list(self._live):
            try:
                samples = probe.end(at) if final else probe.read(at)
            except Exception as exc:
                self._live.remove(probe)
                self._close(probe)
                self._note(
                    f"{probe.method} failed mid-run and was dropped: {_why(exc)}; {self._fallback(probe)}"
                )
                continue
            readings.append((probe, samples))
        self._collect_notes()
        used = self._primaries()
        with self._lock:
            for probe, samples in readings:
                if probe not in used:
                    continue
                if samples and probe.method not in self._methods:
                    self._methods.append(str(probe.method))
                self._pending.extend(samples)

    def _primaries(self) -> set[EnergyProbe]:
        """The first live probe of each role; a probe is used if it is first for any role."""
        seen: set[str] = set()
        used: set[EnergyProbe] = set()
        for probe in self._live:
            fresh = set(probe.roles) - seen
            if fresh:
                used.add(probe)
                seen |= fresh
        return used

    def _fallback(self, lost: EnergyProbe) -> str:
        """What now measures each role ``lost`` covered, in words."""
        primaries = self._primaries()
        parts = []
        for role in sorted(lost.roles):
            repl = next((p for p in self._live if role in p.roles and p in primaries), None)
            parts.append(f"{role}: fell back to {repl.method}" if repl else f"{role}: not measured")
        return ", ".join(parts)

    def _collect_notes(self) -> None:
        for probe in self._live:
            try:
                for note in probe.drain_notes():
                    self._note(note)
            except Exception:
                pass

    def _note(self, note: str) -> None:
        with self._lock:
            if note in self._notes:
                return
            self._notes.append(note)
        log.info("probe note (pid %s): %s", self.target.pid, note)
        if self._on_note is not None:
            try:
                self._on_note(note)
            except Exception:
                log.debug("on_note callback failed", exc_info=True)

    @staticmethod
    def _close(probe: EnergyProbe) -> None:
        try:
            probe.close()
        except Exception:
            log.debug("closing probe %s failed", probe.method, exc_info=True)


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__
