"""Shared helpers for the hand-derived ops: argument checks and the window view used by the pools.

Pooling over (N, C, H, W) is written once as "gather each window's values, reduce over the window"
(see ``docs/derivations.md`` §3). ``Windows`` does the gathering and its adjoint (scattering a gradient
per window element back onto the input, summing where windows overlap), with a copy-free fast path
for the common case of non-overlapping windows (stride = kernel, no padding, no dilation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nnlab.utils.errors import NnlabError


class OpInputError(NnlabError, ValueError):
    """An op was called with input it cannot handle (wrong dims, sizes or parameters); one line."""


IntOrPair = int | Sequence[int]


def pair(value: IntOrPair, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; a 1- or 2-sequence of ints -> a 2-tuple (as ``torch.nn.modules.utils._pair``)."""
    if isinstance(value, int):
        out = (value, value)
    else:
        out = tuple(int(v) for v in value)
        if len(out) == 1:
            out = (out[0], out[0])
    if len(out) != 2:
        raise OpInputError(f"{name} must be an int or a pair of ints, got {value!r}")
    return out  # type: ignore[return-value]


def check_dims(input: torch.Tensor, allowed: Sequence[int], op: str, layout: str) -> None:
    if input.dim() not in allowed:
        raise OpInputError(
            f"{op}: expected a {' or '.join(f'{d}-D' for d in allowed)} input {layout}, got shape {tuple(input.shape)}"
        )


def pool_out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length of a pooling window sweep, exactly as torch's ``pooling_output_shape``."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    # In ceil mode the last window must start inside the input or its left padding.
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


class Windows:
    """The windows of a 2-D pooling over (N, C, H, W), as a (N, C, Ho, Wo, kh*kw) tensor.

    ``gather(x, fill)`` returns every window's values (positions outside the input read ``fill``), in
    row-major order inside the window; ``scatter(g)`` is its adjoint: it adds g[..., j] back onto the
    input position the j-th element of each window came from (zero for padding), so that
    ``<gather(x), g> = <x, scatter(g)>``.
    """

    def __init__(
        self,
        shape: torch.Size,
        kernel_size: IntOrPair,
        stride: IntOrPair | None,
        padding: IntOrPair,
        dilation: IntOrPair,
        ceil_mode: bool,
        op: str,
    ) -> None:
        self.shape = shape
        kh, kw = pair(kernel_size, "kernel_size")
        sh, sw = pair(stride, "stride") if stride is not None and stride != [] else (kh, kw)
        ph, pw = pair(padding, "padding")
        dh, dw = pair(dilation, "dilation")
        if min(kh, kw, sh, sw, dh, dw) <= 0 or min(ph, pw) < 0:
            raise OpInputError(
                f"{op}: kernel_size, stride and dilation must be positive and padding non-negative, got "
                f"kernel_size={(kh, kw)}, stride={(sh, sw)}, padding={(ph, pw)}, dilation={(dh, dw)}"
            )
        if ph > kh // 2 or pw > kw // 2:
            raise OpInputError(f"{op}: padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}")
        H, W = shape[-2], shape[-1]
        self.k, self.s, self.p, self.d = (kh, kw), (sh, sw), (ph, pw), (dh, dw)
        self.out = (
            pool_out_size(H, kh, sh, ph, dh, ceil_mode),
            pool_out_size(W, kw, sw, pw, dw, ceil_mode),
        )
        if min(self.out) <= 0:
            raise OpInputError(
                f"{op}: input of spatial size {(H, W)} is too small for kernel {(kh, kw)} "
                f"(padding {(ph, pw)}, dilation {(dh, dw)})"
            )
        # Extra right/bottom padding that ceil mode needs so that the last window exists.
        self.extra = tuple(
            max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p))
            for o, s, d, k, n, p in zip(self.out, self.s, self.d, self.k, (H, W), self.p)
        )
        # Non-overlapping, unpadded windows are a reshape of the input: no im2col needed.
        self.tiled = (sh, sw) == (kh, kw) and ph == pw == 0 and dh == dw == 1 and self.extra == (0, 0)
        self.kk = kh * kw

    def tiles(self, x: torch.Tensor) -> torch.Tensor:
        """Tiled case only: a copy-free (N, C, Ho, kh, Wo, kw) view of ``x``."""
        (Ho, Wo), (kh, kw) = self.out, self.k
        return x[..., : Ho * kh, : Wo * kw].unflatten(-1, (Wo, kw)).unflatten(-3, (Ho, kh))

    def gather(self, x: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        N, C = x.shape[0], x.shape[1]
        Ho, Wo = self.out
        if self.tiled:
            return self.tiles(x).permute(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, self.kk)
        ph, pw = self.p
        eh, ew = self.extra
        if ph or pw or eh or ew:
            x = F.pad(x, (pw, pw + ew, ph, ph + eh), value=fill)
        cols = F.unfold(x.reshape(N * C, 1, *x.shape[-2:]), self.k, dilation=self.d, stride=self.s)
        return cols.view(N, C, self.kk, Ho, Wo).permute(0, 1, 3, 4, 2)

    def scatter(self, g: torch.Tensor) -> torch.Tensor:
        N, C, H, W = self.shape
        (Ho, Wo), (kh, kw) = self.out, self.k
        if self.tiled:
            dx = g.view(N, C, Ho, Wo, kh, kw).permute(0, 1, 2, 4, 3, 5).reshape(N, C, Ho * kh, Wo * kw)
            if (Ho * kh, Wo * kw) != (H, W):  # rows/columns no window covers get no gradient
                dx = F.pad(dx, (0, W - Wo * kw, 0, H - Ho * kh))
            return dx
        ph, pw = self.p
        eh, ew = self.extra
        size = (H + 2 * ph + eh, W + 2 * pw + ew)
        cols = g.permute(0, 1, 4, 2, 3).reshape(N * C, self.kk, Ho * Wo)
        dx = F.fold(cols, size, self.k, dilation=self.d, stride=self.s).view(N, C, *size)
        return dx[..., ph : ph + H, pw : pw + W]

    def count(self, include_pad: bool, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Per-window divisor of average pooling, (Ho, Wo), by torch's rule: positions inside the input
        count, symmetric padding counts iff ``include_pad``, the extra ceil-mode padding never does."""
        H, W = self.shape[-2:]
        ph, pw = self.p
        eh, ew = self.extra
        ones = torch.ones(1, 1, H, W, device=device, dtype=dtype)
        mask = F.pad(ones, (pw, pw, ph, ph), value=1.0 if include_pad else 0.0)
        mask = F.pad(mask, (0, ew, 0, eh), value=0.0)
        cols = F.unfold(mask, self.k, dilation=self.d, stride=self.s)
        return cols.sum(1).view(*self.out)


def prod(xs: Sequence[int]) -> int:
    return math.prod(xs)
