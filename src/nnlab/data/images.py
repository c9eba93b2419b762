"""Image classification data: one LightningDataModule for every image dataset.

Each dataset is a loader returning uint8/float arrays ``(x_train, y_train, x_test, y_test, class_names)``
with ``x`` of shape (N, C, H, W). The DataModule then carves a seeded validation split out of train,
computes per-channel normalization statistics on the train part only, and serves in-memory tensors.

Where a dataset comes from, in order: local files (``data_dir``, or the Debian package for
Fashion-MNIST), then the HF hub (cached under ``data_dir/hf``). A dataset found nowhere fails in
seconds with one line saying where it looked and how to get it.
"""

from __future__ import annotations

import gzip
import logging
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from nnlab.data.hub import hub_cache_dir, load_hub
from nnlab.data.loader import ResumableDataLoader
from nnlab.utils.errors import ConfigError, DataError, choice_error

log = logging.getLogger(__name__)

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# ----------------------------------------------------------------------------- loaders


def load_digits_arrays(data_dir: Path, test_fraction: float = 0.2, seed: int = 0) -> Arrays:
    """scikit-learn's bundled 8x8 digits (1797 images, 17 gray levels), split into train/test with a fixed seed.

    The test split is fixed (``seed`` is the dataset's, not the run's) so that every run is scored on the
    same images.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)[:, None]  # (N, 1, 8, 8), values 0..16
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test], [str(i) for i in range(10)]


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file, the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}; delete it and let nnlab fetch it again") from e
    if len(raw) < 4:
        raise DataError(f"{path} is not an IDX file (too short); delete it and fetch it again")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(
            f"{path} is not an unsigned-byte IDX file (magic {raw[:4].hex()}); delete it and fetch it again"
        )
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {data.size}")
    return data.reshape(shape).copy()  # writable, owned memory for torch.from_numpy


def _find_idx_dir(candidates: list[Path]) -> Path | None:
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for d in candidates:
        if all((d / n).exists() or (d / f"{n}.gz").exists() for n in names):
            return d
    return None


def _idx(d: Path, name: str) -> np.ndarray:
    p = d / f"{name}.gz"
    return read_idx(p if p.exists() else d / name)


def load_idx_dir(d: Path, class_names: list[str]) -> Arrays:
    x_tr, y_tr = _idx(d, "train-images-idx3-ubyte"), _idx(d, "train-labels-idx1-ubyte")
    x_te, y_te = _idx(d, "t10k-images-idx3-ubyte"), _idx(d, "t10k-labels-idx1-ubyte")
    return x_tr[:, None], y_tr.astype(np.int64), x_te[:, None], y_te.astype(np.int64), class_names


def load_hub_images(
    hub_id: str,
    data_dir: Path,
    image_key: str,
    label_key: str,
    class_names: list[str] | None,
    looked: list[str],
    local_hint: str = "put the files in one of those places",
) -> Arrays:
    """Load an image classification dataset from the HF hub (cached under ``data_dir/hf``)."""
    cache = hub_cache_dir(data_dir)
    hint = f"{local_hint} (nnlab caches hub downloads in {cache})"
    ds = load_hub(hub_id, hub_id, ", ".join(looked), hint=hint, cache_dir=str(cache)).with_format("numpy")

    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        imgs = np.stack([np.asarray(im) for im in ds[split][image_key]])
        if imgs.ndim == 3:
            imgs = imgs[:, None]
        else:
            imgs = imgs.transpose(0, 3, 1, 2)
        return imgs, np.asarray(ds[split][label_key], dtype=np.int64)

    x_tr, y_tr = arrays("train")
    x_te, y_te = arrays("test")
    names = class_names or ds["train"].features[label_key].names
    return x_tr, y_tr, x_te, y_te, list(names)


def load_fashion_mnist_arrays(data_dir: Path) -> Arrays:
    candidates = [data_dir / "fashion_mnist", data_dir / "fashion-mnist", DEBIAN_FASHION_DIR]
    found = _find_idx_dir(candidates)
    if found is not None:
        return load_idx_dir(found, FASHION_CLASSES)
    return load_hub_images(
        "zalando-datasets/fashion_mnist", data_dir, "image", "label", FASHION_CLASSES, [str(c) for c in candidates],
        local_hint="run `apt-get install dataset-fashion-mnist` or put the four IDX .gz files in the first of those",
    )  # fmt: skip


def load_mnist_arrays(data_dir: Path) -> Arrays:
    candidates = [data_dir / "mnist", data_dir / "MNIST" / "raw"]
    found = _find_idx_dir(candidates)
    if found is not None:
        return load_idx_dir(found, [str(i) for i in range(10)])
    return load_hub_images(
        "ylecun/mnist", data_dir, "image", "label", [str(i) for i in range(10)], [str(c) for c in candidates],
        local_hint="put the four IDX .gz files in the first of those",
    )  # fmt: skip


def load_cifar10_arrays(data_dir: Path) -> Arrays:
    local = data_dir / "cifar10" / "cifar10.npz"
    if local.exists():
        z = np.load(local)
        return z["x_train"], z["y_train"].astype(np.int64), z["x_test"], z["y_test"].astype(np.int64), CIFAR10_CLASSES
    return load_hub_images(
        "uoft-cs/cifar10", data_dir, "img", "label", CIFAR10_CLASSES, [str(local)],
        local_hint="save x_train (N,3,32,32 uint8), y_train, x_test, y_test there with numpy.savez",
    )  # fmt: skip


# torchvision's ImageFolder extensions, so a folder it reads is one nnlab reads
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def _read_class_folders(root: Path, size: tuple[int, int] | None) -> tuple[list[np.ndarray], list[int], list[str]]:
    """``root/<class>/<image>`` as torchvision's ImageFolder reads it: classes are the sorted sub-folder names."""
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class sub-folders; lay images out as {root}/<class>/<image>.png")
    images, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).rglob("*")):
            if f.suffix.lower() not in IMAGE_EXTENSIONS or not f.is_file():
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if im.mode in ("1", "L", "I;16", "I", "F") else "RGB")
                    if size is not None and im.size != size:
                        im = im.resize(size, Image.BILINEAR)
                    images.append(np.asarray(im))
            except (UnidentifiedImageError, OSError) as e:
                raise DataError(f"{f} is not a readable image ({e}); delete or replace it") from e
            labels.append(label)
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}/<class>/")
    return images, labels, classes


