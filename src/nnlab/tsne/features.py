"""What a t-SNE plot of a model shows: the features of each modality, taken from a plain ``nn.Module``.

A family plugs in with one function, ``@register("<modality>")``, that turns a model, its checkpoint metadata
and (lazily) its test batches into ``Points``:

  image   the penultimate features (the input of the model's last ``nn.Linear``) of test images, by class
  text    the sentence vectors (the same hook: what the classifier head sees) of test sentences, by class
  tokens  the language model's input word embeddings: the N most frequent words plus chosen ones, annotated

Only torch and numpy here ("t-SNE stands alone"): loading a checkpoint's model and building its dataset's test
batches is ``nnlab.inference``, which calls ``extract``.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnlab.utils.errors import CheckpointError

# (model inputs, labels) of each test batch, produced only when an extractor asks for them
Batches = Callable[[], Iterable[tuple[tuple, torch.Tensor]]]


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


@dataclass
class FeatureOptions:
    """``n`` examples (image/text); for word embeddings the ``top_words`` most frequent (by ``corpus``, a
    whitespace-tokenised text file, else by vocabulary order) plus ``words``, ``annotate`` of them labelled."""

    n: int = 3000
    top_words: int = 500
    words: list[str] = field(default_factory=list)
    annotate: int = 60
    corpus: Path | None = None


Extractor = Callable[[nn.Module, dict, Batches, FeatureOptions], Points]
EXTRACTORS: dict[str, Extractor] = {}


def register(modality: str) -> Callable[[Extractor], Extractor]:
    def deco(fn: Extractor) -> Extractor:
        EXTRACTORS[modality] = fn
        return fn

    return deco


def last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CheckpointError(f"{type(model).__name__} has no nn.Linear head whose input could be embedded")
    return linears[-1]


def call_model(model: nn.Module, inputs: tuple):
    """``model(*inputs)``, or ``model(**batch)`` for the inputs of a dict batch."""
    return model(**inputs[0]) if len(inputs) == 1 and isinstance(inputs[0], dict) else model(*inputs)


def head_inputs(model: nn.Module, meta: dict, batches: Batches, opts: FeatureOptions) -> Points:
    """Penultimate representation: the input of the last nn.Linear, for up to ``opts.n`` test examples."""
    captured: list[torch.Tensor] = []
    hook = last_linear(model).register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    feats, labels = [], []
    try:
        with torch.no_grad():
            for inputs, y in batches():
                captured.clear()
                call_model(model, inputs)
                feats.append(captured[-1].flatten(1).float())
                labels.append(torch.as_tensor(y))
                if sum(len(f) for f in feats) >= opts.n:
                    break
    finally:
        hook.remove()
    X = torch.cat(feats)[: opts.n].numpy()
    y = torch.cat(labels)[: opts.n].numpy()
    names = meta["model_kwargs"].get("class_names") or [str(c) for c in range(int(y.max()) + 1)]
    what = "penultimate features" if model.modality == "image" else "sentence vectors"
    return Points(X, f"{meta.get('family', model.modality)}: {what} (n={len(X)})", y, list(names))


register("image")(head_inputs)
register("text")(head_inputs)


def itos(vocab) -> list[str]:
    """A checkpoint's vocabulary (a list of words, or a word -> index dict) as the word of each index."""
    if isinstance(vocab, dict):
        words = [""] * len(vocab)
        for w, i in vocab.items():
            words[i] = w
        return words
    if isinstance(vocab, list | tuple):
        return [str(w) for w in vocab]
    raise CheckpointError(f"model_kwargs['vocab'] must be a list of words or a word->index dict, got {type(vocab)}")


@register("tokens")
def word_embeddings(model: nn.Module, meta: dict, batches: Batches, opts: FeatureOptions) -> Points:
    """The language model's input embeddings of the ``top_words`` most frequent words plus ``words``.

    Frequencies come from ``corpus`` (e.g. the training split); without it the vocabulary order is taken as
    frequency order (nnlab vocabularies are built most-frequent-first). No test batch is read."""
    emb = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if emb is None:
        raise CheckpointError(f"{type(model).__name__} has no nn.Embedding to plot")
    words_of = itos(meta["model_kwargs"].get("vocab", []))
    if len(words_of) != emb.num_embeddings:
        raise CheckpointError(f"vocab has {len(words_of)} words but the embedding has {emb.num_embeddings} rows")
    stoi = {w: i for i, w in enumerate(words_of)}
    special = {w for w in words_of if w.startswith("<") and w.endswith(">")}
    if opts.corpus:
        counts = Counter(Path(opts.corpus).read_text(encoding="utf-8", errors="replace").split())
        ranked = [w for w, _ in counts.most_common() if w in stoi and w not in special]
    else:
        ranked = [w for w in words_of if w not in special]
    chosen = list(dict.fromkeys(ranked[: opts.top_words]))
    unknown = [w for w in opts.words if w not in stoi]
    if unknown:
        print(f"not in the vocabulary, skipped: {' '.join(unknown)}", file=sys.stderr)
    extra = [w for w in opts.words if w in stoi and w not in chosen]
    words = chosen + extra
    X = emb.weight.detach()[[stoi[w] for w in words]].float().numpy()
    highlight = set(opts.words) | set(chosen[: opts.annotate])
    title = f"{meta.get('family', 'lm')}: word embeddings ({len(chosen)} most frequent + {len(extra)} chosen)"
    return Points(X, title, words=words, highlight=highlight)


def extract(model: nn.Module, meta: dict, batches: Batches, opts: FeatureOptions) -> Points:
    """The points of ``model`` by its ``modality`` (the contract every nnlab LightningModule keeps)."""
    modality = getattr(model, "modality", None)
    if modality not in EXTRACTORS:
        raise CheckpointError(
            f"no t-SNE extractor for modality {modality!r} of {type(model).__name__}; "
            f"known: {', '.join(sorted(EXTRACTORS))} (add one with nnlab.tsne.features.register)"
        )
    return EXTRACTORS[modality](model, meta, batches, opts)
