"""2-D convolution (cross-correlation, as in every DL framework) with a hand-derived backward.

Course §2; ``docs/derivations.md`` §2. With im2col the convolution is one matrix product
per group: the columns X_col (N, Cin·kh·kw, L) hold every receptive field (L = Ho·Wo output positions),

    Y = W_mat · X_col + b                      W_mat: (Cout, Cin/groups·kh·kw) per group

and the gradients are the two other products of the same three matrices:

    dW = Σ_n dY_n · X_colₙᵀ                    (correlation of the input with the output gradient)
    dX = col2im(W_matᵀ · dY)                   (transposed convolution of the output gradient)
    db = Σ_{n, positions} dY

col2im adds each column entry back to the input pixel it was read from, so overlapping receptive fields
sum their contributions, and padding positions are dropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from nnlab.ops._common import IntOrPair, OpInputError, pair


def _im2col(x: torch.Tensor, k, stride, padding, dilation) -> torch.Tensor:
    """(N, C, H, W) -> columns (N, C·kh·kw, Ho·Wo): every receptive field as a column.

    A strided view of the padded input (no data moves until the final reshape), which on CPU is several
    times faster than ``F.unfold``'s per-sample loop.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = k, stride, padding, dilation
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    N, C, Hp, Wp = x.shape
    Ho, Wo = (Hp - dh * (kh - 1) - 1) // sh + 1, (Wp - dw * (kw - 1) - 1) // sw + 1
    sN, sC, sH, sW = x.stride()
    view = x.as_strided((N, C, kh, kw, Ho, Wo), (sN, sC, sH * dh, sW * dw, sH * sh, sW * sw))
    return view.reshape(N, C * kh * kw, Ho * Wo)


