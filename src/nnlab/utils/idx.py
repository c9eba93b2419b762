"""A reader for the IDX files of MNIST / Fashion-MNIST (``*-idx3-ubyte[.gz]``), usable without the hub.

Format (big-endian): two zero bytes, a type code (0x08 = uint8), the number of dimensions k, k uint32 sizes,
then the data in C order.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from nnlab.utils.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
# where Fashion-MNIST is looked for, in order, unless a directory is given
FASHION_MNIST_DIRS = (
    "{data_dir}/fashion-mnist",
    "{data_dir}/fashion_mnist",
    "/usr/share/datasets/fashion-mnist",
)


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in one IDX file (gzipped or not)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def find_fashion_mnist(directory: str | Path | None = None) -> Path:
    """The directory holding Fashion-MNIST's four IDX files: ``directory``, else ``$DATA_DIR/fashion-mnist``
    (``DATA_DIR`` defaults to ``data``), else ``/usr/share/datasets/fashion-mnist``."""
    candidates = (
        [Path(directory)]
        if directory
        else [Path(c.format(data_dir=os.environ.get("DATA_DIR", "data"))) for c in FASHION_MNIST_DIRS]
    )
    for c in candidates:
        if (c / "train-images-idx3-ubyte.gz").exists() or (c / "train-images-idx3-ubyte").exists():
            return c
    raise DataError(
        f"Fashion-MNIST IDX files not found in {', '.join(map(str, candidates))}; "
        "put train-images-idx3-ubyte.gz and friends in one of them (or set DATA_DIR)"
    )


def load_fashion_mnist(
    split: str = "train", directory: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (n, 28, 28), labels int64 (n,))`` of Fashion-MNIST's ``train`` or ``test`` split."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DataError(f"split={split!r} is not a Fashion-MNIST split; choose train or test")
    root = find_fashion_mnist(directory)

    def one(kind: str) -> np.ndarray:
        name = f"{prefix}-{kind}-ubyte"
        return read_idx(root / f"{name}.gz" if (root / f"{name}.gz").exists() else root / name)

    images, labels = one("images-idx3"), one("labels-idx1").astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels in {root}")
    return images, labels


def balanced_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` points with (as nearly as possible) the same count per class, without replacement."""
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
