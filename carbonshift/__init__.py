"""carbonshift: carbon-aware scheduling and measurement of machine-learning training jobs.

This is the one public import::

    import carbonshift

    with carbonshift.Client() as cs:          # the CLI's database, config and environment
        job = cs.submit("python train.py", duration="2h", deadline="12h")
        code = cs.wait(job.id)

``python -m carbonshift`` is the command line. The names below are imported on first use, so
``import carbonshift`` costs no more than the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

__all__ = [
    "AcceleratedClock", "BadInput", "CarbonshiftError", "Client", "JobDetails", "Measurement",
    "WaitTimeout", "__version__", "best_window", "main", "measure", "wait_for_window",
]

if TYPE_CHECKING:
    from carbonshift._measure import Measurement, measure
    from carbonshift._window import best_window, wait_for_window
    from scheduler.api import Client, JobDetails, WaitTimeout
    from scheduler.cli import main
    from scheduler.clock import AcceleratedClock
    from scheduler.errors import BadInput, CarbonshiftError

# public name -> module that defines it
_LAZY = {
    "Client": "scheduler.api",
    "JobDetails": "scheduler.api",
    "WaitTimeout": "scheduler.api",
    "CarbonshiftError": "scheduler.errors",
    "BadInput": "scheduler.errors",
    "main": "scheduler.cli",
    # a clock faster than real time, for ``Client(clock=...)`` in demos and tests
    "AcceleratedClock": "scheduler.clock",
    "measure": "carbonshift._measure",
    "Measurement": "carbonshift._measure",
    "best_window": "carbonshift._window",
    "wait_for_window": "carbonshift._window",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'carbonshift' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
