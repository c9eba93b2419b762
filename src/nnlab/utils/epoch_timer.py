"""A Lightning callback that logs the wall time of each training epoch as ``time/epoch_s``.

Sweeps report seconds per epoch next to accuracy (e.g. ours vs torch's layers); add it with
``+callbacks.epoch_timer._target_=nnlab.utils.epoch_timer.EpochTimer``.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl


class EpochTimer(pl.Callback):
    """Wall seconds from the start to the end of each training epoch (validation excluded)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.log("time/epoch_s", time.perf_counter() - self._start, on_epoch=True, on_step=False)
