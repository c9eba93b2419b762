"""Conv2d on the hand-derived ``nnlab.ops.conv2d`` (im2col forward, analytic backward).

Subclasses ``torch.nn.Conv2d``: same constructor, initialization, ``state_dict`` and padding modes;
only the convolution itself runs through ``nnlab.ops``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnlab.ops import conv2d


class Conv2d(nn.Conv2d):
    """2-D convolution layer; ``docs/derivations.md`` §2."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)
