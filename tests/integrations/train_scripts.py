"""Tiny training scripts the integration tests run as real processes (no downloads: a
two-layer model on random data made here). ``python train_scripts.py hf|lightning OUT STEPS
SLEEP_S [NAME]``; prints one JSON line: steps done, whether it paused, the measurement."""

from __future__ import annotations

import json
import os
import sys
import time

import torch


def _data() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(4, generator=g), "y": torch.randn((), generator=g)} for _ in range(64)]


class Net(torch.nn.Module):
    """``RAISE_AT=N`` in the environment: the N-th forward pass raises (a step that fails)."""

    def __init__(self, sleep_s: float) -> None:
        super().__init__()
        self.sleep_s = sleep_s
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        self.calls = 0
        self.raise_at = int(os.environ.get("RAISE_AT", "0"))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        time.sleep(self.sleep_s)
        self.calls += 1
        if self.calls == self.raise_at:
            raise FloatingPointError(f"loss diverged at step {self.calls}")
        return {"loss": torch.nn.functional.mse_loss(self.layers(x).squeeze(-1), y)}


def _measured(m: object) -> dict[str, object] | None:
    if m is None:
        return None
    return {"energy_j": m.energy_j, "job_id": m.job_id, "name": m.name,  # type: ignore[attr-defined]
            "methods": m.methods, "kind": m.intensity_kind}  # type: ignore[attr-defined]


def hf(out: str, steps: int, sleep_s: float, name: str | None) -> dict[str, object]:
    from transformers import Trainer, TrainingArguments

    from carbonshift.integrations.hf import CarbonshiftCallback

    cb = CarbonshiftCallback(name=name)
    args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=8,
                             report_to=[], save_strategy="no", use_cpu=True,
                             logging_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=Net(sleep_s), args=args, train_dataset=_data(), callbacks=[cb])
    resume = CarbonshiftCallback.last_checkpoint(out)
    trainer.train(resume_from_checkpoint=resume)
    return {"step": trainer.state.global_step, "paused": cb.paused, "resumed_from": resume,
            "measurement": _measured(cb.measurement)}


def lightning(out: str, steps: int, sleep_s: float, name: str | None) -> dict[str, object]:
    import lightning.pytorch as pl

    from carbonshift.integrations.lightning import CarbonshiftCallback

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = Net(sleep_s)

        def training_step(self, batch: dict[str, torch.Tensor], _i: int) -> torch.Tensor:
            return self.net(batch["x"], batch["y"])["loss"]

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    loader = torch.utils.data.DataLoader(_data(), batch_size=8)  # type: ignore[arg-type]
    cb = CarbonshiftCallback(name=name)
    trainer = pl.Trainer(max_steps=steps, callbacks=[cb], default_root_dir=out, accelerator="cpu",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    resume = cb.resume_path(trainer)
    trainer.fit(Module(), loader, ckpt_path=resume)
    return {"step": trainer.global_step, "paused": cb.paused, "resumed_from": resume,
            "measurement": _measured(cb.measurement)}


if __name__ == "__main__":
    kind, out, steps, sleep_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    name = sys.argv[5] if len(sys.argv) > 5 else None
    result = (hf if kind == "hf" else lightning)(out, steps, sleep_s, name)
    print("RESULT " + json.dumps(result), flush=True)
    if os.environ.get("THEN_RAISE_AT"):  # then a training that fails, in this same process
        os.environ["RAISE_AT"] = os.environ["THEN_RAISE_AT"]
        (hf if kind == "hf" else lightning)(out + "-boom", steps, sleep_s, f"{kind}-boom")
