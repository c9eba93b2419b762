"""High-dimensional affinities P: Gaussian conditionals calibrated to a perplexity, then symmetrised.

See docs/derivations-tsne.md, section 4.1. The calibration runs in float64 (entropies are differences of
logarithms of numbers that can be tiny) on row blocks, so memory stays bounded by ``_BLOCK_BYTES`` apart
from the dense n x n result.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

_BLOCK_BYTES = 64 * 2**20


def _row_block(n: int, itemsize: int = 8, block_bytes: int = _BLOCK_BYTES) -> int:
    return max(1, min(n, block_bytes // max(1, n * itemsize)))


def squared_distances(X: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """Pairwise distances used by the Gaussian kernel: ``||x_i - x_j||^2`` for ``euclidean`` and
    ``sqeuclidean`` (scikit-learn squares euclidean distances too), ``X`` itself for ``precomputed``."""
    if metric == "precomputed":
        return X
    Xc = X - X.mean(0)  # centring does not change distances but reduces cancellation in the expansion below
    sq = (Xc * Xc).sum(1)
    D = torch.addmm(sq[:, None] + sq[None, :], Xc, Xc.T, alpha=-2.0)
    D.clamp_(min=0.0).fill_diagonal_(0.0)
    return D


def _entropy_and_slope(
    D: torch.Tensor, D2: torch.Tensor, beta: torch.Tensor, self_cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For ``p_j ∝ exp(-beta d_j)`` over ``j ≠ i`` per row: ``H = log Σ_j exp(-beta d_j) + beta E[d]`` and
    ``dH/dlog(beta) = -beta^2 Var[d]``; also returns the unnormalised weights (0 at the point itself).

    ``D`` holds distances shifted by the row minimum over ``j ≠ i`` (the largest exponent is 0, so nothing
    overflows), ``D2 = D**2``, ``self_cols[r]`` is the column of row r's own point. Moments come from dot
    products, so the only n-sized temporary is ``e``."""
    e = torch.mul(D, -beta[:, None]).exp_()
    e[torch.arange(len(e), device=e.device), self_cols] = 0.0  # a point is not its own neighbour
    s = e.sum(1)
    mean = torch.linalg.vecdot(e, D) / s
    var = (torch.linalg.vecdot(e, D2) / s - mean * mean).clamp_(min=0.0)
    return torch.log(s) + beta * mean, -(beta * beta) * var, e


