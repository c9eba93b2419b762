"""Faults injected into real runs by tests (imported by train.py subprocesses through PYTHONPATH=tests)."""

from __future__ import annotations

import os
import signal

import torch
from pytorch_lightning.callbacks import Callback


class KillAtStep(Callback):
    """SIGKILL this process right after optimizer step ``step``: no cleanup, no finally, like an OOM kill."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class NaNBatchAtStep(Callback):
    """Poison the inputs of the batch that would become step ``step`` + 1 (bad data, not bad weights)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            x = batch[0]
            if x.is_floating_point():
                x.fill_(float("nan"))
            else:  # token ids: poison the embedding instead
                with torch.no_grad():
                    next(pl_module.parameters()).fill_(float("nan"))


class TraceBatches(Callback):
    """Append ``step, sum of labels, loss`` per training batch to ``path`` (debugging resume)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        with open(self.path, "a") as f:
            f.write(f"{trainer.global_step} {batch_idx} {int(batch[-1].sum())} {float(loss):.8f}\n")
