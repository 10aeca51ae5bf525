"""How carbonshift starts one of its own helper interpreters: the one rule.

A helper (the local supervisor, the measured wrapper, the Slurm wrapper) runs in the job's
folder and with the job's environment. Started as ``python -m scheduler.executors.X``, it
would put that folder (and the job's ``PYTHONPATH``) in front of its import path: a
``scheduler.py``, ``probes/``, ``intensity.py``, ``signal.py`` or ``json.py`` there (an LR
scheduler, a user's own probes...) would be imported instead of ours or the standard
library's, and the job would end ``lost`` unrun.

So a helper runs with ``-E -P``: ``PYTHON*`` variables (``PYTHONPATH`` included) are
ignored and neither the working folder nor a script's folder enters ``sys.path``. Our own
install location, computed from this file, is put first in ``sys.path`` explicitly; the
module then runs as ``__main__``. User site-packages stay on (unlike ``-I``), for an
install made with ``pip install --user``. The job itself is started by the helper with the
environment it was given, ``PYTHONPATH`` and working folder as the user set them.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: interpreter flags of every helper: ignore PYTHON* variables, no cwd/script dir in sys.path
ISOLATION_FLAGS = ("-E", "-P")


def install_root() -> str:
    """The folder holding carbonshift's packages (``scheduler``, ``probes``, ``intensity``)."""
    return str(Path(__file__).resolve().parents[2])


def helper_argv(
    module: str, *args: str, python: str | None = None, stdlib_only: bool = False
) -> list[str]:
    """The argv that runs ``python -m module args...`` isolated from the job's folder and
    ``PYTHONPATH``, importing our packages from :func:`install_root`.

    ``stdlib_only`` adds ``-S`` (no site-packages): for a helper that needs only the
    standard library and our own modules (the supervisor), it starts faster.
    """
    boot = (
        f"import sys; sys.path.insert(0, {install_root()!r}); import runpy; "
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    )
    flags = [*ISOLATION_FLAGS, "-S"] if stdlib_only else list(ISOLATION_FLAGS)
    return [python or sys.executable, *flags, "-c", boot, *args]


__all__ = ["ISOLATION_FLAGS", "helper_argv", "install_root"]
