"""Fitted weights of the local forecaster, kept on disk so every process reuses them.

The local forecaster (:mod:`intensity.forecast`) refits a zone's weights once per
:data:`~intensity.forecast.REFIT_DAYS`-day block, on the history before the block starts.
A fit is identified by a :class:`FitKey`: the zone, the resolution, the span it was fitted
on (its end and its length in days) and a fingerprint of the exact training values, so a
fit is reused only for the very data it was fitted on; a revised value anywhere in the span
gives another key and a new fit.

Each fit is one small JSON file in the folder the caller names (the app passes its data
directory's ``forecast-fits``), written atomically (a temporary file, then a rename), so
concurrent processes never read half a file; the last writer of the same key wins and
writes the same numbers. A file that cannot be read, is of another model version or holds
another key is ignored (the fit is redone); a folder that cannot be written only costs the
reuse. At most :data:`MAX_FILES_PER_ZONE` fits are kept per zone, the oldest written
removed first. Standard library only: no numpy, no scheduler.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

#: Fits kept per zone (a year of weekly refits, and a simulation's).
MAX_FILES_PER_ZONE = 64
_SUFFIX = ".fit.json"


@dataclass(frozen=True)
class FitKey:
    """What a fit was fitted on: ``zone`` at ``resolution_s``, the ``train_days`` days
    ending at ``fit_end_ts`` (UTC seconds), whose exact values digest to ``fingerprint``."""

    zone: str
    resolution_s: int
    fit_end_ts: float
    train_days: int
    fingerprint: str

    def as_json(self) -> dict[str, object]:
        return {"zone": self.zone, "resolution_s": self.resolution_s,
                "fit_end": datetime.fromtimestamp(self.fit_end_ts, UTC).isoformat(),
                "fit_end_ts": self.fit_end_ts, "train_days": self.train_days,
                "fingerprint": self.fingerprint}

    def filename(self) -> str:
        end = datetime.fromtimestamp(self.fit_end_ts, UTC).strftime("%Y%m%dT%H%M%SZ")
        return (f"{_safe(self.zone)}-{self.resolution_s}s-{end}-{self.train_days}d-"
                f"{self.fingerprint[:16]}{_SUFFIX}")


def _safe(zone: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", zone)


def load_fit(folder: str | os.PathLike[str], key: FitKey, version: str) -> list[list[float]] | None:
    """The weights stored for ``key`` by model ``version``, or ``None``."""
    path = Path(folder) / key.filename()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.debug("ignoring unreadable forecaster fit %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or data.get("version") != version or data.get("key") != key.as_json():
        return None
    weights = data.get("weights")
    if not (isinstance(weights, list) and all(isinstance(row, list) for row in weights)):
        return None
    try:
        return [[float(v) for v in row] for row in weights]
    except (TypeError, ValueError):
        return None


def save_fit(folder: str | os.PathLike[str], key: FitKey, version: str,
             weights: list[list[float]]) -> None:
    """Store ``weights`` for ``key``; failures are logged, never raised."""
    base = Path(folder)
    try:
        base.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"version": version, "key": key.as_json(), "weights": weights})
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".fit-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
            os.replace(tmp, base / key.filename())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _prune(base, key.zone)
    except OSError as exc:
        log.warning("could not keep the forecaster fit in %s: %s", base, exc)


def _prune(base: Path, zone: str) -> None:
    prefix = _safe(zone) + "-"
    mine = [p for p in base.iterdir() if p.name.startswith(prefix) and p.name.endswith(_SUFFIX)]
    if len(mine) <= MAX_FILES_PER_ZONE:
        return

    def age(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    for p in sorted(mine, key=age)[: len(mine) - MAX_FILES_PER_ZONE]:
        p.unlink(missing_ok=True)


__all__ = ["MAX_FILES_PER_ZONE", "FitKey", "load_fit", "save_fit"]
