"""``TSNE``: scikit-learn's interface over the exact torch/kernel implementation and the openTSNE bridge."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from nnlab.tsne.affinities import joint_probabilities
from nnlab.tsne.gradient import entropy_term, kl_gradient
from nnlab.utils.errors import ConfigError, DataError, choice_error

# Largest n for which method="auto" runs the exact algorithm. Measured with `scripts/bench_tsne.py --crossover`
# on Fashion-MNIST (PCA 50) on the 2 shared CPU cores: exact / openTSNE (n_jobs=2) wall time = 0.37 at
# n = 5,000 and 1.95 at n = 10,000, so they cross near n ≈ 7,600 (log-log interpolation). Exact is also the
# one that needs dense n x n memory (P in float32: 225 MB at this size, plus ~64 MB calibration blocks).
AUTO_EXACT_MAX_N = 7_500

_METHODS = ("exact", "opentsne", "auto")
_METRICS = ("euclidean", "sqeuclidean", "precomputed")
_EXPLORATION_ITER = 250  # early-exaggeration phase length (scikit-learn's and openTSNE's)
_CHECK_EVERY = 50


def _as_tensor(X: Any) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        t = X.detach().cpu()
    else:
        try:
            t = torch.as_tensor(np.asarray(X))
        except (TypeError, ValueError) as err:
            raise DataError(f"t-SNE input must be a numeric (n_samples, n_features) array: {err}") from None
    if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise DataError(f"t-SNE input must be numeric, got dtype {t.dtype}")
    return t.to(torch.float64)


def _pca_init(X: torch.Tensor, k: int) -> torch.Tensor:
    """First k principal components of X (signs fixed so each axis's largest loading is positive)."""
    Xc = X - X.mean(0)
    if X.shape[1] <= X.shape[0]:
        evals, evecs = torch.linalg.eigh(Xc.T @ Xc)
        V = evecs[:, torch.argsort(evals, descending=True)[:k]]
    else:
        _, _, Vh = torch.linalg.svd(Xc, full_matrices=False)
        V = Vh[:k].T
    V = V * torch.sign(V.gather(0, V.abs().argmax(0, keepdim=True)))
    return Xc @ V


class TSNE:
    """t-distributed Stochastic Neighbour Embedding with scikit-learn's interface.

    ``method="exact"``: Gaussian input affinities calibrated per point to ``perplexity`` (vectorised
    safeguarded Newton on log β, :func:`nnlab.tsne.affinities.conditional_probabilities`), symmetrised
    ``p_ij = (p_{j|i} + p_{i|j}) / 2n``; Student-t output similarities; gradient descent with the analytic
    gradient ``∂C/∂y_i = 4 Σ_j (p_ij - q_ij)(y_i - y_j)(1 + ||y_i - y_j||^2)^-1`` (docs/derivations-tsne.md,
    eq. 4.7; :func:`nnlab.tsne.gradient.kl_gradient`), ``early_exaggeration`` on P for the first 250
    iterations with momentum 0.5, then momentum 0.8, per-parameter gains (+0.2 when the gradient's sign
    flips against the update, ×0.8 otherwise, floor 0.01), stopping early like scikit-learn when the gradient
    norm falls below ``min_grad_norm`` or the cost has not improved for ``n_iter_without_progress``.
    ``learning_rate="auto"`` is ``max(n / early_exaggeration / 4, 50)`` (scikit-learn's rule).
    Runs on ``device`` (default: CUDA when available); on CPU a fused kernel does the O(n^2) pass.

    ``method="opentsne"`` delegates to openTSNE (FFT-interpolated gradients, kNN affinities);
    ``method="auto"`` picks exact for ``n <= AUTO_EXACT_MAX_N`` and openTSNE above.

    Keyword-only extras: ``dtype`` of the optimisation (``float32`` default, or ``float64``; affinities are
    always calibrated in float64), ``n_jobs`` (openTSNE's threads), ``n_iter_without_progress``,
    ``min_grad_norm``, ``verbose``.

    After ``fit``: ``embedding_`` (n, n_components) float32 array, ``kl_divergence_`` (KL(P||Q) of the final
    embedding; for openTSNE the KL it reports against its own sparse P), ``n_iter_``, ``learning_rate_``,
    ``method_`` (the method actually run), ``fit_time_`` (s), and for exact fits ``kl_history_``: (iteration,
    KL) every 50 iterations, the true KL, also during exaggeration.
    """

    def __init__(
        self,
        n_components: int = 2,
        perplexity: float = 30.0,
        early_exaggeration: float = 12.0,
        learning_rate: float | str = "auto",
        max_iter: int = 1000,
        init: str | np.ndarray = "pca",
        metric: str = "euclidean",
        random_state: int | None = None,
        method: str = "auto",
        device: str | torch.device | None = None,
        *,
        n_iter_without_progress: int = 300,
        min_grad_norm: float = 1e-7,
        dtype: torch.dtype | str = torch.float32,
        n_jobs: int = 2,
        verbose: bool = False,
    ) -> None:
        self.n_components = n_components
        self.perplexity = perplexity
        self.early_exaggeration = early_exaggeration
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.init = init
        self.metric = metric
        self.random_state = random_state
        self.method = method
        self.device = device
        self.n_iter_without_progress = n_iter_without_progress
        self.min_grad_norm = min_grad_norm
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _check(self, X: torch.Tensor) -> None:
        if self.method not in _METHODS:
            raise choice_error("method", self.method, _METHODS)
        if self.metric not in _METRICS:
            raise choice_error("metric", self.metric, _METRICS)
        if X.ndim != 2:
            raise DataError(f"t-SNE input must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}")
        n = X.shape[0]
        if n < 2:
            raise DataError(f"t-SNE needs at least 2 points, got {n}")
        bad = torch.nonzero(~torch.isfinite(X).all(1)).flatten()
        if bad.numel():
            rows = ", ".join(str(int(i)) for i in bad[:5]) + (", ..." if bad.numel() > 5 else "")
            raise DataError(f"t-SNE input has {bad.numel()} row(s) with NaN or inf (rows {rows}); drop or impute them")
        if not 0 < self.perplexity < n:
            raise ConfigError(
                f"perplexity={self.perplexity} must be in (0, n_samples={n}); use a smaller perplexity "
                f"(5-50 is usual) or more points"
            )
        if self.metric == "precomputed":
            if X.shape[0] != X.shape[1] or bool((X < 0).any()):
                raise DataError("metric='precomputed' needs a square matrix of non-negative distances")
            if isinstance(self.init, str) and self.init == "pca":
                raise ConfigError("init='pca' cannot be used with metric='precomputed'; use init='random'")
        if not (isinstance(self.n_components, int) and self.n_components >= 1):
            raise ConfigError(f"n_components={self.n_components!r} must be a positive integer")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ConfigError(f"max_iter={self.max_iter!r} must be a positive integer")
        if self._dtype() not in (torch.float32, torch.float64):
            raise choice_error("dtype", self.dtype, ["float32", "float64"])
        if isinstance(self.learning_rate, str) and self.learning_rate != "auto":
            raise choice_error("learning_rate", self.learning_rate, ["auto"])
        if self.early_exaggeration < 1:
            raise ConfigError(f"early_exaggeration={self.early_exaggeration} must be >= 1")

    def _resolve_method(self, n: int) -> str:
        if self.method == "auto":
            return "exact" if n <= AUTO_EXACT_MAX_N else "opentsne"
        return self.method

    def _dtype(self) -> torch.dtype | None:
        if isinstance(self.dtype, torch.dtype):
            return self.dtype
        return {"float32": torch.float32, "float64": torch.float64}.get(str(self.dtype))

    def _device(self) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None) -> TSNE:
        Xt = _as_tensor(X)
        self._check(Xt)
        n = Xt.shape[0]
        self.method_ = self._resolve_method(n)
        self.learning_rate_ = (
            max(n / self.early_exaggeration / 4, 50.0) if self.learning_rate == "auto" else float(self.learning_rate)
        )
        t0 = time.perf_counter()
        if self.method_ == "opentsne":
            from nnlab.tsne._opentsne import fit_opentsne

            self.embedding_, self.kl_divergence_, self.n_iter_ = fit_opentsne(self, Xt.numpy())
        else:
            self._fit_exact(Xt)
        self.fit_time_ = time.perf_counter() - t0
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).embedding_

    # ------------------------------------------------------------------ exact
    def _initial_embedding(self, X: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, k = X.shape[0], self.n_components
        if isinstance(self.init, str):
            if self.init == "pca":
                Y0 = _pca_init(X, k)
                # scikit-learn's scaling: first axis std 1e-4 (exaggeration starts from a tiny ordered cloud)
                return Y0 / Y0[:, 0].std() * 1e-4
            if self.init == "random":
                return 1e-4 * torch.randn(n, k, generator=gen, dtype=torch.float64)
            raise choice_error("init", self.init, ["pca", "random"])
        Y0 = torch.as_tensor(np.asarray(self.init), dtype=torch.float64)
        if Y0.shape != (n, k):
            raise ConfigError(f"init array has shape {tuple(Y0.shape)}, expected ({n}, {k})")
        return Y0.clone()

    def _fit_exact(self, X: torch.Tensor) -> None:
        device, dtype = self._device(), self._dtype()
        gen = torch.Generator().manual_seed(
            self.random_state if self.random_state is not None else int(torch.randint(0, 2**31 - 1, (1,)))
        )
        Y = self._initial_embedding(X, gen).to(device=device, dtype=dtype)
        P = joint_probabilities(X.to(device), self.perplexity, self.metric, dtype=dtype)
        p_log_p = entropy_term(P)
        lr = self.learning_rate_
        self.kl_history_: list[tuple[int, float]] = []
        it = 0
        phases = [
            (min(_EXPLORATION_ITER, self.max_iter), self.early_exaggeration, 0.5),
            (max(0, self.max_iter - _EXPLORATION_ITER), 1.0, 0.8),
        ]
        for length, exaggeration, momentum in phases:
            # scikit-learn restarts the momentum buffer and the gains at the phase change
            update = torch.zeros_like(Y)
            gains = torch.ones_like(Y)
            best_kl, best_it = math.inf, it
            for _ in range(length):
                check = (it + 1) % _CHECK_EVERY == 0
                grad, kl = kl_gradient(P, Y, exaggeration, with_kl=check, p_log_p=p_log_p)
                inc = update * grad < 0
                gains = torch.where(inc, gains + 0.2, gains * 0.8).clamp_(min=0.01)
                update = momentum * update - lr * gains * grad
                Y = Y + update
                it += 1
                if check:
                    self.kl_history_.append((it, kl))
                    if self.verbose:
                        print(f"[t-SNE] iteration {it}: KL {kl:.4f} (exaggeration {exaggeration:g})", flush=True)
                    if exaggeration == 1.0:
                        if float(torch.linalg.vector_norm(grad)) < self.min_grad_norm:
                            break
                        if kl < best_kl:
                            best_kl, best_it = kl, it
                        elif it - best_it > self.n_iter_without_progress:
                            break
            else:
                continue
            break
        _, kl = kl_gradient(P, Y, 1.0, with_kl=True, p_log_p=p_log_p)
        self.n_iter_ = it
        self.kl_divergence_ = float(kl)
        self.embedding_ = Y.detach().to("cpu", torch.float32).numpy()
