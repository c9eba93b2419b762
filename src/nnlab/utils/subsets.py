"""Class-balanced subsets, for plots and benchmarks that should not be dominated by the largest classes."""

from __future__ import annotations

import numpy as np

from nnlab.utils.errors import DataError


def balanced_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` points, the same count per class (the first ``n mod k`` classes get one more),
    drawn without replacement with a fixed seed."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = np.full(len(classes), n // len(classes))
    per[: n - per.sum()] += 1
    picks = []
    for c, k in zip(classes, per):
        pool = np.flatnonzero(labels == c)
        if k > len(pool):
            raise DataError(f"class {c} has only {len(pool)} points, {k} needed for a balanced subset of {n}")
        picks.append(rng.choice(pool, size=k, replace=False))
    return np.sort(np.concatenate(picks))
