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

On CPU, for contiguous or channels-last float tensors, these formulas run as the native loops of ``_kernels.c``
(``bn_fwd``/``bn_bwd``: one call per direction, threads over channels); elsewhere, or without a C compiler
(``NNLAB_OPS_KERNEL=torch``), as the torch code below. Both centre before scaling.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch.autograd.function import once_differentiable

from nnlab.ops import _native
from nnlab.ops._common import OpInputError


def _channel_shape(x: torch.Tensor) -> tuple[int, ...]:
    # Broadcasts a per-channel (C,) vector against (N, C, *).
    return (1, -1) + (1,) * (x.dim() - 2)


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.dim()))


# The math of forward and backward as plain tensor functions (no autograd), so that the same code runs
# eagerly or fused by torch.compile (``set_fused``). Each is written as few passes over x as eager allows.


def _bn_forward_math(x, mean, var, weight, bias, eps: float):
    """y = (x − μ)·γ/√(σ² + ε) + β; returns y and 1/√(σ² + ε)."""
    shape = _channel_shape(x)
    rstd = torch.rsqrt(var + eps)
    scale = rstd if weight is None else rstd * weight
    centred = x - mean.view(shape)  # centring before scaling: a constant channel gives exact zeros
    if bias is None:
        return centred.mul_(scale.view(shape)), rstd
    return torch.addcmul(bias.view(shape), centred, scale.view(shape)), rstd


def _bn_batch_stats_forward(x, weight, bias, eps: float):
    var, mean = torch.var_mean(x, dim=_reduce_dims(x), correction=0)
    y, rstd = _bn_forward_math(x, mean, var, weight, bias, eps)
    return y, mean, var, rstd


def _bn_backward_math(dy, x, mean, rstd, weight, training: bool):
    """(dx, Σ dy·x̂, Σ dy) per derivations §1.3 (training) or §1.4 (eval, statistics are constants)."""
    shape, dims = _channel_shape(x), _reduce_dims(x)
    m = x.numel() // x.shape[1]
    gamma_rstd = rstd if weight is None else rstd * weight
    centred = x - mean.view(shape)
    sum_dy = dy.sum(dims)
    sum_dy_xhat = (dy * centred).sum(dims) * rstd
    if training:
        # Compact form γ·rstd/m·(m·dy − Σdy − x̂·Σdy·x̂), expanded to a·dy + b·(x − μ) + c with per-channel
        # a = γ·rstd, b = −γ·rstd²·Σdy·x̂/m, c = −γ·rstd·Σdy/m: two fused multiply-adds.
        b = -gamma_rstd * rstd * sum_dy_xhat / m
        c = -gamma_rstd * sum_dy / m
        dx = torch.addcmul(c.view(shape), centred, b.view(shape))
        dx = dx.addcmul_(dy, gamma_rstd.view(shape))
    else:
        dx = dy * gamma_rstd.view(shape)
    return dx, sum_dy_xhat, sum_dy


_EAGER = (_bn_batch_stats_forward, _bn_forward_math, _bn_backward_math)
_FUSED = {"enabled": os.environ.get("NNLAB_FUSED_BN", "0") == "1", "fns": None, "failed": False}


def set_fused(enabled: bool) -> None:
    """Run batch norm's forward/backward math through ``torch.compile`` (one fused kernel per pass).

    Off by default (also ``NNLAB_FUSED_BN=1``): the first call per shape family compiles for tens of
    seconds, which pays off only for long runs. If compiling fails (e.g. no C++ compiler) the eager code
    runs instead, with one warning.
    """
    _FUSED["enabled"] = bool(enabled)


def _fns():
    if not _FUSED["enabled"] or _FUSED["failed"]:
        return _EAGER
    if _FUSED["fns"] is None:
        _FUSED["fns"] = tuple(torch.compile(f, dynamic=None) for f in _EAGER)
    return _FUSED["fns"]


def _call(i: int, *args):
    fn = _fns()[i]
    if fn is _EAGER[i]:
        return fn(*args)
    try:
        return fn(*args)
    except Exception as e:  # any compile/backend failure: the same math, eagerly
        _FUSED["failed"] = True
        warnings.warn(
            f"nnlab batch_norm: torch.compile failed ({type(e).__name__}: {e}); running eagerly", stacklevel=3
        )
        return _EAGER[i](*args)


# The same math through the native loops of _kernels.c (one pass per sum, no intermediates in memory). Only
# the per-channel vectors (rstd, scale, the backward's coefficients) are computed here, with the same torch
# expressions as above.


def _native_dims(x: torch.Tensor, lay: str) -> tuple[int, int, int, int]:
    """(N, C, S, rows) for _kernels.c: planar (N, C, S) or rows (M, C) with M = numel / C."""
    C = x.shape[1]
    S = x.numel() // (x.shape[0] * C) if lay == "planar" else 1
    if S > 1:
        return x.shape[0], C, S, 0
    return x.numel() // C, C, 1, 1  # (N, C) features and channels-last maps: C is the fastest dim


