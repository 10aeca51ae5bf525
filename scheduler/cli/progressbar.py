"""A progress bar for long commands (``simulate``, ``report`` over a long span, ``db upgrade``).

Drawn on standard error only when it is a terminal and the command is not writing JSON, so
pipes, files, CI logs and ``--json`` output never see it. At most ten redraws a second;
cleared when the work ends, so the command's own output starts on a clean line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Protocol

#: shortest time between two redraws, s
_REDRAW_S = 0.1


class Report(Protocol):
    def __call__(self, done: float, total: float, what: str = "") -> None: ...


def wanted(as_json: bool, stream: IO[str] | None = None) -> bool:
    """Whether to draw: standard error is a terminal, no JSON, and ``TERM`` is not dumb."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and not as_json and os.environ.get("TERM", "") != "dumb"


class Bar:
    """``label [#########.........]  45%  what  0:12 left``, redrawn in place."""

    def __init__(self, label: str, stream: IO[str], width: int = 28) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.t0 = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: float, total: float, what: str = "") -> None:
        now = time.monotonic()
        if now - self.last < _REDRAW_S and done < total:
            return
        self.last = now
        frac = 0.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
        fill = round(frac * self.width)
        left = ""
        elapsed = now - self.t0
        if 0.02 < frac < 1.0 and elapsed > 1.0:
            rest = int(elapsed * (1.0 - frac) / frac)
            left = f"  {rest // 60}:{rest % 60:02d} left"
        line = f"{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {100 * frac:3.0f}%"
        if what:
            line += f"  {what}"
        line += left
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


def _quiet(done: float, total: float, what: str = "") -> None:
    return None


@contextmanager
def progress(label: str, *, as_json: bool = False, stream: IO[str] | None = None) -> Iterator[Report]:
    """A callable ``report(done, total, what)`` that draws a bar when :func:`wanted`, else
    does nothing; the bar is cleared on leaving the block (also on an error)."""
    stream = stream or sys.stderr
    if not wanted(as_json, stream):
        yield _quiet
        return
    bar = Bar(label, stream)
    try:
        yield bar
    finally:
        bar.clear()
