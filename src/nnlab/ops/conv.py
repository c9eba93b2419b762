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

Two implementations of these products: with stride 1 along H and one group (the common case) only the kw
horizontal taps are unrolled and the kh vertical taps become row shifts of one matrix (``_RowShiftConv``,
derivations §2.3), which avoids the kh·kw-fold im2col copy; otherwise full im2col (``_im2col``/``_col2im``).

On CPU in float32 with stride 1, one group, padding within the kernel's reach (p ≤ d·(k − 1)) and an output of at
least half the input's pixels (every 'same' layer, and 'valid' ones with kernels small against the map), the same
three products run as direct convolutions in C (``_NativeConv``,
``_conv_kernels.c``): no column matrix at all, each output tile of pixels × channels kept in vector registers
while it sums over taps and input channels of a padded NHWC copy of x. dX is the forward convolution of dY
padded by d·(k − 1) − p with the kernel flipped and its channel axes swapped (the transposed convolution above,
written as a correlation), and dW the sum over pixels of x·dY per tap. ``NNLAB_OPS_KERNEL=torch`` or no C
compiler keeps the matrix-product code.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from nnlab.ops import _native
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


def _row_taps(x: torch.Tensor, kw: int, sw: int, padding, dw: int):
    """NHWC "row columns" of the padded input: X_row[(n, r, j), (v, c)] = x_pad[n, c, r, j·sw + v·dw],
    shape (N·Hp·Wo, kw·C). Only the kw horizontal taps are unrolled (kw times the input, not kh·kw)."""
    ph, pw = padding
    xp = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)  # (N, Hp, Wp, C) view, no copy yet
    N, Hp, Wp, C = xp.shape
    Wo = (Wp - dw * (kw - 1) - 1) // sw + 1
    sN, sH, sW, sC = xp.stride()
    return xp.as_strided((N, Hp, Wo, kw, C), (sN, sH, sW * sw, sW * dw, sC)).reshape(N * Hp * Wo, kw * C)


class _RowShiftConv:
    """Stride 1 along H, one group: the vertical taps are row shifts of X_row, so the convolution is kh
    matrix products accumulated in place (derivations §2.3):

        Y_wide[(n, i, j), o] = Σ_u X_row[(n, i + u·dh, j), :] · W_u[:, o],   W_u[(v, c), o] = w[o, c, u, v]

    Rows of Y_wide with i ≥ Ho (they mix two images) are computed and discarded: Hp/Ho extra work, no copies.
    """

    @staticmethod
    def forward(x, weight, bias, stride, padding, dilation):
        N, C, H, W = x.shape
        O, _, kh, kw = weight.shape
        (_, sw), (ph, _), (dh, dw) = stride, padding, dilation
        Hp = H + 2 * ph
        Ho = Hp - dh * (kh - 1)
        xrow = _row_taps(x, kw, sw, padding, dw)
        Wo = xrow.shape[0] // (N * Hp)
        w_u = weight.permute(2, 3, 1, 0).reshape(kh, kw * C, O)
        R = N * Hp * Wo - (kh - 1) * dh * Wo  # rows for which every vertical tap stays inside the tensor
        out = xrow.new_empty(N * Hp * Wo, O)
        torch.mm(xrow[:R], w_u[0], out=out[:R])
        for u in range(1, kh):
            out[:R].addmm_(xrow[u * dh * Wo : u * dh * Wo + R], w_u[u])
        y_view = out.view(N, Hp, Wo, O)[:, :Ho].permute(0, 3, 1, 2)
        # Write in F.conv2d's memory format (callers may .view() it), adding the bias in the same pass.
        y = torch.empty((N, O, Ho, Wo), dtype=x.dtype, device=x.device, memory_format=_out_format(x, weight))
        if bias is None:
            y.copy_(y_view)
        else:
            torch.add(y_view, bias.view(1, O, 1, 1), out=y)
        return y, xrow

    @staticmethod
    def backward(dy, xrow, weight, x_shape, stride, padding, dilation, need_x, need_w):
        N, C, H, W = x_shape
        O, _, kh, kw = weight.shape
        (_, sw), (ph, pw), (dh, dw) = stride, padding, dilation
        Hp, Wp = H + 2 * ph, W + 2 * pw
        Ho, Wo = dy.shape[-2:]
        # dY in the same wide row layout; its discarded rows get zero gradient.
        dy_w = dy.new_empty(N, Hp, Wo, O)
        dy_w[:, :Ho] = dy.permute(0, 2, 3, 1)
        dy_w[:, Ho:] = 0
        dy_f = dy_w.view(N * Hp * Wo, O)
        R = N * Hp * Wo - (kh - 1) * dh * Wo
        w_u = weight.permute(2, 3, 1, 0).reshape(kh, kw * C, O)
        dx = dweight = None
        if need_w:
            # dW_u = X_row(shifted by u)ᵀ · dY: the correlation of the input with the output gradient.
            dw_u = dy.new_empty(kh, kw * C, O)
            for u in range(kh):
                torch.mm(xrow[u * dh * Wo : u * dh * Wo + R].t(), dy_f[:R], out=dw_u[u])
            dweight = dw_u.view(kh, kw, C, O).permute(3, 2, 0, 1).contiguous()
        if need_x:
            # dX_row(shifted by u) += dY · W_uᵀ, then the horizontal taps are added back (col2im along W):
            # together the transposed convolution of dY with w.
            # The u = 0 product overwrites rows [0, R); only the rows past R start from zero.
            dxrow = dy.new_empty(N * Hp * Wo, kw * C)
            torch.mm(dy_f[:R], w_u[0].t(), out=dxrow[:R])
            dxrow[R:] = 0
            for u in range(1, kh):
                dxrow[u * dh * Wo : u * dh * Wo + R].addmm_(dy_f[:R], w_u[u].t())
            taps = dxrow.view(N, Hp, Wo, kw, C)
            dxp = dy.new_zeros(N, Hp, Wp, C)
            # The first tap of a stride-1 row covers columns [0, Wo) alone: a copy, not an add onto zeros.
            first = dxp[:, :, : sw * (Wo - 1) + 1 : sw]
            first.copy_(taps[:, :, :, 0])
            for v in range(1, kw):
                dxp[:, :, v * dw : v * dw + sw * (Wo - 1) + 1 : sw] += taps[:, :, :, v]
            dx = dxp[:, ph : ph + H, pw : pw + W].permute(0, 3, 1, 2)
        return dx, dweight


