"""The t-SNE cost and its gradient (docs/derivations-tsne.md, sections 4.2-4.3).

With Student-t similarities ``w_ij = (1 + ||y_i - y_j||^2)^-1``, ``Z = Σ_{k≠l} w_kl`` and ``q_ij = w_ij / Z``:

    C = KL(P || Q) = Σ_{i≠j} p_ij log(p_ij / q_ij)
    ∂C/∂y_i = 4 Σ_j (p_ij - q_ij) w_ij (y_i - y_j)                                  (eq. 4.7)
            = 4 (A_i - R_i / Z),  A_i = Σ_j p_ij w_ij (y_i - y_j),  R_i = Σ_j w_ij^2 (y_i - y_j)

:func:`kl_divergence` is the dense, differentiable definition (tests compare autograd of it with
:func:`kl_gradient`). :func:`kl_gradient` never forms Q: it accumulates the row sums ``S_i = Σ_j w_ij``,
``A_i``, ``R_i`` (and ``Σ_j p_ij log(1/w_ij)`` when the cost is wanted) in one pass, either in the fused CPU
kernel or in row blocks of torch ops (any device), and uses
``KL = Σ p log p + Σ p_ij log(1 + ||y_i - y_j||^2) + log Z``.
"""

from __future__ import annotations

import math

import torch

from nnlab.tsne import _ckernel

_BLOCK_BYTES = 32 * 2**20


def kl_divergence(P: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Dense reference ``KL(P || Q)``, differentiable in ``Y`` (O(n^2) memory; for tests and small n)."""
    n = Y.shape[0]
    diff = Y[:, None, :] - Y[None, :, :]
    W = 1.0 / (1.0 + (diff * diff).sum(-1))
    off = ~torch.eye(n, dtype=torch.bool, device=Y.device)
    Q = torch.where(off, W, 0.0) / W[off].sum()
    mask = off & (P > 0)
    return (P[mask] * (torch.log(P[mask]) - torch.log(Q[mask]))).sum()


def entropy_term(P: torch.Tensor) -> float:
    """``Σ p log p`` (0 log 0 = 0), the part of the KL that does not depend on Y; computed once per fit."""
    total = 0.0
    step = max(1, _BLOCK_BYTES // max(1, P.shape[1] * 8))
    for start in range(0, P.shape[0], step):
        block = P[start : start + step].to(torch.float64)
        total += float(torch.special.xlogy(block, block).sum())
    return total


def _rows_torch(P: torch.Tensor, Y: torch.Tensor, with_kl: bool) -> torch.Tensor:
    n, d = Y.shape
    out = torch.empty(n, 2 * d + 2, dtype=Y.dtype, device=Y.device)
    step = max(1, _BLOCK_BYTES // max(1, n * Y.element_size()))
    for a in range(0, n, step):
        b = min(n, a + step)
        Ya = Y[a:b]
        # differences component by component rather than |a|^2 + |b|^2 - 2ab: no cancellation, and
        # the diagonal comes out exactly 0 (w_ii = 1) so that Z = Σ S_i - n is exact
        D = torch.zeros(b - a, n, dtype=Y.dtype, device=Y.device)
        for c in range(d):
            D.add_((Ya[:, c, None] - Y[None, :, c]).square_())
        W = torch.reciprocal(D + 1.0)
        Pb = P[a:b]
        PW = Pb * W
        W2 = W * W
        out[a:b, 0] = W.sum(1)
        out[a:b, 1 : d + 1] = PW.sum(1, keepdim=True) * Ya - PW @ Y
        out[a:b, d + 1 : 2 * d + 1] = W2.sum(1, keepdim=True) * Ya - W2 @ Y
        out[a:b, 2 * d + 1] = (Pb * torch.log1p(D)).sum(1) if with_kl else 0.0
    return out


def kl_gradient(
    P: torch.Tensor,
    Y: torch.Tensor,
    exaggeration: float = 1.0,
    with_kl: bool = False,
    p_log_p: float | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, float | None]:
    """Analytic gradient ``4 (α A_i - R_i / Z)`` of ``KL(αP || Q)`` w.r.t. ``Y`` (α = ``exaggeration``; the
    gradient of the un-exaggerated cost for α = 1), plus ``KL(P || Q)`` when ``with_kl``.

    ``backend``: ``"kernel"`` (fused CPU pass), ``"torch"`` (row blocks, any device) or ``"auto"`` (the
    kernel for CPU tensors when it is available). ``p_log_p``: :func:`entropy_term` of ``P`` if known.
    """
    n, d = Y.shape
    use_kernel = backend == "kernel" or (
        backend == "auto" and Y.device.type == "cpu" and Y.dtype in (torch.float32, torch.float64)
    )
    if use_kernel and _ckernel.load() is None:
        if backend == "kernel":
            raise RuntimeError("the fused t-SNE CPU kernel could not be built (no C compiler?)")
        use_kernel = False
    if use_kernel:
        sums = _ckernel.rows(P.contiguous(), Y.T.contiguous(), with_kl)
    else:
        sums = _rows_torch(P, Y, with_kl)
    # Z in float64: n^2 terms of very different sizes
    Z = float(sums[:, 0].double().sum()) - n
    grad = 4.0 * (exaggeration * sums[:, 1 : d + 1] - sums[:, d + 1 : 2 * d + 1] / Z)
    kl = None
    if with_kl:
        if p_log_p is None:
            p_log_p = entropy_term(P)
        # assumes Σ P = 1, which joint_probabilities guarantees
        kl = p_log_p + float(sums[:, 2 * d + 1].double().sum()) + math.log(Z)
    return grad, kl
