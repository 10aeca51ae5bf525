"""carbonshift's scheduler: queue, policies, planner, dispatch, storage, CLI.

``from scheduler import Client`` gives the Python API (:mod:`scheduler.api`); it is
imported on first use so that the command line starts fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from scheduler.api import Client

        return Client
    raise AttributeError(f"module 'scheduler' has no attribute {name!r}")
