"""Config names -> layers, so that ``model.norm=batch`` or ``model.pool=lp`` is one switch.

A registry maps a config name to a factory. Factories take the size information a layer needs:
norms get ``(num_features, dims)`` where ``dims`` is 1 for (N, C) features and 2 for (N, C, H, W)
maps; pools get ``(kernel_size)`` and act on (N, C, H, W) maps. Unknown names fail with one line
that lists the valid choices (``nnlab.utils.errors.choice_error``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from nnlab.nn.batchnorm import BatchNorm1d, BatchNorm2d
from nnlab.nn.conv import Conv2d
from nnlab.nn.pooling import AvgPool2d, GatedPool2d, LPPool2d, MaxPool2d, MixedPool2d, StochasticPool2d
from nnlab.utils.errors import choice_error

NormFactory = Callable[[int, int], nn.Module]
PoolFactory = Callable[[int], nn.Module]
# (in_channels, out_channels, kernel_size, padding) -> conv layer with stride 1
ConvFactory = Callable[[int, int, int, int], nn.Module]

NORMS: dict[str, NormFactory] = {}
POOLS: dict[str, PoolFactory] = {}
CONVS: dict[str, ConvFactory] = {}


def register_norm(name: str) -> Callable[[NormFactory], NormFactory]:
    def deco(fn: NormFactory) -> NormFactory:
        NORMS[name] = fn
        return fn

    return deco


def register_pool(name: str) -> Callable[[PoolFactory], PoolFactory]:
    def deco(fn: PoolFactory) -> PoolFactory:
        POOLS[name] = fn
        return fn

    return deco


def register_conv(name: str) -> Callable[[ConvFactory], ConvFactory]:
    def deco(fn: ConvFactory) -> ConvFactory:
        CONVS[name] = fn
        return fn

    return deco


def check_conv(name: str) -> str:
    if name not in CONVS:
        raise choice_error("model.conv", name, CONVS)
    return name


def make_conv(name: str, in_channels: int, out_channels: int, kernel_size: int, padding: int) -> nn.Module:
    """A 2-D convolution (stride 1) from ``in_channels`` to ``out_channels``."""
    return CONVS[check_conv(name)](in_channels, out_channels, kernel_size, padding)


def check_norm(name: str) -> str:
    if name not in NORMS:
        raise choice_error("model.norm", name, NORMS)
    return name


def check_pool(name: str) -> str:
    if name not in POOLS:
        raise choice_error("model.pool", name, POOLS)
    return name


def make_norm(name: str, num_features: int, dims: int) -> nn.Module:
    """A normalization layer for ``num_features`` channels of ``dims``-D features (1: (N, C); 2: maps)."""
    return NORMS[check_norm(name)](num_features, dims)


def make_pool(name: str, kernel_size: int = 2) -> nn.Module:
    """A 2-D pooling layer with window and stride ``kernel_size``."""
    return POOLS[check_pool(name)](kernel_size)


# --- torch's layers. Hand-derived ones (nnlab.ops via nnlab.nn) register themselves the same way.


@register_norm("none")
def _none(num_features: int, dims: int) -> nn.Module:
    return nn.Identity()


@register_norm("torch_batch")
def _torch_batch(num_features: int, dims: int) -> nn.Module:
    return nn.BatchNorm1d(num_features) if dims == 1 else nn.BatchNorm2d(num_features)


@register_norm("layer")
def _layer(num_features: int, dims: int) -> nn.Module:
    # Over all of a sample's channels (and positions), as GroupNorm with one group does for maps;
    # this keeps the layer independent of the spatial size.
    return nn.LayerNorm(num_features) if dims == 1 else nn.GroupNorm(1, num_features)


@register_norm("group")
def _group(num_features: int, dims: int) -> nn.Module:
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if num_features % g == 0 and num_features // g >= 2)
    return nn.GroupNorm(groups, num_features)


@register_pool("torch_max")
def _torch_max(k: int) -> nn.Module:
    return nn.MaxPool2d(k)


@register_pool("torch_avg")
def _torch_avg(k: int) -> nn.Module:
    return nn.AvgPool2d(k)


@register_pool("torch_lp")
def _torch_lp(k: int) -> nn.Module:
    return nn.LPPool2d(2, k)


@register_conv("torch")
def _torch_conv(cin: int, cout: int, k: int, padding: int) -> nn.Module:
    return nn.Conv2d(cin, cout, k, padding=padding)


# --- hand-derived layers (nnlab.ops through nnlab.nn): the plain names; torch's keep the torch_ prefix.


@register_norm("batch")
def _batch(num_features: int, dims: int) -> nn.Module:
    return BatchNorm1d(num_features) if dims == 1 else BatchNorm2d(num_features)


@register_conv("ours")
def _ours_conv(cin: int, cout: int, k: int, padding: int) -> nn.Module:
    return Conv2d(cin, cout, k, padding=padding)


@register_pool("max")
def _max(k: int) -> nn.Module:
    return MaxPool2d(k)


@register_pool("avg")
def _avg(k: int) -> nn.Module:
    return AvgPool2d(k)


@register_pool("lp")
def _lp(k: int) -> nn.Module:
    return LPPool2d(2.0, k)  # p = 2, like torch_lp, so the two differ only in implementation


@register_pool("lp_learned")
def _lp_learned(k: int) -> nn.Module:
    return LPPool2d(2.0, k, learnable=True)


@register_pool("stochastic")
def _stochastic(k: int) -> nn.Module:
    return StochasticPool2d(k)


@register_pool("mixed")
def _mixed(k: int) -> nn.Module:
    return MixedPool2d(k)


@register_pool("gated")
def _gated(k: int) -> nn.Module:
    return GatedPool2d(k)
