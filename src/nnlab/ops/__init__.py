"""Hand-derived ops: ``torch.autograd.Function``s with analytic backward passes, behind a functional API
that mirrors ``torch.nn.functional`` (names, argument order, defaults).

Derivations: ``docs/derivations.md``."""

from nnlab.ops._common import IntOrPair, OpInputError
from nnlab.ops.batchnorm import batch_norm
from nnlab.ops.conv import conv2d
from nnlab.ops.pooling import (
    avg_pool2d,
    gated_pool2d,
    global_avg_pool2d,
    global_max_pool2d,
    kmax_pool1d,
    lp_pool2d,
    max_pool2d,
    mixed_pool2d,
    stochastic_pool2d,
)

__all__ = [
    "IntOrPair",
    "OpInputError",
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "gated_pool2d",
    "global_avg_pool2d",
    "global_max_pool2d",
    "kmax_pool1d",
    "lp_pool2d",
    "max_pool2d",
    "mixed_pool2d",
    "stochastic_pool2d",
]