def _stack(images: list[np.ndarray], where: Path) -> np.ndarray:
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(
            f"images under {where} differ in size or channels ({', '.join(map(str, sorted(shapes)[:3]))}); "
            "set data.image_size=[H,W] to resize them all"
        )
    x = np.stack(images)
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)


def load_image_folder_arrays(
    data_dir: Path, path: str | None = None, image_size: list[int] | None = None, test_fraction: float = 0.2
) -> Arrays:
    """A folder of class sub-folders: ``path/train/<class>/*`` and ``path/test/<class>/*``, or ``path/<class>/*``
    with a fixed (dataset-seeded) ``test_fraction`` held out for testing, as for digits."""
    if not path:
        raise ConfigError("data=image_folder needs data.path=DIR (a folder of class sub-folders)")
    root = Path(path).expanduser()
    root = root if root.is_absolute() else data_dir / root if (data_dir / root).is_dir() else root.resolve()
    if not root.is_dir():
        raise DataError(f"data.path={path}: {root} is not a directory; give a folder of class sub-folders")
    size = (int(image_size[1]), int(image_size[0])) if image_size else None  # PIL sizes are (W, H)
    if (root / "train").is_dir() and (root / "test").is_dir():
        tr, y_tr, names = _read_class_folders(root / "train", size)
        te, y_te, test_names = _read_class_folders(root / "test", size)
        if test_names != names:
            raise DataError(f"{root}/test has classes {test_names}, {root}/train has {names}; use the same folders")
        x_tr, x_te = _stack(tr, root), _stack(te, root)
        if x_tr.shape[1:] != x_te.shape[1:]:
            raise DataError(f"train and test images under {root} differ in shape; set data.image_size=[H,W]")
        return x_tr, np.asarray(y_tr, np.int64), x_te, np.asarray(y_te, np.int64), names
    images, labels, names = _read_class_folders(root, size)
    x, y = _stack(images, root), np.asarray(labels, np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    if n_test < 1 or n_test == len(x):
        raise DataError(f"{root} has {len(x)} images: too few to hold out a test split; add images")
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test], names


LOADERS: dict[str, Callable[..., Arrays]] = {
    "digits": load_digits_arrays,
    "fashion_mnist": load_fashion_mnist_arrays,
    "mnist": load_mnist_arrays,
    "cifar10": load_cifar10_arrays,
    "image_folder": load_image_folder_arrays,
}


def load_image_arrays(name: str, data_dir: str | Path, **options) -> Arrays:
    """The raw (unnormalized) train/test arrays of image dataset ``name`` (``options``: the loader's own)."""
    if name not in LOADERS:
        raise choice_error("data.name", name, LOADERS)
    return LOADERS[name](Path(data_dir).expanduser().resolve(), **options)


# ----------------------------------------------------------------------------- DataModule


