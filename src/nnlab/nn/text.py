"""Sentence encoders: token ids (N, L) and lengths (N,) -> a sentence vector (N, output_dim).

- ``KimCNN`` (Kim 2014): embedding, parallel 1-D convolutions of widths ``filter_widths`` with
  ``num_filters`` maps each, ReLU, pooling over time (``max``: max-over-time; ``mean``; ``kmax``: the k
  largest activations in their original order, ``nnlab.ops.kmax_pool1d``), concatenated.
- ``RNNEncoder``: LSTM / GRU / Elman RNN over packed sequences (so padding never enters the recurrence),
  sentence vector from the last state (both directions when bidirectional) or max / mean over time.
- ``FastTextBag`` (Joulin et al. 2016, in ``nnlab.nn.fasttext``): the mean of the word embeddings and of hashed
  word n-gram embeddings.

All treat ``padding_idx`` positions as absent: masked out of pooling, skipped by packing, out of the bag.
Formulas and the padding conventions: docs/text.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nnlab.nn.fasttext import FastTextBag
from nnlab.utils.errors import ConfigError, DataError, check_rate, choice_error

# ----------------------------------------------------------------------------------- pooling over time

TIME_POOLS = ("max", "mean", "kmax")


def _kmax(x: torch.Tensor, k: int) -> torch.Tensor:
    from nnlab import ops

    fn = getattr(ops, "kmax_pool1d", None)
    if fn is None:
        raise ConfigError("model.pool=kmax needs nnlab.ops.kmax_pool1d (the ops branch); use model.pool=max or mean")
    return fn(x, k)


def pool_time(x: torch.Tensor, mask: torch.Tensor, pool: str, k: int = 1) -> torch.Tensor:
    """Pool (N, C, L) features over time where ``mask`` (N, L) is True: (N, C) for max/mean, (N, C*k) kmax.

    Masked positions are set to -inf before max/k-max (so padding can never win) and left out of the mean.
    """
    m = mask.unsqueeze(1)
    if pool == "max":
        return x.masked_fill(~m, float("-inf")).amax(dim=2)
    if pool == "mean":
        return (x * m).sum(dim=2) / m.sum(dim=2).clamp_min(1)
    if pool == "kmax":
        # A sentence shorter than k (after the encoder's padding) would let -inf into the output; the
        # encoders pad every sentence to at least k valid positions.
        return _kmax(x.masked_fill(~m, float("-inf")), k).flatten(1)
    raise choice_error("model.pool", pool, TIME_POOLS)


# ------------------------------------------------------------------------------------------- embeddings


def load_vectors(path: str | Path, itos: Sequence[str], dim: int) -> tuple[torch.Tensor, int]:
    """Rows of a word2vec/GloVe text file (``word v1 ... vd`` per line; a word2vec ``count dim`` header line
    is skipped) for the tokens of ``itos``; tokens without a vector keep random U(-0.25, 0.25) rows (Kim).

    Returns the (V, dim) matrix and how many tokens were found.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"model.pretrained={path}: no such file (a word2vec/GloVe text file)")
    index = {t: i for i, t in enumerate(itos)}
    weight = torch.empty(len(itos), dim).uniform_(-0.25, 0.25)
    found = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.rstrip().split(" ")
            if lineno == 1 and len(parts) == 2:
                continue
            i = index.get(parts[0])
            if i is None:
                continue
            if len(parts) - 1 != dim:
                raise DataError(f"{path}:{lineno}: {len(parts) - 1} values; model.embed_dim={dim} must match the file")
            weight[i] = torch.tensor([float(v) for v in parts[1:]])
            found += 1
    return weight, found


def make_embedding(
    num_embeddings: int, dim: int, padding_idx: int, init: str = "uniform", scale: float = 0.25
) -> nn.Embedding:
    emb = nn.Embedding(num_embeddings, dim, padding_idx=padding_idx)
    if init == "uniform":
        # Kim (2014)'s random init for words: U(-a, a) with a chosen so the variance matches word2vec's.
        nn.init.uniform_(emb.weight, -scale, scale)
    with torch.no_grad():
        emb.weight[padding_idx].zero_()
    return emb


