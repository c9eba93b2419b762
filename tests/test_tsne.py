"""nnlab.tsne: derived gradient vs autograd, perplexity calibration, optimisation, errors, auto switch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_blobs

import nnlab.tsne._tsne as tsne_mod
from nnlab.tsne import (
    TSNE,
    _ckernel,
    conditional_probabilities,
    joint_probabilities,
    kl_divergence,
    kl_gradient,
    knn_accuracy,
    row_entropies,
)
from nnlab.tsne.affinities import _symmetrize_, squared_distances
from nnlab.utils.errors import ConfigError, DataError, NnlabError

BACKENDS = [
    "torch",
    pytest.param("kernel", marks=pytest.mark.skipif(_ckernel.load() is None, reason="no C compiler")),
]


def _random_problem(n: int, d: int, seed: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """A genuine joint P (calibrated Gaussian affinities of random data) and a random embedding."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3.0, 5, dtype=torch.float64)
    P = joint_probabilities(X, perplexity=min(5.0, n - 1.5), dtype=dtype)
    Y = torch.randn(n, d, generator=g, dtype=dtype) * 2.0
    return P, Y


# --------------------------------------------------------------------------- gradient (eq. 4.7)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_analytic_gradient_equals_autograd_of_kl(backend: str, d: int) -> None:
    P, Y = _random_problem(40, d, seed=d)
    Yg = Y.clone().requires_grad_(True)
    kl = kl_divergence(P, Yg)
    (auto,) = torch.autograd.grad(kl, Yg)
    grad, kl_fast = kl_gradient(P, Y, with_kl=True, backend=backend)
    torch.testing.assert_close(grad, auto, rtol=1e-9, atol=1e-12)
    assert kl_fast == pytest.approx(kl.item(), rel=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exaggerated_gradient_equals_autograd_of_exaggerated_cost(backend: str) -> None:
    # with P scaled by alpha the gradient is 4 Σ (alpha p_ij - q_ij) w_ij (y_i - y_j): the gradient of
    # alpha Σ p log(1/w) + log Z (the normaliser is not scaled)
    P, Y = _random_problem(30, 2, seed=7)
    alpha = 12.0
    Yg = Y.clone().requires_grad_(True)
    n = Y.shape[0]
    W = 1.0 / (1.0 + torch.cdist(Yg, Yg) ** 2)
    off = ~torch.eye(n, dtype=torch.bool)
    cost = alpha * (P[off] * -torch.log(W[off])).sum() + torch.log(W[off].sum())
    (auto,) = torch.autograd.grad(cost, Yg)
    grad, _ = kl_gradient(P, Y, exaggeration=alpha, backend=backend)
    torch.testing.assert_close(grad, auto, rtol=1e-8, atol=1e-12)


def test_float32_kernel_and_torch_paths_agree() -> None:
    P, Y = _random_problem(300, 2, seed=3, dtype=torch.float32)
    g_torch, kl_torch = kl_gradient(P, Y, with_kl=True, backend="torch")
    g_auto, kl_auto = kl_gradient(P, Y, with_kl=True, backend="auto")
    P64, Y64 = P.double(), Y.double()
    g_ref, kl_ref = kl_gradient(P64, Y64, with_kl=True, backend="torch")
    scale = g_ref.abs().max()
    assert (g_torch.double() - g_ref).abs().max() < 1e-4 * scale
    assert (g_auto.double() - g_ref).abs().max() < 1e-4 * scale
    assert kl_torch == pytest.approx(kl_ref, rel=1e-4) and kl_auto == pytest.approx(kl_ref, rel=1e-4)


def test_gradient_is_zero_sum() -> None:
    # the cost is invariant to translating Y, so the gradients of all points sum to zero
    P, Y = _random_problem(50, 2, seed=11)
    grad, _ = kl_gradient(P, Y)
    assert grad.sum(0).abs().max() < 1e-12 * grad.abs().sum()


# --------------------------------------------------------------------------- calibration (sec. 4.1)
@pytest.mark.parametrize("perplexity", [2.0, 10.0, 30.0, 80.0])
def test_calibration_hits_target_entropy_for_every_point(perplexity: float) -> None:
    # clusters of very different widths plus far outliers: each point needs its own sigma
    rng = np.random.default_rng(0)
    X = np.concatenate(
        [
            rng.normal(0, 0.01, (60, 8)),
            rng.normal(5, 1.0, (80, 8)),
            rng.normal(-50, 10.0, (50, 8)),
            rng.uniform(-1000, 1000, (10, 8)),
        ]
    )
    D = squared_distances(torch.as_tensor(X))
    P, beta = conditional_probabilities(D, perplexity, tol=1e-5)
    H = row_entropies(P)
    assert (H - math.log(perplexity)).abs().max() < 1e-5
    torch.testing.assert_close(P.sum(1), torch.ones(len(X), dtype=torch.float64))
    assert torch.all(P.diagonal() == 0)
    assert torch.all(beta > 0)
    if perplexity < 60:
        # while their effective neighbours fit in their own cluster, points of the tight cluster get a
        # narrower Gaussian (larger beta) than those of the wide one
        assert beta[:60].min() > beta[60:140].max()


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(5, 60),
    dim=st.integers(1, 6),
    scale=st.floats(1e-3, 1e3),
    frac=st.floats(0.05, 0.9),
    seed=st.integers(0, 2**16),
)
def test_calibration_property(n: int, dim: int, scale: float, frac: float, seed: int) -> None:
    X = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    perplexity = 1.0 + frac * (n - 2)
    P, _ = conditional_probabilities(squared_distances(X), perplexity)
    assert (row_entropies(P) - math.log(perplexity)).abs().max() < 1e-4


