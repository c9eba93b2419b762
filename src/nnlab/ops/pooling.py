"""Pooling variants with hand-derived backward passes (course §3; ``docs/derivations.md`` §3).

Every 2-D pool here reduces each window w = (w_1, …, w_K) (K = kh·kw, row-major inside the window) of
an (N, C, H, W) input to one value; its backward computes ∂y/∂w_j per window and adds it back onto the
input positions (``Windows.scatter``: overlapping windows sum, padding is dropped).

    max         y = max_j w_j                   ∂y/∂w_j = [j = first argmax]        (§3.1)
    avg         y = Σ_j w_j / D                 ∂y/∂w_j = 1/D                       (§3.2)
    lp          y = (Σ_j |w_j|^p)^(1/p)         ∂y/∂w_j = sign(w_j)·(|w_j|/y)^(p−1)  (§3.3)
    stochastic  train: y = w_J, J ~ p_j = w_j/Σw;  eval: y = Σ_j w_j²/Σ_j w_j       (§3.4)
    mixed       y = α·max + (1−α)·avg                                              (§3.5)
    gated       y = α·max + (1−α)·avg,  α = σ(ωᵀw)                                 (§3.5)
    k-max (1-D) the k largest values in their original order                       (§3.6)
    global      avg / max over all of H×W                                          (§3.7)

Max, avg and Lp pooling over tiled windows (stride = kernel, no padding), the ConvNet's case, run as the native
loops of ``_kernels.c`` on CPU float maps (contiguous or channels-last); the torch code here is the general case
and the fallback without a C compiler (``NNLAB_OPS_KERNEL=torch``).
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from nnlab.ops import _native
from nnlab.ops._common import IntOrPair, OpInputError, Windows, check_dims


def _batched(input: torch.Tensor, op: str) -> tuple[torch.Tensor, bool]:
    """Accept (N, C, H, W) and unbatched (C, H, W), as torch's pools do."""
    check_dims(input, (3, 4), op, "(N, C, H, W) or (C, H, W)")
    return (input.unsqueeze(0), True) if input.dim() == 3 else (input, False)


def _onehot_scatter(idx: torch.Tensor, values: torch.Tensor, kk: int) -> torch.Tensor:
    """(…, K) tensor with ``values`` at position ``idx`` of the last dim and zeros elsewhere."""
    out = values.new_zeros(*values.shape, kk)
    return out.scatter_(-1, idx.unsqueeze(-1), values.unsqueeze(-1))


# Tiled windows (stride = kernel, no padding/dilation) of a contiguous or channels-last float map go through the
# native loops of _kernels.c: one read of x and one write of y (and of dx in the backward), where the torch
# code below materialises the (N, C, Ho, Wo, K) window tensor and the one-hot gradient.


def _native_layout(x: torch.Tensor, win: Windows) -> str | None:
    if not win.tiled or _native.load() is None or x.dim() != 4 or max(win.k) > 15:
        return None
    return _native.layout(x)


def _pool_dims(shape, win: Windows, lay: str) -> tuple[tuple[int, ...], int]:
    """The kernels' (H, W, C, rows, kh, kw, Ho, Wo) and the number of work items (output rows)."""
    N, C, H, W = shape
    (kh, kw), (Ho, Wo) = win.k, win.out
    if lay == "planar":
        return (H, W, 1, 0, kh, kw, Ho, Wo), N * C * Ho
    return (H, W, C, 1, kh, kw, Ho, Wo), N * Ho


