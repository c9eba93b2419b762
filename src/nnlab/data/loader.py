"""The order batches come in, made so that a run killed mid-epoch resumes exactly: the loader and the samplers.

Two things make resuming exact. First, the order of epoch ``e`` depends on ``(seed, e)`` only, never on
how many epochs this process has iterated or on the global RNG: the loader re-seeds its own generator
(used by its sampler and for worker seeds) at every pass. Second, a resumed run can tell the loader how
many batches of the current epoch were already trained on; the next pass skips them.
``nnlab.utils.callbacks.ResumeState`` does both from what it stored in the checkpoint. A sampler of our own
(``BucketBatchSampler``, the sentence datasets' length buckets) follows the same rule: its order is a function
of ``(seed, epoch)``, told by the loader through ``set_epoch``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


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


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length sentences: shuffle, sort pools of ``pool`` batches by length, cut into
    batches, shuffle the batches. Seeded by ``seed`` and the epoch (Lightning calls ``set_epoch``)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 50, drop_last: bool = False):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = pool
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        for j in rng.permutation(len(batches)):
            yield batches[j]

    def __len__(self) -> int:
        n = len(self.lengths)
        if self.drop_last:
            size = self.batch_size * self.pool
            return sum((min(size, n - s)) // self.batch_size for s in range(0, n, size))
        size = self.batch_size * self.pool
        return sum(-(-min(size, n - s) // self.batch_size) for s in range(0, n, size))