def test_joint_probabilities_symmetric_and_normalised() -> None:
    X, _ = make_blobs(120, n_features=6, centers=3, random_state=0)
    P = joint_probabilities(torch.as_tensor(X), 20.0, dtype=torch.float64)
    torch.testing.assert_close(P, P.T)
    assert P.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.all(P.diagonal() == 0) and torch.all(P >= 0)


def test_blockwise_joint_probabilities_equal_the_dense_definition() -> None:
    # joint_probabilities computes distances per row block and symmetrises in place tile by tile
    X, _ = make_blobs(70, n_features=4, centers=3, random_state=2)
    Xt = torch.as_tensor(X)
    cond, _ = conditional_probabilities(squared_distances(Xt), 10.0)
    reference = (cond + cond.T) / (2 * len(X))
    torch.testing.assert_close(joint_probabilities(Xt, 10.0, dtype=torch.float64), reference)
    # metric="precomputed" takes the distances as given (squared here, so it must agree with euclidean)
    pre = joint_probabilities(squared_distances(Xt), 10.0, metric="precomputed", dtype=torch.float64)
    torch.testing.assert_close(pre, reference)
    M = torch.rand(23, 23, dtype=torch.float64)
    torch.testing.assert_close(_symmetrize_(M.clone(), 0.5, tile=5), (M + M.T) * 0.5)


# --------------------------------------------------------------------------- optimisation
def _blobs(n: int = 600, centers: int = 6, seed: int = 0):
    return make_blobs(n, n_features=20, centers=centers, cluster_std=1.0, center_box=(-20, 20), random_state=seed)


def test_kl_decreases_over_iterations() -> None:
    X, _ = _blobs(300)
    est = TSNE(method="exact", random_state=0, max_iter=600).fit(X)
    hist = [kl for it, kl in est.kl_history_ if it > 250]
    assert len(hist) >= 5
    assert all(b <= a + 1e-6 for a, b in zip(hist, hist[1:])), hist
    assert est.kl_divergence_ <= hist[0]
    # the exaggeration phase optimises a different cost; the switch away from it must still help the true KL
    assert est.kl_divergence_ < est.kl_history_[4][1]


def test_separated_blobs_are_kept_apart_in_2d() -> None:
    X, labels = _blobs(600)
    est = TSNE(method="exact", random_state=1)
    Y = est.fit_transform(X)
    assert Y.shape == (600, 2) and Y.dtype == np.float32 and np.isfinite(Y).all()
    assert knn_accuracy(Y, labels, k=10) >= 0.99
    assert est.n_iter_ <= 1000 and est.kl_divergence_ > 0
    assert est.learning_rate_ == 50.0  # max(600 / 12 / 4, 50)


def test_same_seed_same_embedding_and_random_init() -> None:
    X, _ = _blobs(150, centers=3)
    a = TSNE(method="exact", random_state=3, init="random", max_iter=300).fit_transform(X)
    b = TSNE(method="exact", random_state=3, init="random", max_iter=300).fit_transform(X)
    np.testing.assert_array_equal(a, b)


