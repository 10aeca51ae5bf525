#!/usr/bin/env python3
"""Train a small PyTorch MLP on scikit-learn's bundled digits, on CPU, resumably.

The data set (1,797 8x8 images of handwritten digits) ships inside scikit-learn, so the
job needs no download. The script

- checkpoints the model, the optimiser and the epoch after every epoch (atomically: a
  temporary file, then ``os.replace``) into its run's own checkpoint folder, and resumes
  from the checkpoint there when it exists, so it can run as an *interruptible*
  carbonshift job: paused, killed, restarted, at most one epoch is lost, and a resumed
  run ends with exactly the weights of an uninterrupted one (the shuffling of each epoch
  is seeded by the epoch number);
- keeps each run's checkpoints apart and out of the source tree: ``--checkpoint-dir``
  defaults, under carbonshift, to a folder beside the run's progress file (carbonshift
  gives each run its own ``CARBONSHIFT_PROGRESS_FILE``, the same for every launch of that
  run, so a run launched again after a checkpoint pause resumes, and a new run starts
  from epoch 0); run alone, to a new temporary folder. Give ``--checkpoint-dir`` to resume
  a run of your own;
- on SIGUSR1 (carbonshift's ``--pause-mode checkpoint`` signal) it finishes the epoch under
  way, checkpoints and exits 0, so a pause loses nothing; the daemon launches it again at
  the next run interval and it resumes from that checkpoint;
- reports its progress through carbonshift's progress protocol: when the environment
  variable ``CARBONSHIFT_PROGRESS_FILE`` is set (the local executor sets it), it writes
  ``{"done": EPOCH, "total": EPOCHS, "unit": "epoch"}`` there after every epoch, so
  ``carbonshift wait`` projects the job's total energy from its progress;
- prints one JSON line per epoch (loss, test accuracy) and writes the final metrics to
  ``--metrics`` when given.

Run it alone:  python train.py --epochs 20
Or under carbonshift: see submit.sh next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def report_progress(done: int, total: int) -> None:
    """carbonshift's progress protocol: atomically rewrite $CARBONSHIFT_PROGRESS_FILE."""
    path = os.environ.get("CARBONSHIFT_PROGRESS_FILE")
    if not path:
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            json.dump({"done": done, "total": total, "unit": "epoch"}, fh)
        os.replace(tmp, path)
    except OSError as exc:  # progress is a nicety: never fail training for it
        print(f"note: cannot write progress to {path}: {exc}", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20, help="total epochs (default 20)")
    p.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="this run's checkpoint folder, resumed from when it holds one (default: "
                        "the carbonshift run's own folder, else a new temporary folder)")
    p.add_argument("--metrics", help="write the final metrics as JSON to this file")
    p.add_argument("--epoch-sleep", type=float, default=0.0,
                   help="idle seconds after each epoch (to stretch a demo run)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.hidden < 1 or args.batch_size < 1 or args.lr <= 0:
        p.error("--epochs, --hidden and --batch-size must be at least 1, --lr positive")
    return args


def checkpoint_dir(given: str | None) -> Path:
    """The run's checkpoint folder: ``given``, else the carbonshift run's own folder
    (beside its progress file: one per run, the same across its launches), else a new
    temporary folder. Never the working directory, which is often the source tree."""
    if given:
        folder = Path(given)
    elif os.environ.get("CARBONSHIFT_PROGRESS_FILE"):
        progress = os.environ["CARBONSHIFT_PROGRESS_FILE"]
        folder = Path(progress.removesuffix(".progress.json") + ".checkpoints")
    else:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="train_digits-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ckpt = checkpoint_dir(args.checkpoint_dir) / "digits.ckpt"
    # carbonshift's checkpoint signal: stop at the end of the epoch under way (heeded from
    # the start: it may come while torch is still being imported)
    pause: list[int] = []
    try:
        signal.signal(signal.SIGUSR1, lambda signum, _frame: pause.append(signum))
    except ValueError:  # called from a thread other than the main one: no pausing
        pass
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_all, y_all = load_digits(return_X_y=True)
    order = np.random.RandomState(args.seed).permutation(len(y_all))
    x_all = torch.tensor(x_all[order] / 16.0, dtype=torch.float32)
    y_all = torch.tensor(y_all[order], dtype=torch.long)
    n_train = int(0.8 * len(y_all))
    x_train, y_train = x_all[:n_train], y_all[:n_train]
    x_test, y_test = x_all[n_train:], y_all[n_train:]

    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    start = 0
    history: list[dict[str, float]] = []
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["epoch"])
        history = list(state.get("history", []))
        print(json.dumps({"resumed_from_epoch": start}), flush=True)
    else:
        print(json.dumps({"checkpoints": str(ckpt.parent)}), flush=True)
    if start > args.epochs:  # another run's checkpoint: training nothing is no success
        print(f"train.py: the checkpoint in {ckpt.parent} is at epoch {start}, past --epochs "
              f"{args.epochs}: give a new --checkpoint-dir", file=sys.stderr)
        return 2
    if start == args.epochs:  # launched again after its last epoch (a late pause signal)
        print(json.dumps({"note": f"checkpoint already at epoch {start} of {args.epochs}"}), flush=True)

    acc = history[-1]["test_accuracy"] if history else 0.0
    for epoch in range(start, args.epochs):
        if pause:  # asked before this epoch began: the checkpoint on disk is current
            print(json.dumps({"paused_after_epoch": epoch}), flush=True)
            return 0
        t0 = time.perf_counter()
        model.train()
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        perm = torch.randperm(n_train, generator=g)
        total = 0.0
        for i in range(0, n_train, args.batch_size):
            idx = perm[i:i + args.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            acc = float((model(x_test).argmax(1) == y_test).float().mean())
        row = {"epoch": epoch + 1, "loss": total / n_train, "test_accuracy": acc,
               "seconds": time.perf_counter() - t0}
        history.append(row)
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "epoch": epoch + 1, "history": history}, tmp)
        os.replace(tmp, ckpt)
        report_progress(epoch + 1, args.epochs)
        print(json.dumps(row), flush=True)
        if pause and epoch + 1 < args.epochs:
            print(json.dumps({"paused_after_epoch": epoch + 1}), flush=True)
            return 0  # checkpointed above: launched again later, it resumes from there
        if args.epoch_sleep > 0:
            time.sleep(args.epoch_sleep)
    metrics = {"epochs": args.epochs, "test_accuracy": acc,
               "final_loss": history[-1]["loss"] if history else None,
               "weights_sum": float(sum(p.detach().double().sum() for p in model.parameters()))}
    if args.metrics:
        Path(args.metrics).write_text(json.dumps(metrics))
    print(f"final test accuracy {acc:.3f} after {args.epochs} epochs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