# ------------------------------------------------------------------------------------------- encoders


def _embed_dropout(p: float) -> nn.Dropout:
    """Dropout on the word vectors (each coordinate zeroed with probability p, the rest scaled by 1/(1-p)):
    the embedding table holds most of a sentence model's parameters and is what overfits small sets first."""
    return nn.Dropout(check_rate("model.embed_dropout", p))


class WordDropout(nn.Module):
    """Word dropout (Iyyer et al. 2015; Dai & Le 2015): in training, each word of a sentence becomes ``<unk>``
    with probability ``p`` (padding stays padding). Unlike ``embed_dropout`` it removes whole words, so the
    model cannot lean on one sentiment word, and ``<unk>``'s vector learns what an unseen test word should do.
    The identity in eval mode; no rescaling, since a token is replaced, not scaled. Formula: docs/text.md."""

    def __init__(self, p: float, padding_idx: int, unk_idx: int):
        super().__init__()
        self.p = check_rate("model.word_dropout", p)
        self.padding_idx, self.unk_idx = int(padding_idx), int(unk_idx)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return tokens
        drop = (torch.rand(tokens.shape, device=tokens.device) < self.p) & (tokens != self.padding_idx)
        return tokens.masked_fill(drop, self.unk_idx)

    def extra_repr(self) -> str:
        return f"p={self.p}, unk_idx={self.unk_idx}"


class KimCNN(nn.Module):
    """Kim (2014): ``h = [pool_t relu(W_w * E[x] + b_w)]_{w in widths}``: (N, len(widths) * maps * k)."""

    def __init__(
        self,
        embedding: nn.Embedding,
        filter_widths: Sequence[int] = (3, 4, 5),
        num_filters: int = 100,
        pool: str = "max",
        k: int = 1,
        embed_dropout: float = 0.0,
        word_dropout: float = 0.0,
        unk_idx: int = 1,
    ):
        super().__init__()
        if pool not in TIME_POOLS:
            raise choice_error("model.pool", pool, TIME_POOLS)
        if not filter_widths or min(filter_widths) < 1 or num_filters < 1:
            raise ConfigError("model.filter_widths must be positive widths and model.num_filters >= 1")
        if pool == "kmax" and k < 1:
            raise ConfigError(f"model.k={k} must be >= 1 for model.pool=kmax")
        self.embedding = embedding
        self.embed_dropout = _embed_dropout(embed_dropout)
        self.word_dropout = WordDropout(word_dropout, embedding.padding_idx, unk_idx)
        dim = embedding.embedding_dim
        self.filter_widths = list(filter_widths)
        self.convs = nn.ModuleList(nn.Conv1d(dim, num_filters, w) for w in self.filter_widths)
        self.pool = pool
        self.k = k if pool == "kmax" else 1
        self.output_dim = len(self.filter_widths) * num_filters * self.k

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        lengths = lengths.to(tokens.device)
        x = self.embed_dropout(self.embedding(self.word_dropout(tokens))).transpose(1, 2)  # (N, D, L)
        out = []
        for w, conv in zip(self.filter_widths, self.convs):
            # Kim pads w-1 zero vectors on both sides, so every word is seen by every filter position
            # and a sentence shorter than w still yields windows.
            pad = w - 1
            extra = max(0, self.k - (length + pad))  # k-max needs >= k positions
            h = F.relu(conv(F.pad(x, (pad, pad + extra))))
            # Window t covers tokens t-pad..t: it overlaps sentence i while t < len_i + pad. Masking the rest
            # makes a sentence's vector independent of how much batch padding follows it.
            t = torch.arange(h.shape[2], device=tokens.device)
            valid = t[None, :] < (lengths[:, None] + pad).clamp_min(self.k)
            out.append(pool_time(h, valid, self.pool, self.k))
        return torch.cat(out, dim=1)


RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
RNN_POOLS = ("last", "max", "mean")