# Input pixels per output pixel above which dX's padded transposed convolution is left to the matrix products:
# 'same' layers have 1, a 'valid' 3 × 3 on 8 × 8 maps 1.8, a 'valid' 5 × 5 on 28 × 28 1.4.
_MAX_DX_EXCESS = 2


def _native_takes(x, weight, bias, stride, padding, dilation, groups) -> bool:
    """Whether ``_NativeConv`` computes this convolution (else the matrix-product code does)."""
    if stride != (1, 1) or groups != 1 or x.numel() == 0 or weight.numel() == 0:
        return False
    # The kernels read raw CPU pointers: anything else (mixed devices included) gets the torch code and its errors.
    if any(t is not None and (t.dtype != torch.float32 or t.device.type != "cpu") for t in (x, weight, bias)):
        return False
    kh, kw = weight.shape[-2:]
    # Wider padding would crop dY for the transposed convolution; such layers keep the matrix products.
    if padding[0] > dilation[0] * (kh - 1) or padding[1] > dilation[1] * (kw - 1):
        return False
    # dX sums every tap of dY padded by d·(k − 1) − p for each of the H·W input pixels, where Ho·Wo output pixels
    # carry all of the gradient: a kernel much larger than its padding (a 3 × 300 kernel over a 50 × 300 map gives
    # one output column) would multiply mostly zeros, in a padded dY hundreds of times dY's size.
    H, W = x.shape[-2:]
    Ho, Wo = H + 2 * padding[0] - dilation[0] * (kh - 1), W + 2 * padding[1] - dilation[1] * (kw - 1)
    if H * W > _MAX_DX_EXCESS * Ho * Wo:
        return False
    return _native.load_conv() is not None


