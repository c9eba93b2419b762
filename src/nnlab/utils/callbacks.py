"""Lightning callbacks of nnlab's own (everything else comes from pytorch_lightning.callbacks)."""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import numpy as np
import pytorch_lightning as L
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from nnlab.utils.errors import TrainingError

log = logging.getLogger(__name__)


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


def _rng_state() -> dict:
    """The global RNG states as plain data (checkpoints load with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class ResumeState(Callback):
    """Makes resuming from any checkpoint, also one written mid-epoch, continue as if never stopped.

    Every checkpoint records the epoch, how many of its training batches were done and the RNG states.
    On resume the train loader (a ``ResumableDataLoader``) replays that epoch's order and skips the batches
    already done, and the RNG states are restored before the first training batch, so dropout draws the
    same numbers. Lightning alone would restart a mid-epoch checkpoint's epoch from its first batch.
    """

    KEY = "nnlab_position"

    def __init__(self) -> None:
        self._done = 0
        self._pending: dict | None = None

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == "fit":
            self._pending = checkpoint.get(self.KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        _set_rng_state(pending["rng"])
        # Lightning restarts an unfinished epoch at the same epoch number; a finished one at the next.
        skip = pending["batches_done"] if pending["epoch"] == trainer.current_epoch else 0
        self._done = skip
        loader = trainer.train_dataloader
        # any loader with start_epoch (nnlab.data.loader.ResumableDataLoader): utils knows no data module
        if callable(getattr(loader, "start_epoch", None)):
            loader.start_epoch(trainer.current_epoch, skip)
            # Lightning made the first iterator before any hook could say where to start: make it again.
            fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
            if fetcher is not None:
                iter(fetcher)
        elif skip:
            log.warning(
                "resuming mid-epoch, but the train loader is a %s that cannot skip batches: epoch %d restarts "
                "from its first batch (use nnlab.data.loader.ResumableDataLoader)",
                type(loader).__name__,
                trainer.current_epoch,
            )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Not called for an epoch Lightning restarts mid-way; on_train_start has positioned that one.
        self._done = 0
        loader = trainer.train_dataloader
        # any loader with start_epoch (nnlab.data.loader.ResumableDataLoader): utils knows no data module
        if callable(getattr(loader, "start_epoch", None)):
            loader.start_epoch(trainer.current_epoch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._done += 1

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[self.KEY] = {"epoch": trainer.current_epoch, "batches_done": self._done, "rng": _rng_state()}