def _col2im(cols: torch.Tensor, shape, k, stride, padding, dilation) -> torch.Tensor:
    """Adjoint of ``_im2col``: add every column entry back onto the pixel it was read from.

    One strided add per kernel tap (kh·kw of them): overlapping receptive fields sum, padding is dropped.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = k, stride, padding, dilation
    N, C, H, W = shape
    Hp, Wp = H + 2 * ph, W + 2 * pw
    Ho, Wo = (Hp - dh * (kh - 1) - 1) // sh + 1, (Wp - dw * (kw - 1) - 1) // sw + 1
    taps = cols.view(N, C, kh, kw, Ho, Wo)
    dx = cols.new_zeros(N, C, Hp, Wp)
    for u in range(kh):
        for v in range(kw):
            r0, c0 = u * dh, v * dw
            dx[:, :, r0 : r0 + sh * (Ho - 1) + 1 : sh, c0 : c0 + sw * (Wo - 1) + 1 : sw] += taps[:, :, u, v]
    return dx[:, :, ph : ph + H, pw : pw + W] if (ph or pw) else dx


class Conv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        N, Cin, H, W = x.shape
        Cout, cin_g, kh, kw = weight.shape
        Ho = (H + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        Wo = (W + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        cols = _im2col(x, (kh, kw), stride, padding, dilation)  # (N, Cin·kh·kw, L)
        if groups == 1:
            # (Cout, K) @ (N, K, L) broadcasts to one GEMM per sample: (N, Cout, L), already NCHW order.
            y = torch.matmul(weight.reshape(Cout, -1), cols)
        else:
            cols_g = cols.view(N, groups, cin_g * kh * kw, -1)
            y = torch.matmul(weight.view(groups, Cout // groups, -1), cols_g).reshape(N, Cout, -1)
        if bias is not None:
            y += bias.view(1, Cout, 1)
        ctx.save_for_backward(cols, weight)
        ctx.conf = (x.shape, stride, padding, dilation, groups, bias is not None)
        return y.view(N, Cout, Ho, Wo)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        cols, weight = ctx.saved_tensors
        shape, stride, padding, dilation, groups, has_bias = ctx.conf
        N = shape[0]
        Cout, cin_g, kh, kw = weight.shape
        L = dy.shape[-2] * dy.shape[-1]
        dy = dy.reshape(N, Cout, L)
        dx = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            if groups == 1:
                dcols = torch.matmul(weight.reshape(Cout, -1).t(), dy)  # (N, K, L)
            else:
                w_g = weight.view(groups, Cout // groups, -1).transpose(1, 2)  # (g, K_g, Cout_g)
                dcols = torch.matmul(w_g, dy.view(N, groups, Cout // groups, L)).reshape(N, -1, L)
            dx = _col2im(dcols, shape, (kh, kw), stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            # Σ_n dY_n·X_nᵀ: one GEMM per sample, then the sum over the batch.
            if groups == 1:
                dweight = torch.bmm(dy, cols.transpose(1, 2)).sum(0).view_as(weight)
            else:
                dy_g = dy.view(N, groups, Cout // groups, L)
                cols_g = cols.view(N, groups, -1, L).transpose(2, 3)
                dweight = torch.matmul(dy_g, cols_g).sum(0).view_as(weight)
        if has_bias and ctx.needs_input_grad[2]:
            dbias = dy.sum((0, 2))
        return dx, dweight, dbias, None, None, None, None


def _same_padding(k: tuple[int, int], d: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(left, right) padding per dim that keeps the size at stride 1; torch puts the odd one on the right."""
    total = [di * (ki - 1) for ki, di in zip(k, d)]
    return tuple((t // 2, t - t // 2) for t in total)  # type: ignore[return-value]


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """2-D cross-correlation of (N, Cin, H, W) (or unbatched (Cin, H, W)) input with
    (Cout, Cin/groups, kh, kw) weights; drop-in for ``torch.nn.functional.conv2d``.

    y[n,o,i,j] = b[o] + Σ_{c,u,v} w[o,c,u,v]·x[n, g(o)·Cin/groups + c, i·s + u·d − p, j·s + v·d − p].
    Forward and backward are im2col matrix products (``docs/derivations.md`` §2); ``padding`` may be an
    int, a pair, ``"valid"`` or ``"same"`` (stride 1, as torch).
    """
    if input.dim() == 3:
        return conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    if input.dim() != 4:
        raise OpInputError(f"conv2d: expected (N, C, H, W) or (C, H, W) input, got {tuple(input.shape)}")
    if weight.dim() != 4:
        raise OpInputError(f"conv2d: expected a (Cout, Cin/groups, kh, kw) weight, got {tuple(weight.shape)}")
    Cout, cin_g, kh, kw = weight.shape
    if groups <= 0 or input.shape[1] != cin_g * groups or Cout % groups:
        raise OpInputError(
            f"conv2d: input has {input.shape[1]} channels but weight {tuple(weight.shape)} with "
            f"groups={groups} "
            f"expects {cin_g * groups} (and Cout divisible by groups)"
        )
    if bias is not None and bias.shape != (Cout,):
        raise OpInputError(f"conv2d: bias must have shape ({Cout},), got {tuple(bias.shape)}")
    s, d = pair(stride, "stride"), pair(dilation, "dilation")
    if min(s) <= 0 or min(d) <= 0:
        raise OpInputError(f"conv2d: stride and dilation must be positive, got stride={s}, dilation={d}")
    if isinstance(padding, str):
        if padding == "valid":
            p = (0, 0)
        elif padding == "same":
            if s != (1, 1):
                raise OpInputError("conv2d: padding='same' is only supported with stride 1 (as in torch)")
            (t, b_), (l_, r) = _same_padding((kh, kw), d)
            if t != b_ or l_ != r:
                # Asymmetric: pad the extra row/column explicitly, the rest symmetrically in the op.
                input = F.pad(input, (0, r - l_, 0, b_ - t))
            p = (t, l_)
        else:
            raise OpInputError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        p = pair(padding, "padding")
        if min(p) < 0:
            raise OpInputError(f"conv2d: padding must be non-negative, got {p}")
    H, W = input.shape[-2:]
    if H + 2 * p[0] < d[0] * (kh - 1) + 1 or W + 2 * p[1] < d[1] * (kw - 1) + 1:
        raise OpInputError(
            f"conv2d: padded input {(H + 2 * p[0], W + 2 * p[1])} is smaller than the dilated kernel "
            f"{(d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1)}"
        )
    return Conv2dFunction.apply(input, weight, bias, s, p, d, groups)