def _ptr(t: torch.Tensor | None, like: torch.Tensor) -> tuple[int | None, torch.Tensor | None]:
    """A per-channel vector as the kernels read it (x's dtype, contiguous); the tensor keeps it alive."""
    if t is None:
        return None, None
    t = t.detach()
    if t.dtype != like.dtype or not t.is_contiguous():
        t = t.to(like.dtype).contiguous()
    return t.data_ptr(), t


def _rows_split(x: torch.Tensor, dims) -> int:
    """Threads for splitting a rows-layout tensor by rows (0: one call of the channel-split kernels is better).
    The row split is five kernel calls with torch reductions between them, the channel split one: below 2^18
    elements the channel split's single call is the faster of the two even where it runs on fewer threads."""
    if not dims[3]:
        return 0
    t = _native.threads_for(dims[0], x.numel(), min_parallel=1 << 18)
    return t if t > 1 else 0


def _rows_forward(x, dims, threads, running_mean, running_var, weight, bias, training, momentum, eps):
    """Channels-last training/eval forward split by rows: the passes of bn_fwd, the per-channel sums combined
    here (in double) between them; the same formulas (shifted mean, two-pass variance, centring first)."""
    M, C = dims[0], dims[1]
    rows = x.permute(0, *range(2, x.dim()), 1).reshape(M, C)  # a view: x is channels-last
    if training:
        K = rows[0].contiguous()
        part = torch.zeros(threads, C, dtype=torch.float64)
        f = _native.fn("bn_rows_sum", x.dtype)
        _native.parallel_slots(f, (x.data_ptr(), C, K.data_ptr(), part.data_ptr()), M, threads)
        mean_d = K.double() + part.sum(0) / M
        mean = mean_d.to(x.dtype)
        corr = (mean_d - mean.double()).to(x.dtype)
        part.zero_()
        f = _native.fn("bn_rows_sq", x.dtype)
        _native.parallel_slots(f, (x.data_ptr(), C, mean.data_ptr(), corr.data_ptr(), part.data_ptr()), M, threads)
        var = (part.sum(0) / M).to(x.dtype)
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
        if running_var is not None:
            running_var.mul_(1 - momentum).add_((var * (M / (M - 1))).to(running_var.dtype), alpha=momentum)
    else:
        mean, var = running_mean.to(x.dtype).contiguous(), running_var.to(x.dtype)
    rstd = 1 / torch.sqrt(var + eps)
    scale = (rstd if weight is None else rstd * weight.detach().to(x.dtype)).contiguous()
    shift = x.new_zeros(C) if bias is None else bias.detach().to(x.dtype).contiguous()
    y = torch.empty_like(x)
    args = (x.data_ptr(), y.data_ptr(), C, mean.data_ptr(), scale.data_ptr(), shift.data_ptr())
    _native.parallel_slots(_native.fn("bn_rows_apply", x.dtype), args, M, threads)
    return y, mean, rstd


def _rows_backward(dy, x, dims, threads, mean, rstd, weight, training):
    M, C = dims[0], dims[1]
    part = torch.zeros(threads, 2, C, dtype=torch.float64)
    f = _native.fn("bn_rows_bsum", x.dtype)
    _native.parallel_slots(f, (dy.data_ptr(), x.data_ptr(), C, mean.data_ptr(), part.data_ptr()), M, threads)
    sums = part.sum(0).to(x.dtype)
    sum_dy, sum_dy_xhat = sums[0], sums[1] * rstd
    gamma_rstd = rstd if weight is None else rstd * weight.detach().to(x.dtype)
    if training:  # the coefficients of _bn_backward_math
        b = (-gamma_rstd * rstd * sum_dy_xhat / M).contiguous()
        c = (-gamma_rstd * sum_dy / M).contiguous()
    else:
        b = c = x.new_zeros(C)
    a = gamma_rstd.contiguous()
    dx = torch.empty_like(x)
    args = (dy.data_ptr(), x.data_ptr(), dx.data_ptr(), C, mean.data_ptr(), a.data_ptr(), b.data_ptr(), c.data_ptr())
    _native.parallel_slots(_native.fn("bn_rows_bwd_apply", x.dtype), args, M, threads)
    return dx, sum_dy_xhat, sum_dy


