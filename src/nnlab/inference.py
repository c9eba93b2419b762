"""A checkpoint's model on its own dataset, outside a Trainer: the points t-SNE embeds, and inference speed.

Why a module of its own: loading a checkpoint's model (``nnlab.utils.checkpoint``, Hydra's ``instantiate``)
and building its dataset's test batches (``nnlab.data``) need the models and data layers, which the t-SNE
package must not know ("t-SNE stands alone" in pyproject's import contracts). So the pure part, what each
modality's features are (``nnlab.tsne.features``), stays in ``nnlab.tsne``, and this module feeds it. It is a
layer of its own, between ``nnlab.train | nnlab.evaluate | nnlab.report`` and ``nnlab.models | nnlab.data |
nnlab.tsne``, because both ``nnlab.cli.tsne`` and ``nnlab.report`` (inference sentences per second, as
``nnlab report throughput=true`` prints) use it, and the modules of one layer import none of each other.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnlab.tsne.features import FeatureOptions, Points, call_model, extract
from nnlab.utils.errors import DataError


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """The model of an nnlab checkpoint (rebuilt from its stored config, weights loaded, eval mode) and its
    ``checkpoint["nnlab"]`` metadata (config, model_kwargs, family)."""
    from nnlab.utils.checkpoint import CHECKPOINT_KEY, model_from_checkpoint
    from nnlab.utils.checkpoint import load_checkpoint as _load

    ckpt = _load(path)
    return model_from_checkpoint(ckpt), ckpt[CHECKPOINT_KEY]


def split_batch(batch) -> tuple[tuple, torch.Tensor]:
    """(model inputs, labels) of a batch: ``(x, y)`` / ``(x1, ..., y)`` tuples, or dicts with a label key."""
    if isinstance(batch, dict):
        key = next((k for k in ("label", "labels", "y", "target") if k in batch), None)
        if key is None:
            raise DataError(f"batch dict has no label key (label/labels/y/target): {sorted(batch)}")
        rest = {k: v for k, v in batch.items() if k != key}
        return (rest,), batch[key]
    if isinstance(batch, list | tuple) and len(batch) >= 2:
        return tuple(batch[:-1]), batch[-1]
    raise DataError(f"cannot split a batch of type {type(batch).__name__} into inputs and labels")


def test_batches(meta: dict, data_dir: str | None = None) -> Iterator[tuple[tuple, torch.Tensor]]:
    """(inputs, labels) of the test split of the dataset a checkpoint was trained on (``data_dir`` replaces
    the stored one)."""
    from nnlab.utils.run import build

    data_cfg = dict(meta["config"]["data"])
    if data_dir and "data_dir" in data_cfg:
        data_cfg["data_dir"] = data_dir
    dm = build(data_cfg)
    dm.prepare_data()
    dm.setup("test")
    for batch in dm.test_dataloader():
        yield split_batch(batch)


def checkpoint_points(path: str | Path, opts: FeatureOptions, data_dir: str | None = None) -> Points:
    """What ``nnlab tsne ckpt_path=...`` embeds: the features of the checkpoint's modality."""
    model, meta = load_checkpoint(path)
    return extract(model, meta, lambda: test_batches(meta, data_dir), opts)


def raw_points(name: str, n: int, seed: int = 0, data_dir: str | None = None) -> Points:
    """A class-balanced sample of the test split of an image dataset (``nnlab.data`` loaders), pixels in [0, 1]."""
    from nnlab.data import load_image_arrays
    from nnlab.utils.subsets import balanced_subset

    _, _, x, y, names = load_image_arrays(name, data_dir or os.environ.get("DATA_DIR", "data"))
    idx = balanced_subset(y, min(n, len(y)), seed=seed)
    X = x[idx].reshape(len(idx), -1).astype(np.float64)
    X /= max(float(X.max()), 1e-12)  # 0..255 (or 0..16 for digits) -> 0..1; t-SNE only sees ratios anyway
    return Points(X, f"{name} raw pixels (test split, n={len(idx)})", y[idx], list(names))


def examples_per_second(path: str | Path, data_dir: str | None = None, repeats: int = 3) -> float:
    """Inference speed of a checkpoint's model on its dataset's test split (its ``eval_batch_size`` batches,
    already in memory), in examples per second: the best of ``repeats`` passes, in this process's torch
    threads. For the text family, sentences per second."""
    model, meta = load_checkpoint(path)
    batches = list(test_batches(meta, data_dir))
    n = sum(len(y) for _, y in batches)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            t = time.perf_counter()
            for inputs, _ in batches:
                call_model(model, inputs)
            best = min(best, time.perf_counter() - t)
    return n / best