def test_torch_path_matches_kernel_path(monkeypatch: pytest.MonkeyPatch) -> None:
    if _ckernel.load() is None:
        pytest.skip("no C compiler")
    # few iterations: the early-exaggeration dynamics are chaotic (a 1e-12 change of the initial
    # embedding moves points by O(1) after 60 iterations), so only short runs can be compared
    X, labels = _blobs(200, centers=4)
    kw = dict(method="exact", random_state=0, max_iter=20, dtype="float64")
    a = TSNE(**kw).fit(X)
    monkeypatch.setattr(_ckernel, "load", lambda: None)  # -> the torch path
    b = TSNE(**kw).fit(X)
    assert a.kl_divergence_ == pytest.approx(b.kl_divergence_, rel=1e-6)
    np.testing.assert_allclose(a.embedding_, b.embedding_, rtol=1e-4, atol=1e-4 * np.abs(a.embedding_).max())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    X, labels = _blobs(300)
    kw = dict(method="exact", random_state=0, max_iter=20, dtype=torch.float64)
    a = TSNE(device="cpu", **kw).fit(X)
    b = TSNE(device="cuda", **kw).fit(X)
    assert a.kl_divergence_ == pytest.approx(b.kl_divergence_, rel=1e-5)


def test_n_components_3() -> None:
    X, labels = _blobs(200, centers=4)
    Y = TSNE(n_components=3, method="exact", random_state=0, max_iter=500).fit_transform(X)
    assert Y.shape == (200, 3) and knn_accuracy(Y, labels) >= 0.99


# --------------------------------------------------------------------------- auto switch
def test_auto_switch_follows_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    X, labels = _blobs(80, centers=2)
    monkeypatch.setattr(tsne_mod, "AUTO_EXACT_MAX_N", 80)
    small = TSNE(perplexity=10, random_state=0, max_iter=300).fit(X)
    assert small.method_ == "exact"
    monkeypatch.setattr(tsne_mod, "AUTO_EXACT_MAX_N", 79)
    big = TSNE(perplexity=10, random_state=0, max_iter=300, n_jobs=1).fit(X)
    assert big.method_ == "opentsne"
    assert big.embedding_.shape == (80, 2) and np.isfinite(big.kl_divergence_) and big.n_iter_ == 300
    assert knn_accuracy(big.embedding_, labels) >= 0.99


def test_auto_threshold_is_a_sane_size() -> None:
    assert 1_000 <= tsne_mod.AUTO_EXACT_MAX_N <= 50_000


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("X", "kwargs", "err", "words"),
    [
        (np.random.default_rng(0).normal(size=(20, 3)), {"perplexity": 20.0}, ConfigError, "perplexity=20.0"),
        (np.random.default_rng(0).normal(size=(20, 3)), {"perplexity": 30.0}, ConfigError, "n_samples=20"),
        (np.ones((1, 3)), {}, DataError, "at least 2 points"),
        (np.zeros((0, 3)), {}, DataError, "at least 2 points"),
        (
            np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 3.0], [1.0, np.inf]]),
            {"perplexity": 1.5},
            DataError,
            "rows 1, 3",
        ),
        (np.ones(5), {}, DataError, "2-D"),
        (np.ones((10, 2)), {"method": "fast"}, ConfigError, "method='fast'"),
        (np.ones((10, 2)), {"metric": "cosine", "perplexity": 3}, ConfigError, "metric='cosine'"),
        (np.ones((10, 2)), {"dtype": "float16", "perplexity": 3}, ConfigError, "dtype='float16'"),
        (np.ones((10, 2)), {"max_iter": 0, "perplexity": 3}, ConfigError, "max_iter=0"),
    ],
)
def test_bad_input_fails_with_one_clear_line(X, kwargs, err, words) -> None:
    with pytest.raises(err) as info:
        TSNE(**kwargs).fit(X)
    msg = str(info.value)
    assert isinstance(info.value, NnlabError) and "\n" not in msg and words in msg


def test_knn_accuracy_counts_majorities() -> None:
    Y = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2], [0.15]])
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    # the last point sits among the 0s: it is the only one misclassified with k=2
    assert knn_accuracy(Y, labels, k=2) == pytest.approx(6 / 7)
