"""carbonshift for Hugging Face ``transformers.Trainer``.

::

    from carbonshift.integrations.hf import CarbonshiftCallback

    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      callbacks=[CarbonshiftCallback(name="bert-ft")])
    trainer.train(resume_from_checkpoint=CarbonshiftCallback.last_checkpoint(args.output_dir))

As a carbonshift job it reports steps done of ``max_steps`` through
``CARBONSHIFT_PROGRESS_FILE`` and, on a checkpointing job's pause signal, saves a checkpoint
in ``output_dir`` and stops the training cleanly (exit 0: carbonshift resumes the job later
with the same command, which resumes from the checkpoint). Outside carbonshift it measures
the training like :func:`carbonshift.measure` (``callback.measurement`` after training); an
exception raised in the training is recorded (the run fails with the exception's type) and
re-raised, as :func:`carbonshift.measure` does. ``TrainerCallback`` has no exception event:
the callback wraps ``train`` of the ``Trainer`` it is given to (found when the trainer says
its ``__init__`` ended), so the exception passes through it on its way out.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from typing import Any

from transformers import TrainerCallback

from carbonshift.integrations._session import SessionCallback


class CarbonshiftCallback(SessionCallback, TrainerCallback):
    """Progress, pause-to-checkpoint and measurement for a ``Trainer``."""

    def __init__(self, name: str | None = None, *, zone: str | None = None, measure: bool = True,
                 pause_signal: int | None = None) -> None:
        self._start_session(name, zone, measure, pause_signal)

    @staticmethod
    def last_checkpoint(output_dir: str) -> str | None:
        """The newest ``checkpoint-N`` folder in ``output_dir``, to resume from (or None)."""
        try:
            names = os.listdir(output_dir)
        except OSError:
            return None
        steps = [(int(m.group(1)), n) for n in names if (m := re.fullmatch(r"checkpoint-(\d+)", n))]
        return os.path.join(output_dir, max(steps)[1]) if steps else None

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        trainer = _calling_trainer()
        if trainer is not None:
            self._guard(trainer)
        return control

    def _guard(self, trainer: Any) -> None:
        """Make ``trainer.train`` end the measurement with an exception that escapes it."""
        train = trainer.train
        if getattr(train, "_carbonshift_guarded", False):
            return

        @functools.wraps(train)
        def guarded(*a: Any, **kw: Any) -> Any:
            try:
                return train(*a, **kw)
            except BaseException as exc:
                self.session.end(exc)  # recorded; a session already ended is left as it is
                raise

        guarded._carbonshift_guarded = True  # type: ignore[attr-defined]
        trainer.train = guarded

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.session.begin(default_name=os.path.basename(str(args.output_dir)) or "hf-train")
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.session.progress(state.global_step, state.max_steps, "step")
        if self.session.pause_requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.session.progress(state.global_step, state.max_steps, "step", force=True)
        self.session.end()
        return control


def _calling_trainer() -> Any:
    """The ``Trainer`` whose method is calling this callback (up the stack), if any."""
    from transformers import Trainer

    frame = inspect.currentframe()
    try:
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, Trainer):
                return candidate
            frame = frame.f_back
        return None
    finally:
        del frame
