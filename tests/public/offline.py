"""What the public-API tests share: an offline environment (static intensities, a config
and database in ``tmp_path``, this checkout on ``PYTHONPATH``) and the CLI as users run it,
``python -m carbonshift``, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def offline_env(tmp_path: Path, *, zone: str = "DE", sampling_s: float = 0.1,
                **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    config = tmp_path / "config.toml"
    config.write_text(f'default_zone = "{zone}"\ncpu_w_per_core = 10.0\nsampling_interval_s = {sampling_s}\n'
                      '[intensity]\nproviders = ["static"]\n')
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "xdg"),
               CARBONSHIFT_CONFIG=str(config), CARBONSHIFT_DB=str(tmp_path / "cs.db"), PYTHONPATH=str(REPO),
               **extra)
    return env


def cs(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m carbonshift ARGS`` in ``tmp_path`` (default: :func:`offline_env`)."""
    return subprocess.run([sys.executable, "-m", "carbonshift", *args], env=env or offline_env(tmp_path),
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=timeout)