def _pool_out(x: torch.Tensor, win: Windows, lay: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    fmt = torch.contiguous_format if lay == "planar" else torch.channels_last
    return torch.empty(*x.shape[:2], *win.out, dtype=dtype or x.dtype, memory_format=fmt)


def _pool_grad_in(dy: torch.Tensor, shape, win: Windows, lay: str) -> tuple[torch.Tensor, torch.Tensor]:
    """dy in the layout the kernels index, and dx to write (zeros where no window covers the input)."""
    fmt = torch.contiguous_format if lay == "planar" else torch.channels_last
    covered = (win.out[0] * win.k[0], win.out[1] * win.k[1]) == tuple(shape[-2:])
    dx = torch.empty(*shape, dtype=dy.dtype, memory_format=fmt)
    return dy.contiguous(memory_format=fmt), dx if covered else dx.zero_()


# --------------------------------------------------------------------------------------------- max / avg


class MaxPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, win):
        ctx.layout = lay = _native_layout(x, win)
        if lay is not None:  # the kernel records the first maximum too (§3.1), as a uint8 window position
            y, idx = _pool_out(x, win, lay), _pool_out(x, win, lay, torch.uint8)
            dims, items = _pool_dims(x.shape, win, lay)
            fwd = _native.fn("maxpool_fwd", x.dtype)
            _native.parallel(fwd, (x.data_ptr(), y.data_ptr(), idx.data_ptr(), *dims), items, x.numel())
        else:
            # torch.max along a dim returns the FIRST maximal index: the tie convention of §3.1 (NaN wins).
            y, idx = win.gather(x, fill=-math.inf).max(-1)
        ctx.win, ctx.shape = win, x.shape
        ctx.save_for_backward(idx)
        ctx.mark_non_differentiable(idx)
        return y, idx

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, _didx):
        (idx,) = ctx.saved_tensors
        if ctx.layout is not None:
            dy, dx = _pool_grad_in(dy, ctx.shape, ctx.win, ctx.layout)
            dims, items = _pool_dims(ctx.shape, ctx.win, ctx.layout)
            bwd = _native.fn("maxpool_bwd", dy.dtype)
            _native.parallel(bwd, (dy.data_ptr(), idx.data_ptr(), dx.data_ptr(), *dims), items, dx.numel())
            return dx, None
        return ctx.win.scatter(_onehot_scatter(idx, dy, ctx.win.kk)), None


