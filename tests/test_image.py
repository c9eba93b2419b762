"""Image family: data sizes and normalization, nets for every switch, a short fit that learns."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from conftest import compose_cfg, make_image_folder, needs_fashion_mnist
from nnlab.data import ImageDataModule, load_image_arrays
from nnlab.data.images import read_idx
from nnlab.models import ImageClassifier
from nnlab.nn import MLP, ConvNet
from nnlab.nn.registry import NORMS, POOLS
from nnlab.train import run
from nnlab.utils.errors import DataError


def test_digits_split_sizes_and_train_only_normalization() -> None:
    dm = ImageDataModule("digits", val_fraction=0.1, seed=3)
    dm.setup()
    sizes = len(dm.data_train), len(dm.data_val), len(dm.data_test)
    assert sum(sizes) == 1797 and sizes[2] == 359 and sizes[1] == round(0.1 * (1797 - 359))
    x_train = dm.data_train.tensors[0]
    assert torch.allclose(x_train.mean((0, 2, 3)), torch.zeros(1), atol=1e-5)
    assert torch.allclose(x_train.std((0, 2, 3)), torch.ones(1), atol=1e-3)
    # val/test use the train statistics, so their mean is close to, not exactly, zero
    assert abs(dm.data_val.tensors[0].mean().item()) < 0.2
    assert dm.model_kwargs() == {
        "num_classes": 10,
        "input_shape": [1, 8, 8],
        "class_names": [str(i) for i in range(10)],
    }


def test_split_is_seeded() -> None:
    a, b, c = (ImageDataModule("digits", seed=s) for s in (1, 1, 2))
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.data_val.tensors[1], b.data_val.tensors[1])
    assert not torch.equal(a.data_val.tensors[1], c.data_val.tensors[1])
    assert torch.equal(a.data_test.tensors[1], c.data_test.tensors[1]), "the test split never depends on the run seed"


def test_batches_cover_the_epoch() -> None:
    dm = ImageDataModule("digits", batch_size=100)
    dm.setup()
    ys = torch.cat([y for _, y in dm.train_dataloader()])
    assert len(ys) == len(dm.data_train) and sorted(ys.tolist()) == sorted(dm.data_train.tensors[1].tolist())


@needs_fashion_mnist
def test_fashion_mnist_60000_10000_balanced() -> None:
    x_tr, y_tr, x_te, y_te, names = load_image_arrays("fashion_mnist", "/nonexistent")
    assert x_tr.shape == (60000, 1, 28, 28) and x_te.shape == (10000, 1, 28, 28)
    assert x_tr.dtype == np.uint8 and len(names) == 10
    assert np.bincount(y_tr).tolist() == [6000] * 10
    assert np.bincount(y_te).tolist() == [1000] * 10


def test_idx_reader_rejects_truncated_file(tmp_path) -> None:
    good = tmp_path / "x-idx1-ubyte"
    good.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5]))
    assert read_idx(good).tolist() == [1, 2, 3, 4, 5]
    bad = tmp_path / "y-idx1-ubyte"
    bad.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(DataError, match="truncated"):
        read_idx(bad)


def test_missing_dataset_fails_fast_with_one_line(tmp_path, monkeypatch) -> None:
    """Offline, a missing dataset is one line at once: no connection is even tried (so no retries to wait for;
    a wall-clock bound here failed on a loaded machine, where importing the hub libraries alone took seconds)."""
    import socket

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tried: list = []

    def no_network(*args, **kwargs):
        tried.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(DataError) as e:
        load_image_arrays("mnist", tmp_path)
    msg = str(e.value)
    assert not tried, f"tried to connect: {tried}"
    assert "\n" not in msg and "ylecun/mnist" in msg and str(tmp_path / "mnist") in msg and "offline" in msg


@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("pool", sorted(POOLS))
def test_convnet_every_norm_and_pool(norm: str, pool: str) -> None:
    net = ConvNet([1, 28, 28], 10, channels=[8, 16], norm=norm, pool=pool)
    x = torch.randn(5, 1, 28, 28, requires_grad=True)
    out = net(x)
    assert out.shape == (5, 10)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_convnet_skips_pooling_when_maps_are_too_small() -> None:
    net = ConvNet([1, 8, 8], 10, channels=[4, 4, 4, 4], pool="max")
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)  # 8 -> 4 -> 2 -> 1 -> 1


@pytest.mark.parametrize("norm", ["none", "batch", "layer", "group"])
def test_mlp_every_norm(norm: str) -> None:
    assert MLP([3, 4, 4], 7, hidden=[16, 8], norm=norm)(torch.randn(3, 3, 4, 4)).shape == (3, 7)


def test_short_fit_on_digits_learns(tmp_path) -> None:
    from conftest import FAST

    cfg = compose_cfg(overrides=[*FAST, "trainer.max_epochs=2"], output_dir=tmp_path)
    record = run(cfg)
    assert record["status"] == "ok"
    assert record["test/acc"] > 0.85, record  # chance is 0.10
    assert record["val/acc"] > 0.85
    assert record["params"] > 0 and record["epoch"] == 2
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    ckpt = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["nnlab"]["model_kwargs"]["num_classes"] == 10
    assert ckpt["nnlab"]["config"]["model"]["norm"] == cfg.model.norm


def test_image_classifier_features_are_penultimate() -> None:
    m = ImageClassifier(
        functools.partial(ConvNet, hidden=32), functools.partial(torch.optim.SGD, lr=0.1), 10, [1, 8, 8]
    )
    assert m.features(torch.randn(4, 1, 8, 8)).shape == (4, 32)


def test_hub_loader_converts_an_hf_image_dataset(tmp_path, monkeypatch) -> None:
    """The hub path of the loaders, fed by a local HF dataset of the same schema as the hub's (no network)."""
    import datasets
    from PIL import Image

    import nnlab.data.images as images

    rng = np.random.default_rng(0)
    labels = datasets.ClassLabel(names=["a", "b", "c"])
    features = datasets.Features({"image": datasets.Image(), "label": labels})
    repo = tmp_path / "repo" / "data"
    repo.mkdir(parents=True)
    for split, n in (("train", 12), ("test", 6)):
        pixels = rng.integers(0, 256, size=(n, 5, 7), dtype=np.uint8)
        columns = {"image": [Image.fromarray(p) for p in pixels], "label": [i % 3 for i in range(n)]}
        ds = datasets.Dataset.from_dict(columns, features=features)
        ds.to_parquet(str(repo / f"{split}-00000-of-00001.parquet"))
        if split == "train":
            expected = pixels
    x_tr, y_tr, x_te, y_te, names = images.load_hub_images(
        str(tmp_path / "repo"), tmp_path / "cache", "image", "label", None, looked=[]
    )
    assert x_tr.shape == (12, 1, 5, 7) and x_te.shape == (6, 1, 5, 7)
    assert np.array_equal(x_tr[:, 0], expected)
    assert y_tr.tolist() == [i % 3 for i in range(12)] and names == ["a", "b", "c"]