def _native_forward(x, lay, running_mean, running_var, weight, bias, training: bool, momentum: float, eps: float):
    """bn_fwd of _kernels.c: statistics, y and the running-statistics update in one call per thread."""
    dims = _native_dims(x, lay)
    C = dims[1]
    team = _native.team_threads(dims[0], x.numel()) if dims[3] else 0
    threads = 0 if team else _rows_split(x, dims)
    if threads:
        return _rows_forward(x, dims, threads, running_mean, running_var, weight, bias, training, momentum, eps)
    y = torch.empty_like(x)
    if training:
        mean, var = x.new_empty(C), x.new_empty(C)
        # The kernel updates buffers in place only when it can write them directly; else they are updated here.
        direct = [r is not None and r.dtype == x.dtype and r.is_contiguous() for r in (running_mean, running_var)]
        rm = running_mean.data_ptr() if direct[0] else None
        rv = running_var.data_ptr() if direct[1] else None
    else:
        (_, mean), (_, var) = _ptr(running_mean, x), _ptr(running_var, x)
        rm = rv = None
    rstd = x.new_empty(C)
    (w, _keep_w), (b, _keep_b) = _ptr(weight, x), _ptr(bias, x)
    args = (x.data_ptr(), y.data_ptr(), w, b, mean.data_ptr(), var.data_ptr(), rstd.data_ptr(), rm, rv)
    if team:  # rows split in one OpenMP team: each thread reads the rows the step's other ops wrote from its cache
        _native.fn("bn_rows_fwd_team", x.dtype)(*args, momentum, eps, int(training), dims[0], C, team)
    else:
        _native.parallel(_native.fn("bn_fwd", x.dtype), (*args, momentum, eps, int(training), *dims), C, x.numel())
    if training:
        m = x.numel() // C
        if running_mean is not None and rm is None:
            running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
        if running_var is not None and rv is None:
            unbiased = var * (m / (m - 1))
            running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
    return y, mean, rstd


def _native_backward(dy, x, lay, mean, rstd, weight, training: bool):
    """bn_bwd of _kernels.c: the sums and dx by the compact form in one call per thread."""
    dims = _native_dims(x, lay)
    C = dims[1]
    if lay == "planar":
        dy = dy.contiguous()
    elif not dy.is_contiguous(memory_format=_native.memory_format(x)):
        dy = dy.contiguous(memory_format=_native.memory_format(x))  # the kernels index dy like x
    team = _native.team_threads(dims[0], x.numel()) if dims[3] else 0
    threads = 0 if team else _rows_split(x, dims)
    if threads:
        return _rows_backward(dy, x, dims, threads, mean, rstd, weight, training)
    dx = torch.empty_like(x)
    dweight, dbias = x.new_empty(C), x.new_empty(C)
    w, _keep = _ptr(weight, x)
    args = (dy.data_ptr(), x.data_ptr(), dx.data_ptr(), w, mean.data_ptr(), rstd.data_ptr())
    if team:
        f = _native.fn("bn_rows_bwd_team", x.dtype)
        f(*args, dweight.data_ptr(), dbias.data_ptr(), int(training), dims[0], C, team)
        return dx, dweight, dbias
    _native.parallel(
        _native.fn("bn_bwd", x.dtype),
        (*args, dweight.data_ptr(), dbias.data_ptr(), int(training), *dims),
        C,
        x.numel(),
    )
    return dx, dweight, dbias


class BatchNormFunction(torch.autograd.Function):
    """y = γ·(x − μ)/√(σ² + ε) + β with batch (training) or given (eval) statistics; module docstring."""

    @staticmethod
    def forward(ctx, x, running_mean, running_var, weight, bias, training, momentum, eps):
        lay = None if _FUSED["enabled"] or _native.load() is None else _native.layout(x)
        ctx.layout = lay
        if lay is not None:
            y, mean, rstd = _native_forward(x, lay, running_mean, running_var, weight, bias, training, momentum, eps)
        elif training:
            y, mean, var, rstd = _call(0, x, weight, bias, eps)
            m = x.numel() // x.shape[1]
            # In place and outside autograd, exactly as torch's kernel updates its buffers.
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            if running_var is not None:
                unbiased = var * (m / (m - 1))
                running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
        else:
            mean = running_mean.to(x.dtype)
            y, rstd = _call(1, x, mean, running_var.to(x.dtype), weight, bias, eps)
        ctx.save_for_backward(x, mean, rstd, weight)
        ctx.training = training
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, mean, rstd, weight = ctx.saved_tensors
        if ctx.layout is not None and _native.load() is not None:
            dx, dweight, dbias = _native_backward(dy, x, ctx.layout, mean, rstd, weight, ctx.training)
        else:
            dx, dweight, dbias = _call(2, dy, x, mean, rstd, weight, ctx.training)
        need = ctx.needs_input_grad
        return (
            dx if need[0] else None,
            None,
            None,
            dweight if need[3] else None,
            dbias if need[4] else None,
            None,
            None,
            None,
        )


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
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        # (dim, size) rather than t.shape != (C,): Size against a tuple goes through torch's symbolic-shape
        # comparison, microseconds a call on an op that takes a few hundred of them on (256, 512)
        if t is not None and (t.dim() != 1 or t.shape[0] != C):
            raise OpInputError(f"batch_norm: {name} must have shape ({C},), got {tuple(t.shape)}")
    return BatchNormFunction.apply(input, running_mean, running_var, weight, bias, training, momentum, eps)