def max_pool2d(
    input: torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """Max over each window; drop-in for ``torch.nn.functional.max_pool2d``.

    The gradient goes to the first maximal element of each window in row-major order (ties), which is
    also torch's CPU convention (``docs/derivations.md`` §3.1). With ``return_indices`` also returns the
    flat H·W index of each maximum, as torch does (for ``max_unpool2d``).
    """
    x, unbatched = _batched(input, "max_pool2d")
    win = Windows(x.shape, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    y, idx = MaxPool2dFunction.apply(x, win)
    if return_indices:
        (_, kw), (sh, sw), (ph, pw), (dh, dw) = win.k, win.s, win.p, win.d
        idx = idx.long()
        Ho, Wo = win.out
        rows = (torch.arange(Ho, device=x.device) * sh - ph).view(Ho, 1) + (idx // kw) * dh
        cols = (torch.arange(Wo, device=x.device) * sw - pw).view(1, Wo) + (idx % kw) * dw
        flat = rows * x.shape[-1] + cols
        return (y.squeeze(0), flat.squeeze(0)) if unbatched else (y, flat)
    return y.squeeze(0) if unbatched else y


class AvgPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, win, divisor):
        ctx.win, ctx.divisor, ctx.shape = win, divisor, x.shape
        ctx.layout = lay = _native_layout(x, win) if isinstance(divisor, float) else None
        if lay is not None:
            y = _pool_out(x, win, lay)
            dims, items = _pool_dims(x.shape, win, lay)
            _native.parallel(
                _native.fn("avgpool_fwd", x.dtype), (x.data_ptr(), y.data_ptr(), divisor, *dims), items, x.numel()
            )
            return y
        if win.tiled:
            y = win.tiles(x).sum((3, 5))  # copy-free: non-overlapping windows are a view of x
        else:
            y = win.gather(x, fill=0.0).sum(-1)
        ctx.win, ctx.divisor = win, divisor
        return y.div_(divisor)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        if ctx.layout is not None:
            dy, dx = _pool_grad_in(dy, ctx.shape, ctx.win, ctx.layout)
            dims, items = _pool_dims(ctx.shape, ctx.win, ctx.layout)
            args = (dy.data_ptr(), dx.data_ptr(), ctx.divisor, *dims)
            _native.parallel(_native.fn("avgpool_bwd", dy.dtype), args, items, dx.numel())
            return dx, None, None
        g = (dy / ctx.divisor).unsqueeze(-1).expand(*dy.shape, ctx.win.kk)
        return ctx.win.scatter(g), None, None


def avg_pool2d(
    input: torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> torch.Tensor:
    """Mean over each window; drop-in for ``torch.nn.functional.avg_pool2d``.

    y = Σ_window x / D with D = ``divisor_override``, else the number of window positions inside the
    input (plus the symmetric padding if ``count_include_pad``; ceil-mode overhang never counts), as torch.
    ∂y/∂x = 1/D for every element of the window (``docs/derivations.md`` §3.2).
    """
    x, unbatched = _batched(input, "avg_pool2d")
    win = Windows(x.shape, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    if divisor_override is not None:
        if divisor_override <= 0:
            raise OpInputError(f"avg_pool2d: divisor_override must be positive, got {divisor_override}")
        divisor: float | torch.Tensor = float(divisor_override)
    elif win.tiled:
        divisor = float(win.kk)
    else:
        divisor = win.count(count_include_pad, x.device, x.dtype)
    y = AvgPool2dFunction.apply(x, win, divisor)
    return y.squeeze(0) if unbatched else y


# -------------------------------------------------------------------------------------------------- Lp


class LpPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p, win, pv):
        ctx.win, ctx.pv, ctx.shape = win, pv, x.shape
        ctx.layout = lay = _native_layout(x, win)
        if lay is not None:
            y = _pool_out(x, win, lay)
            dims, items = _pool_dims(x.shape, win, lay)
            _native.parallel(
                _native.fn("lppool_fwd", x.dtype), (x.data_ptr(), y.data_ptr(), pv, *dims), items, x.numel()
            )
            ctx.save_for_backward(x, p, y)
            return y
        # p (a 0-d tensor) is what receives the gradient; pv = float(p) is used in the powers, because a
        # Python exponent lets torch pick its fast kernels (x·x for 2, sqrt for 1/2) instead of exp∘log.
        w = win.gather(x, fill=0.0)
        a = w.abs()
        # y = m·(Σ (|w|/m)^p)^(1/p) with m = max|w|: same value, but no overflow/underflow for large p.
        m = a.amax(-1, keepdim=True)
        r = torch.where(m > 0, a / m, torch.zeros_like(a))
        s = r.pow(pv).sum(-1)
        y = m.squeeze(-1) * s.pow(1.0 / pv)
        ctx.win, ctx.pv = win, pv
        ctx.save_for_backward(w, p, y, s, r)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        if ctx.layout is not None:
            x, p, y = ctx.saved_tensors
            dx = dp = None
            if ctx.needs_input_grad[0]:
                dy_l, dx = _pool_grad_in(dy, ctx.shape, ctx.win, ctx.layout)
                dims, items = _pool_dims(ctx.shape, ctx.win, ctx.layout)
                args = (dy_l.data_ptr(), x.data_ptr(), y.data_ptr(), dx.data_ptr(), ctx.pv, *dims)
                _native.parallel(_native.fn("lppool_bwd", x.dtype), args, items, dx.numel())
            if ctx.needs_input_grad[1]:  # learnable p: the torch formula below, on the windows rebuilt
                w = ctx.win.gather(x, fill=0.0)
                a = w.abs()
                m = a.amax(-1, keepdim=True)
                r = torch.where(m > 0, a / m, torch.zeros_like(a))
                dp = _lp_dp(dy, p, y, r.pow(ctx.pv).sum(-1), r, ctx.pv)
            return dx, dp, None, None
        w, p, y, s, r = ctx.saved_tensors
        dx = dp = None
        pos = y > 0
        if ctx.needs_input_grad[0]:
            # ∂y/∂w_j = sign(w_j)·(|w_j|/y)^(p−1); |w_j|/y ≤ 1, so this is stable for any p > 0.
            # Zero entries get 0 (for p < 1 the derivative there is unbounded; 0 is the subgradient choice).
            y_safe = y.clamp_min(torch.finfo(y.dtype).tiny).unsqueeze(-1)
            ratio = torch.where(pos.unsqueeze(-1), w.abs() / y_safe, 0.0)
            local = torch.where(ratio > 0, ratio.pow(ctx.pv - 1), 0.0) * w.sign()
            dx = ctx.win.scatter(local * dy.unsqueeze(-1))
        if ctx.needs_input_grad[1]:
            dp = _lp_dp(dy, p, y, s, r, ctx.pv)
        return dx, dp, None, None


def _lp_dp(dy, p, y, s, r, pv: float) -> torch.Tensor:
    """∂L/∂p = Σ dy·y·(−log S/p² + Σ_j r_j^p log r_j /(p·S)) with r = |w|/max|w|, S = Σ r^p (§3.3)."""
    pos = y > 0
    log_r = r.clamp_min(torch.finfo(r.dtype).tiny).log()
    rp_log_r = torch.where(r > 0, r.pow(pv) * log_r, 0.0).sum(-1)
    s_safe = torch.where(pos, s, 1.0)
    local_p = torch.where(pos, y * (-s_safe.log() / p**2 + rp_log_r / (p * s_safe)), 0.0)
    return (dy * local_p).sum().reshape(p.shape)


def lp_pool2d(
    input: torch.Tensor,
    norm_type: float | torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """Power-average (Lp) pooling, y = (Σ_window |x|^p)^(1/p) (Sermanet et al. 2012); signature of
    ``torch.nn.functional.lp_pool2d``.

    ``norm_type`` (p > 0) may be a float or a 0-d tensor that requires grad (learnable p, §3.3).
    p = 1 is sum pooling, p → ∞ tends to max pooling. Equals torch's result wherever torch's is the
    p-norm (non-negative input, or even integer p); torch computes Σ xᵖ without |·|, which for odd p on
    negative input is not a norm.
    """
    x, unbatched = _batched(input, "lp_pool2d")
    p = norm_type if isinstance(norm_type, torch.Tensor) else torch.tensor(float(norm_type), dtype=x.dtype)
    if p.numel() != 1:
        raise OpInputError(f"lp_pool2d: norm_type must be a scalar, got shape {tuple(p.shape)}")
    pv = float(p.detach())
    if not (pv > 0 and math.isfinite(pv)):
        raise OpInputError(f"lp_pool2d: norm_type p must be a finite number > 0, got {pv}")
    win = Windows(x.shape, kernel_size, stride, 0, 1, ceil_mode, "lp_pool2d")
    y = LpPool2dFunction.apply(x, p.to(device=x.device, dtype=x.dtype).reshape(()), win, pv)
    return y.squeeze(0) if unbatched else y


# ------------------------------------------------------------------------------------------ stochastic


class StochasticPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, win, training, generator):
        w = win.gather(x, fill=0.0)
        ctx.win, ctx.training = win, training
        if training:
            # Inverse-CDF sampling of J with P(J = j) = w_j / Σw, all windows at once.
            cum = w.cumsum(-1)
            total = cum[..., -1]
            u = torch.rand(total.shape, generator=generator, device=x.device, dtype=x.dtype) * total
            # Keep u strictly below the total, so rounding can never pick a trailing zero-probability entry.
            u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
            idx = (cum <= u.unsqueeze(-1)).sum(-1).clamp_max_(win.kk - 1)
            y = w.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
            ctx.save_for_backward(idx)
        else:
            # Eval: the expectation Σ p_j w_j = Σ w_j² / Σ w_j (0 for an all-zero window).
            s = w.sum(-1)
            pos = s > 0
            s_safe = torch.where(pos, s, 1.0)
            y = torch.where(pos, (w * w).sum(-1) / s_safe, 0.0)
            ctx.save_for_backward(w, y, s_safe, pos)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        if ctx.training:
            (idx,) = ctx.saved_tensors
            # The sample J is held fixed: y = w_J, so the gradient routes to the sampled element only.
            return ctx.win.scatter(_onehot_scatter(idx, dy, ctx.win.kk)), None, None, None
        w, y, s, pos = ctx.saved_tensors
        # ∂/∂w_j (Σw²/Σw) = (2·w_j − y) / Σw.
        local = (2 * w - y.unsqueeze(-1)) / s.unsqueeze(-1)
        local = torch.where(pos.unsqueeze(-1), local, 0.0)
        return ctx.win.scatter(local * dy.unsqueeze(-1)), None, None, None


def stochastic_pool2d(
    input: torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Stochastic pooling (Zeiler & Fergus 2013) of non-negative activations (e.g. after ReLU).

    Training: each window outputs one of its elements a_J, drawn with P(J = j) = a_j / Σ a (an all-zero
    window outputs 0). Eval: the probability-weighted average Σ a_j² / Σ a. Gradients: §3.4.
    """
    x, unbatched = _batched(input, "stochastic_pool2d")
    if bool((x < 0).any()):
        raise OpInputError(
            "stochastic_pool2d: input must be non-negative (probabilities are a_i / Σa); apply ReLU before it"
        )
    win = Windows(x.shape, kernel_size, stride, 0, 1, False, "stochastic_pool2d")
    y = StochasticPool2dFunction.apply(x, win, training, generator)
    return y.squeeze(0) if unbatched else y


# ----------------------------------------------------------------------------------------- mixed/gated


def _broadcast_channel(t: torch.Tensor, C: int, name: str, trailing: int) -> torch.Tensor:
    """A scalar or per-channel parameter as (1, C|1, 1, 1[, K]), to broadcast over (N, C, Ho, Wo[, K])."""
    lead = t.shape[: t.dim() - trailing]
    if lead not in ((), (1,), (C,)):
        raise OpInputError(
            f"{name}: expected a parameter shared by all channels or one per channel ({C}), got shape {tuple(t.shape)}"
        )
    c = 1 if lead in ((), (1,)) else C
    return t.reshape(1, c, 1, 1, *t.shape[t.dim() - trailing :])


def _reduce_to(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient (1, C|1, 1, 1[, K]) over the broadcast dims back to the parameter's shape."""
    dims = [0, 2, 3]
    keep_c = g.shape[1] != 1
    out = g.sum(dims)
    if not keep_c:
        out = out.sum(0)
    return out.reshape(shape)


class MixedPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gate, win, gated):
        w = win.gather(x, fill=0.0)
        mx, idx = w.max(-1)
        avg = w.mean(-1)
        C = x.shape[1]
        if gated:
            omega = _broadcast_channel(gate, C, "gated_pool2d", trailing=1)  # (1, C|1, 1, 1, K)
            alpha = torch.sigmoid((w * omega).sum(-1))
        else:
            alpha = _broadcast_channel(gate, C, "mixed_pool2d", trailing=0)
        y = alpha * mx + (1 - alpha) * avg
        ctx.win, ctx.gated, ctx.gate_shape = win, gated, gate.shape
        ctx.save_for_backward(w if gated else None, idx, mx - avg, alpha, gate)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        w, idx, diff, alpha, gate = ctx.saved_tensors
        win, kk = ctx.win, ctx.win.kk
        dx = dgate = None
        if ctx.gated:
            # α = σ(ωᵀw) depends on the window too: ∂α/∂w_j = α(1−α)·ω_j, ∂α/∂ω_j = α(1−α)·w_j.
            dz = dy * diff * alpha * (1 - alpha)  # ∂L/∂(ωᵀw)
            omega = _broadcast_channel(gate, dy.shape[1], "gated_pool2d", trailing=1)
        if ctx.needs_input_grad[0]:
            a = alpha.expand_as(dy)
            local = _onehot_scatter(idx, a * dy, kk)
            local += ((1 - a) * dy / kk).unsqueeze(-1)
            if ctx.gated:
                local += dz.unsqueeze(-1) * omega
            dx = win.scatter(local)
        if ctx.needs_input_grad[1]:
            if ctx.gated:
                g = (dz.unsqueeze(-1) * w).sum((0, 2, 3), keepdim=True)  # (1, C, 1, 1, K)
                dgate = g.sum(1) if gate.dim() == 1 else g
                dgate = dgate.reshape(ctx.gate_shape)
            else:
                g = (dy * diff).sum((0, 2, 3), keepdim=True)  # ∂y/∂α = max − avg
                dgate = (g.sum() if gate.numel() == 1 and dy.shape[1] != 1 else g).reshape(ctx.gate_shape)
        return dx, dgate, None, None


def mixed_pool2d(
    input: torch.Tensor,
    alpha: float | torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
) -> torch.Tensor:
    """Mixed max-average pooling (Lee, Gallagher & Tu 2016): y = α·max + (1−α)·avg per window.

    ``alpha`` is a scalar (one per layer) or a (C,) tensor (one per channel), usually in [0, 1] and learnable;
    ∂y/∂α = max − avg (``docs/derivations.md`` §3.5).
    """
    x, unbatched = _batched(input, "mixed_pool2d")
    if not isinstance(alpha, torch.Tensor):
        alpha = torch.tensor(float(alpha), dtype=x.dtype, device=x.device)
    a = alpha
    _broadcast_channel(a, x.shape[1], "mixed_pool2d", trailing=0)
    win = Windows(x.shape, kernel_size, stride, 0, 1, False, "mixed_pool2d")
    y = MixedPool2dFunction.apply(x, a, win, False)
    return y.squeeze(0) if unbatched else y


def gated_pool2d(
    input: torch.Tensor,
    gate_weight: torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
) -> torch.Tensor:
    """Gated max-average pooling (Lee, Gallagher & Tu 2016): y = α·max + (1−α)·avg with α = σ(ωᵀw),
    w the window's values in row-major order.

    ``gate_weight`` ω is (kh·kw,) (one gate per layer) or (C, kh·kw) (one per channel); §3.5.
    """
    x, unbatched = _batched(input, "gated_pool2d")
    win = Windows(x.shape, kernel_size, stride, 0, 1, False, "gated_pool2d")
    if gate_weight.dim() == 0 or gate_weight.shape[-1] != win.kk:
        raise OpInputError(
            f"gated_pool2d: gate_weight must be ({win.kk},) or (C, {win.kk}) for a {win.k} window, "
            f"got shape {tuple(gate_weight.shape)}"
        )
    _broadcast_channel(gate_weight, x.shape[1], "gated_pool2d", trailing=1)
    y = MixedPool2dFunction.apply(x, gate_weight, win, True)
    return y.squeeze(0) if unbatched else y


# ---------------------------------------------------------------------------------------------- k-max


class KMaxPool1dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k, dim):
        # A stable descending sort ranks equal values by position, so ties keep the earliest ones;
        # re-sorting the k chosen positions restores the original order (Kalchbrenner et al. 2014).
        order = torch.sort(x, dim=dim, descending=True, stable=True).indices.narrow(dim, 0, k)
        idx = order.sort(dim=dim).values
        ctx.dim, ctx.shape = dim, x.shape
        ctx.save_for_backward(idx)
        return x.gather(dim, idx)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        (idx,) = ctx.saved_tensors
        return dy.new_zeros(ctx.shape).scatter_(ctx.dim, idx, dy), None, None


def kmax_pool1d(input: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """k-max pooling (Kalchbrenner, Grefenstette & Blunsom 2014): the k largest values along ``dim``
    (default: the last, L of (N, C, L)) in their original order; ties prefer earlier positions.
    The gradient goes to the k selected positions (§3.6)."""
    if input.dim() == 0:
        raise OpInputError("kmax_pool1d: expected an input with a sequence dimension, got a scalar")
    d = dim % input.dim()
    L = input.shape[d]
    if not isinstance(k, int) or k <= 0 or k > L:
        raise OpInputError(f"kmax_pool1d: k must be an int in [1, {L}] (the length along dim {dim}), got {k}")
    return KMaxPool1dFunction.apply(input, k, d)


# --------------------------------------------------------------------------------------------- global


class GlobalMaxPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y, idx = x.flatten(-2).max(-1)  # first maximum in row-major order, as max_pool2d
        ctx.shape = x.shape
        ctx.save_for_backward(idx)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        (idx,) = ctx.saved_tensors
        N, C, H, W = ctx.shape
        return _onehot_scatter(idx, dy, H * W).view(N, C, H, W)


class GlobalAvgPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.mean((-2, -1))

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        N, C, H, W = ctx.shape
        return (dy / (H * W)).view(N, C, 1, 1).expand(N, C, H, W).contiguous()


def global_avg_pool2d(input: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Mean over all of H×W: (N, C, H, W) -> (N, C) (or (N, C, 1, 1) with ``keepdim``); ∂y/∂x = 1/(H·W)."""
    check_dims(input, (4,), "global_avg_pool2d", "(N, C, H, W)")
    y = GlobalAvgPool2dFunction.apply(input)
    return y[..., None, None] if keepdim else y


def global_max_pool2d(input: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Max over all of H×W: (N, C, H, W) -> (N, C) (or (N, C, 1, 1)); gradient to the first maximum."""
    check_dims(input, (4,), "global_max_pool2d", "(N, C, H, W)")
    y = GlobalMaxPool2dFunction.apply(input)
    return y[..., None, None] if keepdim else y


__all__ = [
    "avg_pool2d",
    "gated_pool2d",
    "global_avg_pool2d",
    "global_max_pool2d",
    "kmax_pool1d",
    "lp_pool2d",
    "max_pool2d",
    "mixed_pool2d",
    "stochastic_pool2d",
]