def _whole_vectors(n: int) -> int:
    """n rounded up to the conv kernels' vector width (channels of their buffers, pixels of their row scratch)."""
    lanes = _native.conv_lanes()
    return -(-n // lanes) * lanes


_scratch = threading.local()


def _scratch_buffer(numel: int) -> torch.Tensor:
    """``numel`` float32 values of a buffer kept per thread for dY's padded copy, which lives only inside one
    backward (autograd runs a thread's backward functions one at a time, and nothing of it is returned).

    A fresh 10-20 MB buffer per backward was handed back to the OS on free and page-faulted in again: ≈ 2 000 faults
    and 5 ms of the benchmark layer's 85 ms step. Kept, it costs the largest layer's padded dY per thread."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.numel() < numel:
        buf = _scratch.buf = torch.empty(numel, dtype=torch.float32)
    return buf[:numel]


def _to_padded_nhwc(t: torch.Tensor, pad: tuple[int, int], channels: int, out: torch.Tensor | None = None):
    """(N, C, H, W) of any strides -> (N, H + 2·pt, W + 2·pl, channels) contiguous: zero border (cropped where a
    pad is negative), zero channels past C, into ``out`` (flat, every element written) or a new tensor. One pass
    in C, split by rows."""
    N, C, H, W = t.shape
    pt, pl = pad
    Hp, Wp = H + 2 * pt, W + 2 * pl
    out = t.new_empty(N, Hp, Wp, channels) if out is None else out.view(N, Hp, Wp, channels)
    args = (t.data_ptr(), *t.stride(), C, H, W, out.data_ptr(), Hp, Wp, channels, pt, pl)
    threads = _native.threads_for(N * Hp, out.numel())
    _native.parallel_shared(_native.load_conv().pad_nhwc_f32, args, N * Hp, threads)
    return out


def _conv_rows(xp, channels, w_packed, bias_packed, out, k, dilation) -> None:
    """out (N, O, Ho, Wo, any strides) = the stride-1 correlation of the padded NHWC ``xp`` (its first
    ``channels`` channels) with ``w_packed`` (kh, kw, channels, Op) plus ``bias_packed`` (Op) or nothing."""
    N, Hp, Wp, xs = xp.shape
    _, O, Ho, Wo = out.shape
    Op = w_packed.shape[-1]
    b = None if bias_packed is None else bias_packed.data_ptr()
    sN, sC, sH, sW = out.stride()
    args = (xp.data_ptr(), Hp, Wp, xs, channels, w_packed.data_ptr(), Op, O, b, *k, *dilation, out.data_ptr())
    threads = _native.threads_for(N * Ho, N * Ho * Wo * O * channels * k[0] * k[1])
    rows = xp.new_empty(threads, _whole_vectors(Wo) * Op)  # each thread's output row before out's layout
    args = (*args, Ho, Wo, sN, sC, sH, sW, rows.data_ptr())
    _native.parallel_shared(_native.load_conv().conv_rows_f32, args, N * Ho, threads, slotted=True)


class _NativeConv:
    """The stride-1 products of the module docstring as direct convolutions in C, float32 (``_conv_kernels.c``).

    Tensors: xp, x padded by p in NHWC (saved for dW); dyp, dY padded by d·(k − 1) − p in NHWC with Op channels
    (O rounded up to the vector width, zeros past O); weights packed as (kh, kw, Cin, Cout) with Cout padded
    likewise, the flipped and channel-swapped one for dX. y and dx come out in x's memory format.
    """

    @staticmethod
    def forward(x, weight, bias, padding, dilation, out_format):
        N, C, H, W = x.shape
        O, _, kh, kw = weight.shape
        (ph, pw), (dh, dw) = padding, dilation
        xp = _to_padded_nhwc(x.detach(), (ph, pw), C)
        Op = _whole_vectors(O)
        wp = weight.new_zeros(kh, kw, C, Op)
        wp[..., :O] = weight.detach().permute(2, 3, 1, 0)
        bp = None
        if bias is not None:
            bp = bias.new_zeros(Op)
            bp[:O] = bias.detach()
        Ho, Wo = H + 2 * ph - dh * (kh - 1), W + 2 * pw - dw * (kw - 1)
        y = torch.empty(N, O, Ho, Wo, dtype=x.dtype, memory_format=out_format)
        _conv_rows(xp, C, wp, bp, y, (kh, kw), dilation)
        return y, xp

    @staticmethod
    def backward(dy, xp, weight, x_shape, x_format, padding, dilation, need_x, need_w, need_b):
        N, C, _, _ = x_shape
        O, _, kh, kw = weight.shape
        (ph, pw), (dh, dw) = padding, dilation
        Ho, Wo = dy.shape[-2:]
        qt, ql = dh * (kh - 1) - ph, dw * (kw - 1) - pw
        Op = _whole_vectors(O)
        dyp = _to_padded_nhwc(dy, (qt, ql), Op, _scratch_buffer(N * (Ho + 2 * qt) * (Wo + 2 * ql) * Op))
        dx = dweight = dbias = None
        if need_x:
            # dX = dY ⋆ w with w flipped in (u, v) and (o, c) swapped: w_t[u', v', o, c] = w[o, c, kh-1-u', kw-1-v'].
            Cp = _whole_vectors(C)
            wt = weight.new_zeros(kh, kw, O, Cp)
            wt[..., :C] = weight.detach().flip(2, 3).permute(2, 3, 0, 1)
            dx = torch.empty(x_shape, dtype=dy.dtype, memory_format=x_format)
            _conv_rows(dyp, O, wt, None, dx, (kh, kw), dilation)
        if need_w or need_b:
            # Per-thread partial sums over disjoint output rows, added here.
            threads = _native.threads_for(N * Ho, N * Ho * Wo * O * C * kh * kw)
            part = dy.new_zeros(threads, kh, kw, C, Op)
            dbpart = dy.new_zeros(threads, Op) if need_b else None
            Hp, Wp = xp.shape[1:3]
            Hq, Wq = dyp.shape[1:3]
            args = (xp.data_ptr(), Hp, Wp, C, dyp.data_ptr(), Hq, Wq, Op, qt, ql, kh, kw, dh, dw, Ho, Wo)
            ptrs = (part.data_ptr(), None if dbpart is None else dbpart.data_ptr())
            _native.parallel_shared(_native.load_conv().conv_dw_f32, (*args, *ptrs), N * Ho, threads, slotted=True)
            if need_w:
                dweight = part.sum(0)[..., :O].permute(3, 2, 0, 1).contiguous()
            if need_b:
                dbias = dbpart.sum(0)[:O]
        return dx, dweight, dbias


def _strides_like_channels_last(t: torch.Tensor) -> bool:
    """torch's reading of a 4-D tensor's strides (``suggest_memory_format``, c10's ``is_channels_last_strides_2d``):
    C, W, H, N from the fastest dim to the slowest. It decides tensors that are both contiguous and channels-last,
    such as one-channel images stored (N, H, W, 1) and viewed (N, 1, H, W): torch calls them channels-last."""
    if t.dim() != 4 or t.stride(1) == 0:
        return False
    lowest = 0
    for d in (1, 3, 2, 0):
        size, stride = t.shape[d], t.stride(d)
        if size == 0 or stride < lowest:
            return False
        if d == 0 and lowest == t.stride(1):  # N111 with equal strides: torch falls back to NCHW
            return False
        lowest = stride * size if size > 1 else stride
    return True


def _out_format(x: torch.Tensor, weight: torch.Tensor) -> torch.memory_format:
    """F.conv2d's choice on CPU: channels-last output when x's or the weight's strides read as channels-last,
    contiguous otherwise. Fashion-MNIST's (N, 1, 28, 28) batches read as channels-last, so torch's conv runs the
    whole net in NHWC; following it keeps ours in the layout the next layers were measured in (docs/ops-speed)."""
    if _strides_like_channels_last(x) or _strides_like_channels_last(weight):
        return torch.channels_last
    return torch.contiguous_format


class Conv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        N, Cin, H, W = x.shape
        Cout, cin_g, kh, kw = weight.shape
        ctx.conf = (x.shape, stride, padding, dilation, groups, bias is not None)
        ctx.native = _native_takes(x, weight, bias, stride, padding, dilation, groups)
        if ctx.native:
            ctx.x_format = _out_format(x, weight)  # y's format, and dX's in the backward
            y, xp = _NativeConv.forward(x, weight, bias, padding, dilation, ctx.x_format)
            ctx.save_for_backward(xp, weight)
            return y
        ctx.rows = stride[0] == 1 and groups == 1
        if ctx.rows:
            y, xrow = _RowShiftConv.forward(x, weight, bias, stride, padding, dilation)
            ctx.save_for_backward(xrow, weight)
            return y
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
        return y.view(N, Cout, Ho, Wo)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        saved, weight = ctx.saved_tensors
        shape, stride, padding, dilation, groups, has_bias = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if ctx.native:
            need_b = need_b and has_bias
            needs = (need_x, need_w, need_b)
            grads = _NativeConv.backward(dy, saved, weight, shape, ctx.x_format, padding, dilation, *needs)
            return *grads, None, None, None, None
        dbias = dy.sum((0, 2, 3)) if has_bias and need_b else None
        if ctx.rows:
            dx, dweight = _RowShiftConv.backward(dy, saved, weight, shape, stride, padding, dilation, need_x, need_w)
            return dx, dweight, dbias, None, None, None, None
        cols = saved
        N = shape[0]
        Cout, cin_g, kh, kw = weight.shape
        L = dy.shape[-2] * dy.shape[-1]
        dy = dy.reshape(N, Cout, L)
        dx = dweight = None
        if need_x:
            if groups == 1:
                dcols = torch.matmul(weight.reshape(Cout, -1).t(), dy)  # (N, K, L)
            else:
                w_g = weight.view(groups, Cout // groups, -1).transpose(1, 2)  # (g, K_g, Cout_g)
                dcols = torch.matmul(w_g, dy.view(N, groups, Cout // groups, L)).reshape(N, -1, L)
            dx = _col2im(dcols, shape, (kh, kw), stride, padding, dilation)
        if need_w:
            # Σ_n dY_n·X_nᵀ: one GEMM per sample, then the sum over the batch.
            if groups == 1:
                dweight = torch.bmm(dy, cols.transpose(1, 2)).sum(0).view_as(weight)
            else:
                dy_g = dy.view(N, groups, Cout // groups, L)
                cols_g = cols.view(N, groups, -1, L).transpose(2, 3)
                dweight = torch.matmul(dy_g, cols_g).sum(0).view_as(weight)
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
