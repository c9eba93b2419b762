"""Batch normalization with a hand-derived backward (course §1; ``docs/derivations.md`` §1).

For each channel c, over the m = N·∏spatial elements of that channel in the batch:

    μ = (1/m) Σ x,   σ² = (1/m) Σ (x − μ)²   (biased, used to normalize)
    x̂ = (x − μ) / √(σ² + ε),   y = γ·x̂ + β

and, when training with running statistics (momentum α, as torch):

    running_mean ← (1 − α)·running_mean + α·μ
    running_var  ← (1 − α)·running_var  + α·σ²·m/(m − 1)   (unbiased)

Backward (derivations §1.3, compact form):

    dβ = Σ dy,   dγ = Σ dy·x̂,   dx = γ/(m·√(σ²+ε)) · (m·dy − Σ dy − x̂·Σ dy·x̂)

In eval mode the running statistics replace μ and σ², so y is affine in x: dx = γ·dy/√(σ_run² + ε)
(training always normalizes with the batch statistics, with or without running buffers).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from nnlab.ops._common import OpInputError


def _channel_shape(x: torch.Tensor) -> tuple[int, ...]:
    # Broadcasts a per-channel (C,) vector against (N, C, *).
    return (1, -1) + (1,) * (x.dim() - 2)


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.dim()))


class BatchNormFunction(torch.autograd.Function):
    """y = γ·(x − μ)/√(σ² + ε) + β with batch (training) or given (eval) statistics; see module docstring."""

    @staticmethod
    def forward(ctx, x, running_mean, running_var, weight, bias, training, momentum, eps):
        shape = _channel_shape(x)
        dims = _reduce_dims(x)
        m = x.numel() // x.shape[1]
        if training:
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            if running_mean is not None:
                # In place and without autograd, exactly as torch's kernel updates its buffers.
                running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            if running_var is not None:
                unbiased = var * (m / (m - 1))
                running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
        else:
            mean, var = running_mean.to(x.dtype), running_var.to(x.dtype)
        rstd = torch.rsqrt(var + eps)
        # y = x·scale + shift with scale = γ/√(σ²+ε), shift = β − μ·scale: one pass over x.
        scale = rstd if weight is None else rstd * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        y = torch.addcmul(shift.view(shape), x, scale.view(shape))
        ctx.save_for_backward(x, mean, rstd, weight)
        ctx.training = training
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, mean, rstd, weight = ctx.saved_tensors
        shape = _channel_shape(x)
        dims = _reduce_dims(x)
        m = x.numel() // x.shape[1]
        need_x, need_w, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        sum_dy = dy.sum(dims)
        # Σ dy·x̂ = rstd·Σ dy·(x − μ); centring first keeps float32 accurate when |μ| ≫ σ.
        sum_dy_xhat = (dy * (x - mean.view(shape))).sum(dims) * rstd if (need_x or need_w) else None
        gamma_rstd = rstd if weight is None else rstd * weight
        dx = dweight = dbias = None
        if need_x:
            if ctx.training:
                # dx = a·dy + b·(x − μ) + c with per-channel a = γ·rstd, b = −γ·rstd²·Σdy·x̂/m,
                # c = −γ·rstd·Σdy/m: the compact form, expanded so that it is two fused passes.
                b = -gamma_rstd * rstd * sum_dy_xhat / m
                c = -gamma_rstd * sum_dy / m - b * mean
                dx = torch.addcmul(c.view(shape), x, b.view(shape))
                dx.addcmul_(dy, gamma_rstd.view(shape))
            else:
                dx = dy * gamma_rstd.view(shape)
        if need_w:
            dweight = sum_dy_xhat
        if need_b:
            dbias = sum_dy
        return dx, None, None, dweight, dbias, None, None, None


def batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Batch normalization of (N, C) or (N, C, *) input; drop-in for ``torch.nn.functional.batch_norm``.

    Normalizes each channel with the batch mean and biased variance when ``training`` (updating
    ``running_mean``/``running_var`` in place with the unbiased variance, if given), else with the
    running statistics: y = γ·(x − μ)/√(σ² + ε) + β. Gradients for input, ``weight`` (γ) and ``bias`` (β)
    follow ``docs/derivations.md`` §1.3. Raises ``OpInputError`` for fewer than 2 dims, a single value
    per channel when training, or eval mode without running statistics.
    """
    if input.dim() < 2:
        raise OpInputError(f"batch_norm: expected (N, C) or (N, C, *) input, got shape {tuple(input.shape)}")
    C = input.shape[1]
    if training and input.numel() // max(C, 1) <= 1:
        raise OpInputError(
            f"batch_norm: expected more than 1 value per channel when training, got input shape "
            f"{tuple(input.shape)} (use a batch larger than 1 or eval mode)"
        )
    if not training and (running_mean is None or running_var is None):
        raise OpInputError("batch_norm: running_mean and running_var are required when training=False")
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and t.shape != (C,):
            raise OpInputError(f"batch_norm: {name} must have shape ({C},), got {tuple(t.shape)}")
    return BatchNormFunction.apply(input, running_mean, running_var, weight, bias, training, momentum, eps)
