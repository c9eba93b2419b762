"""BatchNorm1d/2d on the hand-derived ``nnlab.ops.batch_norm``.

They subclass torch's layers, so parameters, buffers (``running_mean``, ``running_var``,
``num_batches_tracked``), ``state_dict`` keys, ``momentum=None`` (cumulative average) and
``track_running_stats`` behave exactly as torch's; only the math runs through ``nnlab.ops``.
"""

from __future__ import annotations

import torch
from torch import nn

from nnlab.ops import batch_norm


class _OursMixin:
    def forward(self, input: torch.Tensor) -> torch.Tensor:  # same control flow as torch's _BatchNorm
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        # Without running statistics, eval mode has nothing else to use: normalize with the batch.
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return batch_norm(
            input,
            self.running_mean if keep else None,
            self.running_var if keep else None,
            self.weight,
            self.bias,
            use_batch,
            factor,
            self.eps,
        )


class BatchNorm1d(_OursMixin, nn.BatchNorm1d):
    """Batch norm over (N, C) or (N, C, L) with running statistics; ``docs/derivations.md`` §1."""


class BatchNorm2d(_OursMixin, nn.BatchNorm2d):
    """Batch norm over (N, C, H, W) maps with running statistics; ``docs/derivations.md`` §1."""