class RNNEncoder(nn.Module):
    """A recurrent encoder over packed sequences.

    ``pool=last``: the final hidden state of the top layer (forward and backward concatenated when
    bidirectional: the backward direction's final state is the one at the first token); ``max``/``mean``:
    over the top layer's outputs at valid positions. Output (N, hidden_size * directions).
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        rnn_type: str = "lstm",
        hidden_size: int = 150,
        num_layers: int = 1,
        bidirectional: bool = True,
        pool: str = "last",
        rnn_dropout: float = 0.0,
        embed_dropout: float = 0.0,
        word_dropout: float = 0.0,
        unk_idx: int = 1,
    ):
        super().__init__()
        if rnn_type not in RNN_TYPES:
            raise choice_error("model.rnn_type", rnn_type, RNN_TYPES)
        if pool not in RNN_POOLS:
            raise choice_error("model.pool", pool, RNN_POOLS)
        if hidden_size < 1 or num_layers < 1:
            raise ConfigError("model.hidden_size and model.num_layers must be >= 1")
        self.embedding = embedding
        self.embed_dropout = _embed_dropout(embed_dropout)
        self.word_dropout = WordDropout(word_dropout, embedding.padding_idx, unk_idx)
        self.rnn = RNN_TYPES[rnn_type](
            embedding.embedding_dim,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=True,
            dropout=rnn_dropout if num_layers > 1 else 0.0,
        )
        self.rnn_type = rnn_type
        self.pool = pool
        self.directions = 2 if bidirectional else 1
        self.output_dim = hidden_size * self.directions

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed_dropout(self.embedding(self.word_dropout(tokens)))
        lengths_cpu = lengths.detach().to("cpu").clamp_min(1)
        packed = pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False)
        out, h = self.rnn(packed)
        if self.pool == "last":
            h = h[0] if self.rnn_type == "lstm" else h  # (layers*dirs, N, H), already in input order
            return h[-self.directions :].transpose(0, 1).reshape(tokens.shape[0], -1)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])  # (N, L, H*dirs)
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]
        return pool_time(out.transpose(1, 2), mask, self.pool)


ENCODERS = ("cnn", "rnn", "fasttext")


def build_encoder(
    name: str,
    vocab_size: int,
    pad_index: int,
    embed_dim: int,
    itos: Sequence[str] | None = None,
    unk_index: int = 1,
    pretrained: str | None = None,
    freeze_embeddings: bool = False,
    **kwargs,
) -> nn.Module:
    """The encoder ``name`` with its keyword arguments; an unknown keyword fails with one line."""
    if name not in ENCODERS:
        raise choice_error("model.encoder", name, ENCODERS)
    weight = None
    if pretrained:
        weight, _ = load_vectors(pretrained, itos or [], embed_dim)
    cls = {"cnn": KimCNN, "rnn": RNNEncoder, "fasttext": FastTextBag}[name]
    allowed = [
        p
        for p in inspect.signature(cls.__init__).parameters
        if p not in ("self", "embedding", "num_words", "dim", "padding_idx", "weight", "unk_idx", "words")
    ]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"model.{unknown[0]} is not an option of model.encoder={name}; valid: {', '.join(allowed)}")
    if name == "fasttext":
        return FastTextBag(
            vocab_size, embed_dim, padding_idx=pad_index, weight=weight, unk_idx=unk_index, words=itos, **kwargs
        )
    emb = make_embedding(vocab_size, embed_dim, pad_index)
    if weight is not None:
        with torch.no_grad():
            emb.weight.copy_(weight)
            emb.weight[pad_index].zero_()
    emb.weight.requires_grad_(not freeze_embeddings)
    return cls(emb, unk_idx=unk_index, **kwargs)


def max_norm_(weight: torch.Tensor, max_norm: float) -> None:
    """Rescale rows of ``weight`` whose L2 norm exceeds ``max_norm`` onto the ball (Kim 2014's constraint)."""
    with torch.no_grad():
        norms = weight.norm(dim=1, keepdim=True)
        weight.mul_(torch.where(norms > max_norm, max_norm / norms.clamp_min(1e-12), torch.ones_like(norms)))


__all__ = [
    "KimCNN",
    "RNNEncoder",
    "FastTextBag",
    "WordDropout",
    "build_encoder",
    "pool_time",
    "load_vectors",
    "max_norm_",
]
