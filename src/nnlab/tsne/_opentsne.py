"""Bridge to openTSNE (FFT-accelerated interpolation of the repulsive forces, sparse kNN affinities)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nnlab.tsne._tsne import TSNE


def fit_opentsne(est: TSNE, X: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Run openTSNE with ``est``'s settings; returns (embedding, KL reported by openTSNE, iterations).

    Conventions differ from scikit-learn's and they are mapped here: openTSNE's gradient omits the factor 4,
    so a numeric scikit-learn learning rate is multiplied by 4 ("auto" keeps openTSNE's own n / exaggeration,
    which is the same step); ``max_iter`` counts the 250 exaggerated iterations like scikit-learn's.
    openTSNE's KL is measured against its own sparse (3·perplexity-nearest-neighbour) P.
    """
    from openTSNE import TSNE as OpenTSNE

    from nnlab.tsne._tsne import _EXPLORATION_ITER

    init = est.init if isinstance(est.init, str) else np.asarray(est.init, dtype=np.float64)
    lr = "auto" if est.learning_rate == "auto" else 4.0 * float(est.learning_rate)
    # our "euclidean" and "sqeuclidean" both mean Gaussian affinities on squared distances, which is what
    # openTSNE's "euclidean" computes
    metric = "euclidean" if est.metric == "sqeuclidean" else est.metric
    n_iter = max(0, est.max_iter - _EXPLORATION_ITER)
    model = OpenTSNE(
        n_components=est.n_components,
        perplexity=est.perplexity,
        learning_rate=lr,
        early_exaggeration=est.early_exaggeration,
        early_exaggeration_iter=min(_EXPLORATION_ITER, est.max_iter),
        n_iter=n_iter,
        initialization=init,
        metric=metric,
        random_state=est.random_state,
        n_jobs=est.n_jobs,
        verbose=bool(est.verbose),
    )
    emb = model.fit(X)
    return (
        np.asarray(emb, dtype=np.float32),
        float(emb.kl_divergence),
        min(_EXPLORATION_ITER, est.max_iter) + n_iter,
    )
