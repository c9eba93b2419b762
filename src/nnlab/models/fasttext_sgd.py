"""fastText's own training (Joulin et al. 2016): per-example SGD without autograd, and its C loop.

The C++ fastText updates after every example with a linearly decaying rate; autograd over minibatches is a
different optimizer and, per step, several times slower. This module is that update written out by hand
(``fasttext_sgd_step``, tested equal to autograd + SGD on the summed loss), the same update one example at a
time in C (``_fasttext.c`` through ctypes, compiled on first use by ``nnlab.utils.ckernel``) with a torch
fallback that gives the same numbers, and ``fit_fasttext``, a C++-style fit without Lightning
(``scripts/bench_fasttext.py``). ``TextClassifier(update="fasttext")`` trains through it; the math is in
docs/text.md.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from nnlab.utils import ckernel
from nnlab.utils.errors import ConfigError

if TYPE_CHECKING:
    from nnlab.models.text import TextClassifier

log = logging.getLogger(__name__)


def bag_shares(ids: torch.Tensor, pad_index: int) -> torch.Tensor:
    """Each id's weight ``1/|bag|`` in its bag's mean, 0 on padding (so padding rows get zero updates)."""
    valid = ids != pad_index
    return valid / valid.sum(1, keepdim=True).clamp_min(1)


@torch.no_grad()
def fasttext_sgd_step(
    model: TextClassifier, ids: torch.Tensor, share: torch.Tensor, onehot: torch.Tensor, rate: float
) -> torch.Tensor:
    """One SGD step of fastText's softmax classifier on a minibatch, without autograd; returns the logits.

    ``h_b = sum_i share_bi E[ids_bi]`` (the bag means), ``g_b = softmax(W h_b + c) - onehot_b`` (the gradient
    of the summed cross-entropy, so ``rate`` is the per-example step as in C++), ``W -= rate g^T h``,
    ``c -= rate sum_b g_b``, ``E[ids_bi] -= rate share_bi (g_b W_old)`` (``index_add_``: only the rows of
    the batch move). Same math as autograd + SGD on ``loss_reduction=sum`` (tested), a third of the ops.
    """
    emb, w, c = model.encoder.bag.weight.data, model.fc.weight.data, model.fc.bias.data
    share = share.unsqueeze(1)  # (B, 1, M)
    h = torch.bmm(share, emb[ids]).squeeze(1)  # (B, D)
    logits = torch.addmm(c, h, w.t())
    grad = torch.softmax(logits, dim=1).sub_(onehot)
    grad_h = grad @ w  # before W moves, as in C++
    w.addmm_(grad.t(), h, alpha=-rate)
    c.sub_(grad.sum(0), alpha=rate)
    upd = share.transpose(1, 2) * grad_h.unsqueeze(1)  # (B, M, D)
    emb.index_add_(0, ids.flatten(), upd.flatten(0, 1), alpha=-rate)
    return logits


_FT_SOURCE = Path(__file__).resolve().parent / "_fasttext.c"
_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
_FT_ARGS = [_P, _I, _P, _P, _I, _P, _P, _I, _P, _I, _D, _D, _P]


_said: set[str] = set()


def _say_once(line: str) -> None:
    if line not in _said:
        _said.add(line)
        log.warning(line)


def fasttext_kernel() -> ctypes.CDLL | None:
    """fastText's per-example SGD loop in C (``_fasttext.c``); ``None`` without a compiler or with
    ``NNLAB_FASTTEXT_KERNEL=torch``."""
    return ckernel.load(_FT_SOURCE, "NNLAB_FASTTEXT_KERNEL", {"fasttext_sgd_f32": _FT_ARGS})


@torch.no_grad()
def fasttext_sgd_examples(
    model: TextClassifier,
    ids: torch.Tensor,
    share: torch.Tensor,
    labels: torch.Tensor,
    rate0: float,
    rate1: float | None = None,
    want_logits: bool = True,
) -> torch.Tensor | None:
    """fastText's SGD over a batch one example after the other, as the C++ original updates (the rate goes
    linearly from ``rate0`` to ``rate1``); returns each example's logits before its update.

    Runs the C kernel (``_fasttext.c``: the update of ``fasttext_sgd_step`` for one example, in a loop);
    without it (no compiler, ``NNLAB_FASTTEXT_KERNEL=torch``, a GPU or float64 model) the same algorithm runs as
    ``fasttext_sgd_step`` on one example at a time, at the same per-example rates: slower, never different.
    """
    rate1 = rate0 if rate1 is None else rate1
    emb, w, c = model.encoder.bag.weight.data, model.fc.weight.data, model.fc.bias.data
    lib = fasttext_kernel()
    usable = all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in (emb, w, c))
    if lib is None or not usable:
        _say_once("fastText's C kernel is not in use here: the same per-example SGD runs in torch, more slowly")
        onehot = F.one_hot(labels, model.hparams.num_classes).to(w.dtype)
        b = len(ids)
        out = [
            fasttext_sgd_step(
                model, ids[i : i + 1], share[i : i + 1], onehot[i : i + 1], rate0 + (rate1 - rate0) * i / b
            )
            for i in range(b)
        ]
        return torch.cat(out) if want_logits and out else None
    ids = ids.contiguous().to(torch.int64)
    share = share.contiguous().to(torch.float32)
    labels = labels.contiguous().to(torch.int64)
    b, m = ids.shape
    logits = torch.empty(b, w.shape[0], dtype=torch.float32) if want_logits else None
    lib.fasttext_sgd_f32(
        emb.data_ptr(), emb.shape[1], w.data_ptr(), c.data_ptr(), w.shape[0], ids.data_ptr(), share.data_ptr(),
        m, labels.data_ptr(), b, float(rate0), float(rate1), logits.data_ptr() if logits is not None else None,
    )  # fmt: skip
    return logits


@torch.no_grad()
def fit_fasttext(
    model: TextClassifier,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 5,
    lr: float = 0.25,
    seed: int = 0,
) -> TextClassifier:
    """Train a ``fasttext`` TextClassifier as the C++ fastText does, without Lightning: each epoch visits the
    examples in a new random order, one SGD update per example, the rate decaying linearly from ``lr`` to 0
    over the run (``fasttext_sgd_examples``: the C kernel, or the same update in torch without it).
    ``tokens`` (N, L) padded with the model's pad index, ``lengths`` (N,), ``labels`` (N,).
    """
    if model.hparams.encoder != "fasttext":
        raise ConfigError(f"fit_fasttext trains model.encoder=fasttext, not {model.hparams.encoder}")
    n = tokens.shape[0]
    # computed once: the n-gram ids and their shares do not change across epochs
    ids_all = model.encoder.ngram_ids(tokens, lengths)
    share_all = bag_shares(ids_all, model.hparams.pad_index).to(torch.float32)
    g = torch.Generator().manual_seed(seed)
    for e in range(epochs):
        perm = torch.randperm(n, generator=g)
        rates = lr * (1 - e / epochs), lr * (1 - (e + 1) / epochs)
        fasttext_sgd_examples(model, ids_all[perm], share_all[perm], labels[perm], *rates, want_logits=False)
    return model