class ImageDataModule(L.LightningDataModule):
    """In-memory image classification data with a seeded train/val split and train-only normalization.

    Args:
        name: dataset (``digits``, ``fashion_mnist``, ``mnist``, ``cifar10``, ``image_folder``).
        data_dir: where local files are looked for and downloads cached.
        batch_size: training and evaluation batch size.
        val_fraction: share of the training set held out for validation (seeded by ``seed``).
        seed: seed of the validation split.
        train_subset: if set, keep only this many training images (after the split), for quick runs.
        path: ``image_folder`` only: a folder of class sub-folders (absolute, or relative to ``data_dir``).
        image_size: ``image_folder`` only: ``[H, W]`` to resize every image to (default: keep their size).
    """

    modality = "image"

    def __init__(
        self,
        name: str = "digits",
        data_dir: str = "data",
        batch_size: int = 64,
        val_fraction: float = 0.1,
        seed: int = 0,
        train_subset: int | None = None,
        eval_batch_size: int | None = None,
        path: str | None = None,
        image_size: list[int] | None = None,
    ) -> None:
        super().__init__()
        if name not in LOADERS:
            raise choice_error("data.name", name, LOADERS)
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction={val_fraction} must be in (0, 1)")
        if batch_size < 1:
            raise ConfigError(f"data.batch_size={batch_size} must be >= 1")
        if name == "image_folder" and not path:
            raise ConfigError("data=image_folder needs data.path=DIR (a folder of class sub-folders)")
        self.name, self.data_dir, self.batch_size = name, data_dir, batch_size
        self.eval_batch_size = eval_batch_size or max(batch_size, 512)
        self.val_fraction, self.seed, self.train_subset = val_fraction, seed, train_subset
        self.options = {"path": path, "image_size": image_size} if name == "image_folder" else {}
        self.data_train = self.data_val = self.data_test = None
        self.class_names: list[str] = []
        self.mean = self.std = None
        self._arrays: Arrays | None = None

    def prepare_data(self) -> None:
        # Once per node (local rank 0): a hub dataset is downloaded into <data_dir>/hf here; the arrays are
        # kept for this process's setup(), so nothing is read twice.
        if self.data_train is None and self._arrays is None:
            self._arrays = load_image_arrays(self.name, self.data_dir, **self.options)

    def setup(self, stage: str | None = None) -> None:
        if self.data_train is not None:
            return
        arrays, self._arrays = self._arrays, None
        x_tr, y_tr, x_te, y_te, self.class_names = arrays or load_image_arrays(self.name, self.data_dir, **self.options)
        order = np.random.default_rng(self.seed).permutation(len(x_tr))
        n_val = int(round(self.val_fraction * len(x_tr)))
        val_idx, train_idx = order[:n_val], order[n_val:]
        if self.train_subset:
            train_idx = train_idx[: self.train_subset]
        x_train = torch.from_numpy(np.ascontiguousarray(x_tr[train_idx])).float()
        # Statistics from the training part only: validation and test never leak into normalization.
        self.mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
        self.std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)

        def norm(x: np.ndarray) -> torch.Tensor:
            return (torch.from_numpy(np.ascontiguousarray(x)).float() - self.mean) / self.std

        self.data_train = TensorDataset((x_train - self.mean) / self.std, torch.from_numpy(y_tr[train_idx]))
        self.data_val = TensorDataset(norm(x_tr[val_idx]), torch.from_numpy(y_tr[val_idx]))
        self.data_test = TensorDataset(norm(x_te), torch.from_numpy(y_te))
        log.info(
            "%s: %d train / %d val / %d test images of shape %s, %d classes",
            self.name, len(self.data_train), len(self.data_val), len(self.data_test),
            tuple(x_train.shape[1:]), len(self.class_names),
        )  # fmt: skip

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> list[int]:
        return list(self.data_train.tensors[0].shape[1:])

    def model_kwargs(self) -> dict:
        return {"num_classes": self.num_classes, "input_shape": self.input_shape, "class_names": self.class_names}

    def _loader(self, ds: TensorDataset, batch_size: int, shuffle: bool) -> DataLoader:
        # Index the in-memory tensors a whole batch at a time: no per-sample __getitem__ + collate.
        g = torch.Generator()
        sampler = RandomSampler(ds, generator=g) if shuffle else SequentialSampler(ds)
        batches = BatchSampler(sampler, batch_size, drop_last=False)
        return ResumableDataLoader(ds, sampler=batches, batch_size=None, seed=self.seed, generator=g)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.data_train, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.data_val, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.data_test, self.eval_batch_size, shuffle=False)
