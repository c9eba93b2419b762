"""Layers and nets built on ``nnlab.ops`` and torch; ``registry`` maps config names to layers."""

from nnlab.nn.nets import MLP, ConvNet
from nnlab.nn.registry import make_conv, make_norm, make_pool

__all__ = ["MLP", "ConvNet", "make_conv", "make_norm", "make_pool"]