def test_nan_loss_stops_at_once_with_one_line(tmp_path) -> None:
    from conftest import FAST
    from nnlab.utils.errors import TrainingError

    # lr=1e30 makes the weights blow up within a few steps; the first non-finite loss must stop the run.
    cfg = compose_cfg(
        overrides=[*FAST, "trainer.max_epochs=3", "model.optimizer.lr=1e30", "model.norm=none", "model.scheduler=null"],
        output_dir=tmp_path,
    )
    with pytest.raises(TrainingError) as e:
        run(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "training loss is" in msg and "at step" in msg
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "failed" and "at step" in record["error"]


def test_image_folder_reads_class_subfolders_and_holds_out_a_test_split(tmp_path) -> None:
    make_image_folder(tmp_path / "pets", {"dog": 10, "cat": 15})
    x_tr, y_tr, x_te, y_te, names = load_image_arrays("image_folder", tmp_path, path="pets")  # relative to data_dir
    assert names == ["cat", "dog"]  # sorted, as ImageFolder does
    assert x_tr.shape[1:] == (1, 8, 8) and len(x_tr) + len(x_te) == 25 and len(x_te) == 5
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == [0] * 15 + [1] * 10


def test_image_folder_train_test_layout_rgb_and_resize(tmp_path) -> None:
    make_image_folder(tmp_path / "train", {"a": 4, "b": 4}, size=(12, 10), mode="RGB")
    make_image_folder(tmp_path / "test", {"a": 2, "b": 2}, size=(6, 6), mode="RGB")
    x_tr, _, x_te, y_te, names = load_image_arrays("image_folder", "/", path=str(tmp_path), image_size=[8, 8])
    assert x_tr.shape == (8, 3, 8, 8) and x_te.shape == (4, 3, 8, 8) and names == ["a", "b"]
    with pytest.raises(DataError, match="data.image_size"):  # without resizing, the sizes differ
        load_image_arrays("image_folder", "/", path=str(tmp_path))


@pytest.mark.parametrize(
    "layout,match",
    [("empty", "no class sub-folders"), ("not_an_image", "not a readable image"), ("missing", "not a directory")],
)
def test_image_folder_faults_are_one_line(tmp_path, layout: str, match: str) -> None:
    root = tmp_path / "imgs"
    if layout != "missing":
        root.mkdir()
    if layout == "not_an_image":
        make_image_folder(root, {"a": 3, "b": 3})
        (root / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=match) as e:
        load_image_arrays("image_folder", tmp_path, path=str(root))
    assert "\n" not in str(e.value)


def test_image_folder_trains(tmp_path) -> None:
    make_image_folder(tmp_path / "pets", {"cat": 20, "dog": 20})
    cfg = compose_cfg(
        overrides=["data=image_folder", f"data.path={tmp_path / 'pets'}", "trainer.max_epochs=3", "callbacks=minimal",
                   "logger=csv", "trainer.enable_progress_bar=false", "extras.print_config=false"],
        output_dir=tmp_path / "run",
    )  # fmt: skip
    record = run(cfg)
    assert record["status"] == "ok" and record["test/acc"] >= 0.75, record  # two brightness levels: easy
