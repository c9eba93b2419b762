"""``nnlab tsne``: what a model learned, as a t-SNE plot of a dataset's raw inputs or a checkpoint's features.

    nnlab tsne data=fashion_mnist                                   # raw inputs of an image dataset
    nnlab tsne ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt   # any family's checkpoint
    nnlab tsne ckpt_path=lm.ckpt top_words=300 words=[king,queen,man,woman] corpus=ptb.train.txt

What is embedded depends on the model's ``modality`` (the contract every nnlab LightningModule keeps):
  image   the penultimate features (the input of the model's last ``nn.Linear``) of test images, by class
  text    the sentence vectors (the same hook: what the classifier head sees) of test sentences, by class
  tokens  the language model's input word embeddings: the N most frequent words plus ``words``, annotated
A family plugs in with one function (``@register("<modality>")``) returning points, labels or words.
The PNG is written to ``out`` (default ``tsne_<name>.png``); when a W&B run is active (or ``wandb=true``)
it is also logged as the image ``tsne/<name>``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from nnlab.cli.args import Command, Key, at_least, existing_file, positive
from nnlab.tsne import TSNE
from nnlab.utils.errors import CheckpointError, ConfigError, DataError

IMAGE_DATASETS = ("digits", "fashion_mnist", "mnist", "cifar10")

COMMAND = Command(
    "tsne",
    "t-SNE plot of a dataset's raw inputs (data=...) or of a checkpoint's learned features (ckpt_path=...)",
    [
        Key("data", None, "raw inputs of an image dataset", choices=IMAGE_DATASETS),
        Key("ckpt_path", None, "an nnlab checkpoint (any family)", Path, check=existing_file),
        Key("n", 3000, "points to embed (images/sentences)", int, check=at_least(2)),
        Key("data_dir", None, "datasets root (default $DATA_DIR); overrides a checkpoint's data_dir"),
        Key("top_words", 500, "LM: the N most frequent words", int, check=at_least(1)),
        Key("words", [], "LM: words to add and annotate, e.g. [king,queen]", list),
        Key("annotate", 60, "LM: annotate this many of the most frequent", int, check=at_least(0)),
        Key("corpus", None, "LM: text file whose word counts define 'most frequent'", Path, check=existing_file),
        Key("perplexity", 30.0, "t-SNE perplexity", float, check=positive),
        Key("max_iter", 1000, "optimization steps", int, check=at_least(250)),
        Key("method", "auto", "exact (ours), opentsne, or auto by size", choices=("auto", "exact", "opentsne")),
        Key("seed", 0, "random seed", int, check=at_least(0)),
        Key("out", None, "PNG path (default tsne_<name>.png)", Path),
        Key("wandb", False, "log the plot into the checkpoint's own W&B run (else a new one) if none is active", bool),
    ],
    examples=["nnlab tsne data=digits n=1000", "nnlab tsne ckpt_path=<run>/checkpoints/best.ckpt"],
)


@dataclass
class Points:
    """What gets embedded: ``X`` (n, d); either ``labels`` (n,) with ``class_names``, or ``words`` (n,)
    of which those in ``highlight`` are annotated."""

    X: np.ndarray
    title: str
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    words: list[str] | None = None
    highlight: set[str] = field(default_factory=set)


# ----------------------------------------------------------------------------------------------- raw inputs
def raw_points(name: str, n: int, seed: int = 0, data_dir: str | None = None) -> Points:
    """A class-balanced sample of the test split of an image dataset (``nnlab.data`` loaders), pixels in [0, 1]."""
    from nnlab.data import load_image_arrays
    from nnlab.utils.subsets import balanced_subset

    _, _, x, y, names = load_image_arrays(name, data_dir or os.environ.get("DATA_DIR", "data"))
    idx = balanced_subset(y, min(n, len(y)), seed=seed)
    X = x[idx].reshape(len(idx), -1).astype(np.float64)
    X /= max(float(X.max()), 1e-12)  # 0..255 (or 0..16 for digits) -> 0..1; t-SNE only sees ratios anyway
    return Points(X, f"{name} raw pixels (test split, n={len(idx)})", y[idx], list(names))


# ----------------------------------------------------------------------------------------------- checkpoints
Extractor = Callable[[nn.Module, dict, SimpleNamespace], Points]
EXTRACTORS: dict[str, Extractor] = {}


def register(modality: str) -> Callable[[Extractor], Extractor]:
    def deco(fn: Extractor) -> Extractor:
        EXTRACTORS[modality] = fn
        return fn

    return deco


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """The model of an nnlab checkpoint (rebuilt from its stored config, weights loaded, eval mode) and its
    ``checkpoint["nnlab"]`` metadata (config, model_kwargs, family)."""
    from nnlab.utils.checkpoint import CHECKPOINT_KEY, model_from_checkpoint
    from nnlab.utils.checkpoint import load_checkpoint as _load

    ckpt = _load(path)
    return model_from_checkpoint(ckpt), ckpt[CHECKPOINT_KEY]


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CheckpointError(f"{type(model).__name__} has no nn.Linear head whose input could be embedded")
    return linears[-1]


def _split_batch(batch) -> tuple[tuple, torch.Tensor]:
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


def head_inputs(model: nn.Module, meta: dict, args: SimpleNamespace) -> Points:
    """Penultimate representation: the input of the last nn.Linear, for up to ``args.n`` test examples."""
    from nnlab.utils.run import build

    data_cfg = dict(meta["config"]["data"])
    if args.data_dir and "data_dir" in data_cfg:
        data_cfg["data_dir"] = args.data_dir
    dm = build(data_cfg)
    dm.prepare_data()
    dm.setup("test")
    loader = dm.test_dataloader()
    captured: list[torch.Tensor] = []
    hook = _last_linear(model).register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    feats, labels = [], []
    try:
        with torch.no_grad():
            for batch in loader:
                inputs, y = _split_batch(batch)
                captured.clear()
                model(*inputs) if not isinstance(inputs[0], dict) else model(**inputs[0])
                feats.append(captured[-1].flatten(1).float())
                labels.append(torch.as_tensor(y))
                if sum(len(f) for f in feats) >= args.n:
                    break
    finally:
        hook.remove()
    X = torch.cat(feats)[: args.n].numpy()
    y = torch.cat(labels)[: args.n].numpy()
    names = meta["model_kwargs"].get("class_names") or [str(c) for c in range(int(y.max()) + 1)]
    what = "penultimate features" if model.modality == "image" else "sentence vectors"
    return Points(X, f"{meta.get('family', model.modality)}: {what} (n={len(X)})", y, list(names))


register("image")(head_inputs)
register("text")(head_inputs)


def _itos(vocab) -> list[str]:
    if isinstance(vocab, dict):
        words = [""] * len(vocab)
        for w, i in vocab.items():
            words[i] = w
        return words
    if isinstance(vocab, list | tuple):
        return [str(w) for w in vocab]
    raise CheckpointError(f"model_kwargs['vocab'] must be a list of words or a word->index dict, got {type(vocab)}")


@register("tokens")
def word_embeddings(model: nn.Module, meta: dict, args: SimpleNamespace) -> Points:
    """The language model's input embeddings of the ``top_words`` most frequent words plus ``words``.

    Frequencies come from ``corpus`` (a whitespace-tokenised text file, e.g. the training split); without it
    the vocabulary order is taken as frequency order (nnlab vocabularies are built most-frequent-first)."""
    emb = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if emb is None:
        raise CheckpointError(f"{type(model).__name__} has no nn.Embedding to plot")
    itos = _itos(meta["model_kwargs"].get("vocab", []))
    if len(itos) != emb.num_embeddings:
        raise CheckpointError(f"vocab has {len(itos)} words but the embedding has {emb.num_embeddings} rows")
    stoi = {w: i for i, w in enumerate(itos)}
    special = {w for w in itos if w.startswith("<") and w.endswith(">")}
    if args.corpus:
        counts = Counter(Path(args.corpus).read_text(encoding="utf-8", errors="replace").split())
        ranked = [w for w, _ in counts.most_common() if w in stoi and w not in special]
    else:
        ranked = [w for w in itos if w not in special]
    chosen = list(dict.fromkeys(ranked[: args.top_words]))
    unknown = [w for w in args.words if w not in stoi]
    if unknown:
        print(f"not in the vocabulary, skipped: {' '.join(unknown)}", file=sys.stderr)
    extra = [w for w in args.words if w in stoi and w not in chosen]
    words = chosen + extra
    X = emb.weight.detach()[[stoi[w] for w in words]].float().numpy()
    highlight = set(args.words) | set(chosen[: args.annotate])
    title = f"{meta.get('family', 'lm')}: word embeddings ({len(chosen)} most frequent + {len(extra)} chosen)"
    return Points(X, title, words=words, highlight=highlight)


def checkpoint_points(path: str, args: SimpleNamespace) -> Points:
    model, meta = load_checkpoint(path)
    modality = getattr(model, "modality", None)
    if modality not in EXTRACTORS:
        raise CheckpointError(
            f"no t-SNE extractor for modality {modality!r} of {type(model).__name__}; "
            f"known: {', '.join(sorted(EXTRACTORS))} (add one with @register)"
        )
    return EXTRACTORS[modality](model, meta, args)


# ----------------------------------------------------------------------------------------------- plot
def plot(points: Points, Y: np.ndarray, path: Path, subtitle: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 8))
    if points.words is not None:
        hl = np.array([w in points.highlight for w in points.words])
        ax.scatter(Y[~hl, 0], Y[~hl, 1], s=6, c="0.6", linewidths=0)
        ax.scatter(Y[hl, 0], Y[hl, 1], s=10, c="tab:red", linewidths=0)
        for (x, y), w, h in zip(Y, points.words, hl):
            if h:
                ax.annotate(w, (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
    else:
        labels = points.labels
        names = points.class_names or [str(c) for c in np.unique(labels)]
        cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for c in np.unique(labels):
            m = labels == c
            name = names[int(c)] if int(c) < len(names) else str(c)
            ax.scatter(Y[m, 0], Y[m, 1], s=4, color=cmap(int(c) % cmap.N), label=name, linewidths=0)
        ax.legend(markerscale=3, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(f"t-SNE of {points.title}\n{subtitle}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def log_to_wandb(path: Path, key: str, caption: str, start: bool = False, ckpt: str | None = None) -> bool:
    """Log the PNG into the active W&B run, or with ``start`` into the checkpoint's own run (else a new one),
    printing which; returns whether it did."""
    from nnlab.utils.checkpoint import CHECKPOINT_KEY, load_checkpoint
    from nnlab.utils.wandb_run import log_image

    config = load_checkpoint(ckpt)[CHECKPOINT_KEY].get("config") if ckpt and start else None
    line = log_image(path, key, caption, ckpt=ckpt, config=config, start=start)
    if line:
        print(line)
    return line is not None


def run(args: SimpleNamespace) -> Path:
    if (args.data is None) == (args.ckpt_path is None):
        raise ConfigError(
            "give exactly one of data=<image dataset> or ckpt_path=<checkpoint> (see `nnlab tsne --help`)"
        )
    if args.data:
        points, name = raw_points(args.data, args.n, args.seed, args.data_dir), args.data
    else:
        points, name = checkpoint_points(str(args.ckpt_path), args), args.ckpt_path.resolve().parent.parent.name
    perplexity = min(args.perplexity, (len(points.X) - 1) / 3)  # small inputs: keep the calibration feasible
    est = TSNE(perplexity=perplexity, max_iter=args.max_iter, method=args.method, random_state=args.seed)
    Y = est.fit_transform(points.X)
    subtitle = f"{est.method_}, perplexity {perplexity:g}, KL {est.kl_divergence_:.3f}, {est.fit_time_:.1f} s"
    out = plot(points, Y, Path(args.out or f"tsne_{name or 'ckpt'}.png"), subtitle)
    ckpt = str(args.ckpt_path) if args.ckpt_path else None
    logged = log_to_wandb(out, f"tsne/{name}", f"{points.title}; {subtitle}", start=args.wandb, ckpt=ckpt)
    print(f"wrote {out}" + (" (logged to W&B)" if logged else ""))
    return out
