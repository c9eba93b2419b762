"""Pooling layers on the hand-derived ops in ``nnlab.ops.pooling`` (``docs/derivations.md`` §3).

``MaxPool2d``, ``AvgPool2d`` and ``LPPool2d`` subclass torch's layers (same arguments and repr) and
only swap the math; the others have no torch counterpart.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nnlab.ops import (
    IntOrPair,
    OpInputError,
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


class MaxPool2d(nn.MaxPool2d):
    """Max pooling; the gradient goes to the first maximum of each window (§3.1)."""

    def forward(self, input: torch.Tensor):
        return max_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )


class AvgPool2d(nn.AvgPool2d):
    """Average pooling (§3.2)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class LPPool2d(nn.Module):
    """Power-average pooling (Σ_window |x|^p)^(1/p) (Sermanet et al. 2012), §3.3.

    With ``learnable=True``, p = 1 + softplus(ρ) is trained (starting at ``norm_type``, which must then be
    > 1): p stays ≥ 1, so the pool moves between sum pooling (p = 1) and max pooling (p → ∞).
    """

    def __init__(
        self,
        norm_type: float,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        ceil_mode: bool = False,
        learnable: bool = False,
    ) -> None:
        super().__init__()
        if not (norm_type > 0 and math.isfinite(norm_type)):
            raise OpInputError(f"LPPool2d: norm_type p must be a finite number > 0, got {norm_type}")
        self.kernel_size, self.stride, self.ceil_mode = kernel_size, stride, ceil_mode
        self.learnable = learnable
        if learnable:
            if norm_type <= 1:
                raise OpInputError(f"LPPool2d: learnable p = 1 + softplus must start > 1, not {norm_type}")
            self.rho = nn.Parameter(torch.tensor(math.log(math.expm1(norm_type - 1.0))))
        else:
            self.norm_type = float(norm_type)

    @property
    def p(self) -> torch.Tensor | float:
        """The current p (a tensor in the graph when learnable)."""
        return 1.0 + nn.functional.softplus(self.rho) if self.learnable else self.norm_type

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return lp_pool2d(input, self.p, self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self) -> str:
        p = f"{float(torch.as_tensor(self.p).detach()):.3g}" + (" (learnable)" if self.learnable else "")
        return f"norm_type={p}, kernel_size={self.kernel_size}, stride={self.stride}"


class StochasticPool2d(nn.Module):
    """Stochastic pooling (Zeiler & Fergus 2013) of non-negative activations, §3.4: samples one element
    per window with probability a_i / Σa in training, outputs Σ a_i² / Σa in eval."""

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return stochastic_pool2d(input, self.kernel_size, self.stride, self.training)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MixedPool2d(nn.Module):
    """Mixed max-average pooling (Lee, Gallagher & Tu 2016), §3.5: α·max + (1−α)·avg.

    α = σ(a) with a learned (so α stays in (0, 1)); one α per layer, or one per channel if ``channels``
    is given. Starts at ``alpha``.
    """

    def __init__(
        self, kernel_size: IntOrPair, stride: IntOrPair | None = None, alpha: float = 0.5, channels: int | None = None
    ) -> None:
        super().__init__()
        if not 0.0 < alpha < 1.0:
            raise OpInputError(f"MixedPool2d: alpha must be in (0, 1), got {alpha}")
        self.kernel_size, self.stride = kernel_size, stride
        shape = () if channels is None else (channels,)
        self.logit = nn.Parameter(torch.full(shape, math.log(alpha / (1 - alpha))))

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.logit)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return mixed_pool2d(input, self.alpha, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, alpha_shape={tuple(self.logit.shape)}"


class GatedPool2d(nn.Module):
    """Gated max-average pooling (Lee, Gallagher & Tu 2016), §3.5: α·max + (1−α)·avg, α = σ(ωᵀw) from
    each window's values w. ω has kh·kw entries (one gate per layer, or per channel with ``channels``);
    it starts at 0, i.e. α = 1/2 everywhere."""

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None, channels: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        shape = (kh * kw,) if channels is None else (channels, kh * kw)
        self.gate = nn.Parameter(torch.zeros(shape))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return gated_pool2d(input, self.gate, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, gate_shape={tuple(self.gate.shape)}"


class KMaxPool1d(nn.Module):
    """k-max pooling (Kalchbrenner et al. 2014), §3.6: (N, C, L) -> (N, C, k), order preserved."""

    def __init__(self, k: int, dim: int = -1) -> None:
        super().__init__()
        self.k, self.dim = k, dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return kmax_pool1d(input, self.k, self.dim)

    def extra_repr(self) -> str:
        return f"k={self.k}, dim={self.dim}"


class GlobalAvgPool2d(nn.Module):
    """Mean over H×W: (N, C, H, W) -> (N, C), §3.7."""

    def __init__(self, keepdim: bool = False) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return global_avg_pool2d(input, self.keepdim)


class GlobalMaxPool2d(nn.Module):
    """Max over H×W: (N, C, H, W) -> (N, C), §3.7."""

    def __init__(self, keepdim: bool = False) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return global_max_pool2d(input, self.keepdim)
