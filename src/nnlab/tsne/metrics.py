"""How well an embedding keeps neighbourhoods: k-NN accuracy and trustworthiness."""

from __future__ import annotations

import numpy as np


def knn_accuracy(Y: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Leave-one-out k-nearest-neighbour accuracy in the embedding: the fraction of points whose label is the
    majority label among their k nearest *other* points (ties go to the smallest label)."""
    from sklearn.neighbors import NearestNeighbors

    Y, labels = np.asarray(Y), np.asarray(labels)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(Y).kneighbors(Y)
    # drop each point itself; with duplicate points it may not come first, so remove it by identity
    own = idx == np.arange(len(Y))[:, None]
    own[own.sum(1) == 0, -1] = True
    neigh = idx[~own].reshape(len(Y), k)
    _, codes = np.unique(labels, return_inverse=True)
    votes = np.zeros((len(Y), codes.max() + 1), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(Y)), k), codes[neigh].ravel()), 1)
    return float((votes.argmax(1) == codes).mean())


def trustworthiness(X: np.ndarray, Y: np.ndarray, n_neighbors: int = 10) -> float:
    """scikit-learn's trustworthiness (1 = no point has a 2-D neighbour that was far away in X)."""
    from sklearn.manifold import trustworthiness as _tw

    return float(_tw(np.asarray(X), np.asarray(Y), n_neighbors=n_neighbors))
