"""Lightning callbacks of nnlab's own (everything else comes from lightning.pytorch.callbacks)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from nnlab.utils.errors import TrainingError


class FiniteLoss(Callback):
    """Stop at the first NaN or infinite training loss, before it reaches the weights.

    Raised before backward, so the optimizer never steps on it and the checkpoints on disk stay the last
    good ones; the message names the step and that checkpoint.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        value = float(loss.detach())
        if math.isfinite(value):
            return
        ckpt = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
        last = Path(ckpt.dirpath) / "last.ckpt" if ckpt and ckpt.dirpath else None
        kept = f"last good checkpoint: {last}" if last and last.exists() else "no checkpoint was saved yet"
        raise TrainingError(
            f"training loss is {value} at step {trainer.global_step} (epoch {trainer.current_epoch}); {kept}. "
            "Lower model.optimizer.lr or set trainer.gradient_clip_val"
        )