def conditional_probabilities(
    D: torch.Tensor, perplexity: float, tol: float = 1e-5, max_iter: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-stochastic ``P[i, j] = p_{j|i} = exp(-beta_i D_ij) / Σ_{k≠i} exp(-beta_i D_ik)`` (``P[i, i] = 0``)
    with each beta_i (= 1 / 2σ_i²) chosen so that the row entropy ``H(P_i)`` equals ``log(perplexity)``
    (nats) within ``tol``; ``D`` holds squared distances.

    All points are solved at once: a safeguarded Newton iteration on ``t = log beta`` (H is monotone in t and
    ``dH/dt = -beta^2 Var[d]``), bisecting the bracket whenever a Newton step would leave it. It starts
    from ``beta_i = e^1.2 / (d_(k) - d_(1))`` with k = perplexity (a Gaussian of about that width covers
    about k neighbours) and converges in a few vectorised steps where plain bisection needs ~50 (steps are
    capped at a factor e^2 in beta so that saturated tails, where dH -> 0, do not throw it far off). Returns
    ``(P, beta)`` with beta for the unshifted distances (shifting a row does not change its p).
    """
    P = torch.empty(D.shape, dtype=torch.float64, device=D.device)
    betas = _calibrate(lambda a, b: D[a:b], P, perplexity, tol, max_iter)
    return P, betas


def _calibrate(
    rows: Callable[[int, int], torch.Tensor], out: torch.Tensor, perplexity: float, tol: float, max_iter: int
) -> torch.Tensor:
    """Solve (4.1)-(4.3) block by block: ``rows(a, b)`` gives distance rows a..b-1 (b x n); the conditional
    probabilities are written into ``out`` (n x n, any float dtype; the solve itself is float64). Returns beta."""
    n = out.shape[0]
    device = out.device
    target = math.log(perplexity)
    betas = torch.empty(n, dtype=torch.float64, device=device)
    step = _row_block(n, itemsize=8 * 3)
    k = min(n - 1, max(2, int(round(perplexity))))
    for start in range(0, n, step):
        stop = min(n, start + step)
        rows_idx = torch.arange(stop - start, device=device)
        self_cols = rows_idx + start
        Db = rows(start, stop).to(torch.float64, copy=True)
        Db[rows_idx, self_cols] = math.inf
        Db -= Db.min(1, keepdim=True).values
        Db[rows_idx, self_cols] = 0.0  # any finite value: its weight is zeroed in _entropy_and_slope
        D2 = Db * Db
        # k + 1 smallest: the point itself is among them at 0
        width = torch.topk(Db, min(k + 1, n), dim=1, largest=False, sorted=False).values.max(1).values
        width = torch.where(width > 0, width, Db.mean(1)).clamp_min(torch.finfo(torch.float64).tiny)
        # log(beta* width_k) is ~1.2 (1.0-1.4) on digits, Fashion-MNIST and Gaussian blobs for perplexities
        # 5-100; starting there saves Newton steps (only the speed depends on it, not the result)
        t = 1.2 - torch.log(width)
        lo = torch.full_like(t, -math.inf)
        hi = torch.full_like(t, math.inf)
        active = torch.arange(stop - start, device=device)
        Pb = out[start:stop]
        for it in range(max_iter + 1):
            full = active.numel() == Db.shape[0]  # no gather while every row is still running
            Da, D2a = (Db, D2) if full else (Db[active], D2[active])
            H, dH, e = _entropy_and_slope(Da, D2a, torch.exp(t[active]), self_cols[active])
            err = H - target
            done = (err.abs() < tol) | (it == max_iter)  # at max_iter keep the last iterate rather than fail
            Pb[active[done]] = (e[done] / e[done].sum(1, keepdim=True)).to(out.dtype)
            keep = ~done
            active, err, dH = active[keep], err[keep], dH[keep]
            if active.numel() == 0:
                break
            ta = t[active]
            # entropy too high -> distribution too flat -> beta (t) must grow
            lo[active] = torch.where(err > 0, ta, lo[active])
            hi[active] = torch.where(err > 0, hi[active], ta)
            # Newton step in log beta, at most a factor e^2 at a time: where H saturates dH -> 0
            newton = ta - (err / dH).clamp(-2.0, 2.0)
            mid = torch.where(
                torch.isfinite(lo[active]) & torch.isfinite(hi[active]),
                (lo[active] + hi[active]) / 2,
                torch.where(err > 0, ta + 1.0, ta - 1.0),
            )
            ok = torch.isfinite(newton) & (newton > lo[active]) & (newton < hi[active])
            t[active] = torch.where(ok, newton, mid)
        betas[start:stop] = torch.exp(t)
    return betas


def row_entropies(P: torch.Tensor) -> torch.Tensor:
    """``H(P_i) = -Σ_j p_{j|i} log p_{j|i}`` in nats, with 0 log 0 = 0."""
    return -torch.special.xlogy(P, P).sum(1)


def _symmetrize_(P: torch.Tensor, scale: float, tile: int = 1024) -> torch.Tensor:
    """``P <- (P + P^T) * scale`` in place, tile pair by tile pair (no second n x n buffer)."""
    n = P.shape[0]
    for a in range(0, n, tile):
        for b in range(a, n, tile):
            A, B = P[a : a + tile, b : b + tile], P[b : b + tile, a : a + tile]
            S = (A + B.T).mul_(scale)  # a new tile, so A and B (the same tile when a == b) can be overwritten
            A.copy_(S)
            B.copy_(S.T)
    return P


def joint_probabilities(
    X: torch.Tensor, perplexity: float, metric: str = "euclidean", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Symmetric joint affinities ``p_ij = (p_{j|i} + p_{i|j}) / 2n`` (4.4; they sum to 1, p_ii = 0).

    Memory: the result (n x n in ``dtype``) plus row blocks of ~64 MB; distances are computed per block from
    ``X`` and never held for all pairs at once."""
    X = X.to(torch.float64)
    n = X.shape[0]
    Xc = X - X.mean(0)  # centring does not change distances but reduces cancellation in the expansion
    sq = (Xc * Xc).sum(1)

    def rows(a: int, b: int) -> torch.Tensor:
        if metric == "precomputed":
            return X[a:b]
        return torch.addmm(sq[a:b, None] + sq[None, :], Xc[a:b], Xc.T, alpha=-2.0).clamp_(min=0.0)

    P = torch.empty(n, n, dtype=dtype, device=X.device)
    _calibrate(rows, P, perplexity, tol=1e-5, max_iter=100)
    return _symmetrize_(P, 1.0 / (2 * n))
