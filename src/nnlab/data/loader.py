"""A DataLoader whose position can be restored, so that a run killed mid-epoch resumes exactly.

Two things make resuming exact. First, the order of epoch ``e`` depends on ``(seed, e)`` only, never on
how many epochs this process has iterated or on the global RNG: the loader re-seeds its own generator
(used by its sampler and for worker seeds) at every pass. Second, a resumed run can tell the loader how
many batches of the current epoch were already trained on; the next pass skips them.
``nnlab.utils.callbacks.ResumeState`` does both from what it stored in the checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader


class ResumableDataLoader(DataLoader):
    """``torch.utils.data.DataLoader`` plus ``start_epoch(epoch, skip)``.

    Pass the same ``generator`` to any sampler you build yourself (``RandomSampler(ds, generator=g)``) so its
    order follows the epoch seed too. A dataset or sampler with ``set_epoch`` is told the epoch as well.
    """

    def __init__(self, dataset: Any, *args: Any, seed: int = 0, generator: torch.Generator | None = None, **kw: Any):
        super().__init__(dataset, *args, generator=generator or torch.Generator(), **kw)
        self.seed = int(seed)
        self.epoch = 0
        self._skip = 0

    def start_epoch(self, epoch: int, skip: int = 0) -> None:
        """The next pass is epoch ``epoch`` and leaves out its first ``skip`` batches."""
        self.epoch, self._skip = int(epoch), int(skip)

    def __iter__(self):
        # A fixed mixing of (seed, epoch) into one 63-bit seed: no epoch shares another's order.
        self.generator.manual_seed((self.seed * 1_000_003 + self.epoch) % (2**63))
        for obj in (self.dataset, self.sampler, self.batch_sampler):
            if callable(getattr(obj, "set_epoch", None)):
                obj.set_epoch(self.epoch)
        skip, self._skip = self._skip, 0
        it = super().__iter__()
        for _ in range(skip):
            try:
                next(it)
            except StopIteration:
                break
        return it
