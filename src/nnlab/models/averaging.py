"""Averaged weights kept beside a module's parameters (the LM's NT-ASGD, the text models' ``model.ema``).

Both models hold the average as a list of tensors in ``module.parameters()`` order, swap it in for evaluation
and write it into checkpoints; these two functions are that shared mechanics.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


@torch.no_grad()
def swap_weights(module: nn.Module, stash: list[Tensor]) -> None:
    """Exchange, in place, each parameter of ``module`` with the tensor at the same position in ``stash``."""
    for s, p in zip(stash, module.parameters(), strict=True):
        tmp = p.detach().clone()
        p.copy_(s)
        s.copy_(tmp)


def by_name(module: nn.Module, tensors: list[Tensor]) -> dict[str, Tensor]:
    """``tensors`` (in ``parameters()`` order) keyed by parameter name, cloned: ready for a state dict."""
    names = [n for n, _ in module.named_parameters()]
    return {n: t.detach().clone() for n, t in zip(names, tensors, strict=True)}
