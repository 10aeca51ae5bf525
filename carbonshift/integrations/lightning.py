"""carbonshift for PyTorch Lightning.

::

    from carbonshift.integrations.lightning import CarbonshiftCallback

    cb = CarbonshiftCallback(name="resnet")
    trainer = lightning.pytorch.Trainer(max_steps=1000, callbacks=[cb])
    trainer.fit(model, loader, ckpt_path=cb.resume_path(trainer))

As a carbonshift job it reports optimizer steps done of the run's total through
``CARBONSHIFT_PROGRESS_FILE`` and, on a checkpointing job's pause signal, saves a checkpoint
(``checkpoint_path``, default ``<default_root_dir>/carbonshift-pause.ckpt``) and stops the
fit cleanly; the relaunched command resumes from it. Outside carbonshift it measures the
fit like :func:`carbonshift.measure`; an exception in the fit is recorded and re-raised.
"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl

from carbonshift.integrations._session import SessionCallback


class CarbonshiftCallback(SessionCallback, pl.Callback):
    """Progress, pause-to-checkpoint and measurement for a Lightning ``Trainer``."""

    def __init__(self, name: str | None = None, *, zone: str | None = None, measure: bool = True,
                 pause_signal: int | None = None, checkpoint_path: str | None = None) -> None:
        self._start_session(name, zone, measure, pause_signal)
        self.checkpoint_path = checkpoint_path

    def _path(self, trainer: Any) -> str:
        return self.checkpoint_path or os.path.join(str(trainer.default_root_dir),
                                                    "carbonshift-pause.ckpt")

    def resume_path(self, trainer: Any) -> str | None:
        """The pause checkpoint to give ``fit(ckpt_path=...)``, if a paused run left one."""
        path = self._path(trainer)
        return path if os.path.exists(path) else None

    @staticmethod
    def _total(trainer: Any) -> float:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else 0
        if not total:
            try:
                total = int(trainer.estimated_stepping_batches)
            except Exception:  # an iterable of unknown length
                total = 0
        return float(total)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.session.begin(default_name=type(pl_module).__name__)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.session.progress(trainer.global_step, self._total(trainer), "step")
        if self.session.pause_requested and not trainer.should_stop:
            trainer.save_checkpoint(self._path(trainer))
            trainer.should_stop = True

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.session.progress(trainer.global_step, self._total(trainer), "step", force=True)
        if not self.session.pause_requested:
            path = self._path(trainer)
            if self.checkpoint_path is None and os.path.exists(path):
                os.unlink(path)  # finished: the pause checkpoint is spent
        self.session.end()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.session.end(exception)
