"""What the training callbacks share, whatever the library.

Inside a carbonshift job (``CARBONSHIFT_PROGRESS_FILE`` is set) a callback reports progress
to that file (at most once a second, and at the end) and listens for the pause signal of a
checkpointing job (``CARBONSHIFT_PAUSE_SIGNAL``, else SIGUSR1): the training loop then saves
a checkpoint and stops cleanly, and carbonshift relaunches the same command later to resume.
Outside carbonshift it measures the training like :func:`carbonshift.measure` instead (the
job's own measurement covers it inside).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

PROGRESS_ENV = "CARBONSHIFT_PROGRESS_FILE"
PAUSE_SIGNAL_ENV = "CARBONSHIFT_PAUSE_SIGNAL"


def pause_signal_from(environ: Mapping[str, str]) -> signal.Signals:
    """The checkpoint signal carbonshift sends this job (SIGUSR1 unless told otherwise)."""
    name = environ.get(PAUSE_SIGNAL_ENV, "SIGUSR1").strip().upper() or "SIGUSR1"
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        return signal.SIGUSR1


class TrainingSession:
    """One training run seen by a callback: progress, pause, measurement."""

    def __init__(self, *, name: str | None, zone: str | None, measure: bool,
                 pause_signal: int | None, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.in_job = bool(env.get(PROGRESS_ENV))
        self.progress_path = env.get(PROGRESS_ENV) or None
        self.name = name
        self.zone = zone
        self.measure_outside = measure
        self.pause_signal = signal.Signals(pause_signal) if pause_signal else pause_signal_from(env)
        self._pause = threading.Event()
        self._previous: Any = None
        self._installed = False
        self._block: Any = None
        self.measurement: Any = None
        self._last_write = 0.0

    @property
    def pause_requested(self) -> bool:
        return self._pause.is_set()

    def begin(self, default_name: str) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self.pause_signal, self._on_signal)
            self._installed = True
        if not self.in_job and self.measure_outside and self._block is None:
            from carbonshift._measure import measure

            self._block = measure(self.name or default_name, zone=self.zone)
            self.measurement = self._block.__enter__()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._pause.set()

    def progress(self, done: float, total: float, unit: str, *, force: bool = False) -> None:
        if not self.progress_path or total <= 0:
            return
        now = time.monotonic()
        if not force and now - self._last_write < 1.0:
            return
        self._last_write = now
        from scheduler.progress import write_progress

        write_progress(done, total, unit=unit, path=self.progress_path)

    def end(self, exc: BaseException | None = None) -> None:
        if self._installed:
            signal.signal(self.pause_signal, self._previous)
            self._installed = False
        block, self._block = self._block, None
        if block is not None:
            block.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)


class SessionCallback:
    """What both callbacks expose: :attr:`measurement` and :attr:`paused`."""

    session: TrainingSession

    def _start_session(self, name: str | None, zone: str | None, measure: bool,
                       pause_signal: int | None) -> None:
        self.session = TrainingSession(name=name, zone=zone, measure=measure,
                                       pause_signal=pause_signal)

    @property
    def measurement(self) -> Any:
        """The :class:`carbonshift.Measurement` of the training (outside carbonshift)."""
        return self.session.measurement

    @property
    def paused(self) -> bool:
        """Whether training stopped for carbonshift's pause signal."""
        return self.session.pause_requested
