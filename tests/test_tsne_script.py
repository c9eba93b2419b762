"""nnlab tsne (scripts/tsne.py): raw inputs and a checkpoint of each modality (image, text, tokens) give a plot.

The checkpoints here are built like train.py writes them (``checkpoint["nnlab"]`` with config, model_kwargs,
family; loadable with ``weights_only=True``) around tiny stand-in models, so the loading (``nnlab.inference``),
the feature hooks (``nnlab.tsne.features``) and the plotting are exercised without a training run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nnlab.cli.tsne as tsne_script
from nnlab.cli import run_command
from nnlab.cli.args import parse
from nnlab.inference import checkpoint_points, load_checkpoint
from nnlab.utils.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]


def tsne(*argv: str) -> Path:
    return run_command("tsne", argv)


def points(path: Path, *argv: str):
    """What ``nnlab tsne ckpt_path=PATH ARGV...`` embeds."""
    args = parse(tsne_script.COMMAND, [f"ckpt_path={path}", *argv])
    return checkpoint_points(args.ckpt_path, tsne_script.options(args), args.data_dir)


N_CLASSES = 3


class TinyImageNet(nn.Module):
    modality = "image"

    def __init__(self, num_classes: int, input_shape: list[int], class_names: list[str], width: int = 8):
        super().__init__()
        c = input_shape[0]
        self.features = nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * 4, 16), nn.ReLU(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


class TinyTextNet(nn.Module):
    modality = "text"

    def __init__(self, vocab: list[str], num_classes: int, class_names: list[str], pad_index: int, dim: int = 8):
        super().__init__()
        self.emb = nn.Embedding(len(vocab), dim, padding_idx=pad_index)
        self.out = nn.Linear(dim, num_classes)

    def forward(self, tokens):
        return self.out(self.emb(tokens).mean(1))


class TinyLM(nn.Module):
    modality = "tokens"

    def __init__(self, vocab: list[str], dim: int = 8):
        super().__init__()
        self.emb = nn.Embedding(len(vocab), dim)
        self.out = nn.Linear(dim, len(vocab))

    def forward(self, tokens):
        return self.out(self.emb(tokens))


class TinyImageData:
    """Three classes of 1x6x6 images with different mean intensity."""

    def __init__(self, n: int = 90, data_dir: str = "nowhere"):
        self.n, self.data_dir = n, data_dir

    def prepare_data(self):
        pass

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        y = torch.arange(self.n) % N_CLASSES
        x = torch.randn(self.n, 1, 6, 6, generator=g) * 0.3 + y[:, None, None, None].float() * 3
        self.ds = TensorDataset(x, y)

    def test_dataloader(self):
        return DataLoader(self.ds, batch_size=32)


class TinyTextData(TinyImageData):
    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        y = torch.arange(self.n) % N_CLASSES
        # class c draws its tokens from vocabulary block c
        tokens = 1 + y[:, None] * 5 + torch.randint(0, 5, (self.n, 7), generator=g)
        self.ds = TensorDataset(tokens, y)


def _save(tmp_path: Path, model: nn.Module, target: str, data_target: str | None, kwargs: dict, family: str):
    config = {"model": {"_target_": f"{__name__}.{target}"}, "data": {}}
    if data_target:
        config["data"] = {"_target_": f"{__name__}.{data_target}", "data_dir": "nowhere"}
    path = tmp_path / family / "checkpoints" / "best.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "nnlab": {"config": config, "model_kwargs": kwargs,
                "family": family}}, path)  # fmt: skip
    torch.load(path, weights_only=True)  # the contract
    return path


def test_raw_digits_plot(tmp_path: Path) -> None:
    out = tsne("data=digits", "n=150", "max_iter=300", f"out={tmp_path / 'd.png'}")
    assert out.stat().st_size > 10_000


def test_image_checkpoint_penultimate_features(tmp_path: Path) -> None:
    torch.manual_seed(0)
    kwargs = {"num_classes": N_CLASSES, "input_shape": [1, 6, 6], "class_names": ["a", "b", "c"]}
    path = _save(tmp_path, TinyImageNet(**kwargs), "TinyImageNet", "TinyImageData", kwargs, "image_classifier")
    pts = points(path, "n=60")
    assert pts.X.shape == (60, 16)  # the input of the last Linear, not the logits
    assert pts.labels.tolist() == (np.arange(60) % N_CLASSES).tolist() and pts.class_names == ["a", "b", "c"]
    out = tsne(f"ckpt_path={path}", "n=60", "max_iter=300", f"out={tmp_path / 'i.png'}")
    assert out.stat().st_size > 10_000


def test_text_checkpoint_sentence_vectors(tmp_path: Path) -> None:
    vocab = ["<pad>"] + [f"w{i}" for i in range(15)]
    kwargs = {"vocab": vocab, "num_classes": N_CLASSES, "class_names": ["neg", "neu", "pos"], "pad_index": 0}
    path = _save(tmp_path, TinyTextNet(**kwargs), "TinyTextNet", "TinyTextData", kwargs, "sentence_classifier")
    pts = points(path, "n=90")
    assert pts.X.shape == (90, 8) and "sentence vectors" in pts.title
    out = tsne(f"ckpt_path={path}", "max_iter=300", f"out={tmp_path / 't.png'}")
    assert out.stat().st_size > 10_000


def test_lm_checkpoint_word_embeddings(tmp_path: Path) -> None:
    vocab = ["<unk>", "<eos>"] + [f"w{i}" for i in range(60)] + ["king", "queen"]
    model = TinyLM(vocab)
    path = _save(tmp_path, model, "TinyLM", None, {"vocab": vocab}, "lm")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" ".join(["w5"] * 9 + ["w7"] * 5 + ["w1"] * 3 + ["zzz"] * 50))
    pts = points(path, "top_words=3", "words=[king,queen,nope]", f"corpus={corpus}")
    # most frequent in the corpus first (out-of-vocabulary words ignored), then the chosen words
    assert pts.words == ["w5", "w7", "w1", "king", "queen"]
    np.testing.assert_array_equal(pts.X[3], model.emb.weight.detach()[vocab.index("king")].numpy())
    argv = [f"ckpt_path={path}", "top_words=40", "words=[king]", "max_iter=300"]
    out = tsne(*argv, f"out={tmp_path / 'lm.png'}")
    assert out.stat().st_size > 10_000


def test_checkpoint_without_metadata_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not an nnlab checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_plot_is_logged_to_an_active_wandb_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    logged: list[dict] = []
    fake = types.SimpleNamespace(
        run=object(), log=logged.append, Image=lambda path, caption: ("image", path, caption), init=None
    )
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out = tsne("data=digits", "n=100", "max_iter=260", f"out={tmp_path / 'w.png'}")
    assert len(logged) == 1 and list(logged[0]) == ["tsne/digits"]
    kind, path, caption = logged[0]["tsne/digits"]
    assert kind == "image" and path == str(out) and "digits raw pixels" in caption
    fake.run = None  # no active run and no --wandb: nothing is logged
    tsne("data=digits", "n=100", "max_iter=260", f"out={tmp_path / 'w2.png'}")
    assert len(logged) == 1
