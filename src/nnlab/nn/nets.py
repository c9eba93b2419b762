"""Image classification nets whose norm, pooling and convolution are config switches (see ``registry``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnlab.nn.registry import make_conv, make_norm, make_pool
from nnlab.utils.errors import ConfigError


class MLP(nn.Module):
    """Flatten -> [Linear -> norm -> ReLU -> dropout] x len(hidden) -> Linear.

    ``pool`` and ``conv`` are accepted so that every image net shares one signature; an MLP has neither.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        norm: str = "batch",
        pool: str = "max",
        conv: str = "torch",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = int(torch.tensor(input_shape).prod())
        for h in hidden:
            # A linear layer followed by a norm needs no bias: the norm's shift replaces it.
            layers += [
                nn.Linear(width, h, bias=norm == "none"),
                make_norm(norm, h, 1),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            width = h
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)
        self.feature_dim = width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation (what t-SNE plots look at)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class ConvNet(nn.Module):
    """Stages of [conv -> norm -> ReLU] x ``convs_per_stage`` -> pool, then Linear-ReLU-dropout-Linear.

    Pooling halves the maps (window and stride ``pool_size``) after each stage while they are at least
    ``pool_size`` wide, so one config serves 8x8 digits and 32x32 CIFAR alike.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        convs_per_stage: int = 1,
        kernel_size: int = 3,
        pool_size: int = 2,
        hidden: int = 128,
        dropout: float = 0.25,
        norm: str = "batch",
        pool: str = "max",
        conv: str = "torch",
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ConfigError(f"model.net.kernel_size={kernel_size} must be odd (same padding keeps the map size)")
        if len(input_shape) != 3:
            raise ConfigError(f"ConvNet needs (C, H, W) inputs, got input_shape={list(input_shape)}")
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for width in channels:
            for _ in range(convs_per_stage):
                layers += [
                    make_conv(conv, c, width, kernel_size, kernel_size // 2),
                    make_norm(norm, width, 2),
                    nn.ReLU(),
                ]
                c = width
            if min(h, w) >= pool_size:
                layers.append(make_pool(pool, pool_size))
                h, w = h // pool_size, w // pool_size
        self.features = nn.Sequential(
            *layers, nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Dropout(dropout)
        )
        self.head = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation (what t-SNE plots look at)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
