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
    ``c -= rate sum_b g_b`` (unless ``c`` is frozen, as in a fastText model), ``E[ids_bi] -= rate share_bi
    (g_b W_old)`` (``index_add_``: only the rows of the batch move). Same math as autograd + SGD on
    ``loss_reduction=sum`` (tested), a third of the ops.
    """
    emb, w, c = model.encoder.bag.weight.data, model.fc.weight.data, model.fc.bias.data
    share = share.unsqueeze(1)  # (B, 1, M)
    h = torch.bmm(share, emb[ids]).squeeze(1)  # (B, D)
    logits = torch.addmm(c, h, w.t())
    grad = torch.softmax(logits, dim=1).sub_(onehot)
    grad_h = grad @ w  # before W moves, as in C++
    w.addmm_(grad.t(), h, alpha=-rate)
    if model.fc.bias.requires_grad:  # a fastText model holds it at zero, as the C++ has no output bias
        c.sub_(grad.sum(0), alpha=rate)
    upd = share.transpose(1, 2) * grad_h.unsqueeze(1)  # (B, M, D)
    emb.index_add_(0, ids.flatten(), upd.flatten(0, 1), alpha=-rate)
    return logits


_FT_SOURCE = Path(__file__).resolve().parent / "_fasttext.c"
_P, _I = ctypes.c_void_p, ctypes.c_int64
_FT_ARGS = ([_P, _I, _P, _P, _I, _I, _P, _P, _P, _P, _P, _I, _I, _P], ctypes.c_int)


_said: set[str] = set()


def _say_once(line: str) -> None:
    if line not in _said:
        _said.add(line)
        log.warning(line)


def fasttext_kernel() -> ctypes.CDLL | None:
    """fastText's per-example SGD loop in C (``_fasttext.c``); ``None`` without a compiler or with
    ``NNLAB_FASTTEXT_KERNEL=torch``."""
    return ckernel.load(_FT_SOURCE, "NNLAB_FASTTEXT_KERNEL", {"fasttext_sgd_f32": _FT_ARGS})


def linear_rates(rate0: float, rate1: float, work: torch.Tensor | int) -> torch.Tensor:
    """The rate of each step, going linearly from ``rate0`` to ``rate1`` with the work done before the step:
    ``work`` (B,) is each step's share of it (the C++ counts the tokens it reads), an int B is B equal steps.
    float64 (B,), so the C kernel and the torch path round the same values to float."""
    if isinstance(work, int):
        done = torch.arange(work, dtype=torch.float64) / max(work, 1)
    else:
        w = work.to(torch.float64)
        done = (torch.cumsum(w, 0) - w) / w.sum().clamp_min(1e-300)
    return rate0 + (rate1 - rate0) * done


@torch.no_grad()
def fasttext_sgd_examples(
    model: TextClassifier,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    labels: torch.Tensor,
    rates: torch.Tensor,
    order: torch.Tensor | None = None,
    threads: int = 1,
    want_logits: bool = True,
) -> torch.Tensor | None:
    """fastText's SGD over ragged bags one example after the other, as the C++ original updates; returns
    each step's logits before its update.

    ``ids``/``offsets`` (``FastTextBag.bags``): example i's bag is ``ids[offsets[i]:offsets[i + 1]]``.
    Step b trains example ``order[b]`` (default: b) with label ``labels[order[b]]`` at ``rates[b]``
    (``linear_rates``); ``order`` lets an epoch permute the examples without copying their bags.
    Runs the C kernel (``_fasttext.c``: the update of ``fasttext_sgd_step`` for one example, in a loop);
    ``threads`` > 1 runs it Hogwild as the C++ does (lock-free, not deterministic). Without the kernel
    (no compiler, ``NNLAB_FASTTEXT_KERNEL=torch``, a GPU or float64 model) the same algorithm runs as
    ``fasttext_sgd_step`` on one example at a time in one thread: slower, at 1 thread never different.
    """
    emb, w, c = model.encoder.bag.weight.data, model.fc.weight.data, model.fc.bias.data
    steps = len(order) if order is not None else len(offsets) - 1
    if len(rates) != steps:
        raise ValueError(f"{len(rates)} rates for {steps} steps")
    lib = fasttext_kernel()
    usable = all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in (emb, w, c))
    if lib is None or not usable:
        _say_once("fastText's C kernel is not in use here: the same per-example SGD runs in torch, more slowly")
        onehot = F.one_hot(labels, w.shape[0]).to(w.dtype)
        out = []
        for b in range(steps):
            i = int(order[b]) if order is not None else b
            bag = ids[int(offsets[i]) : int(offsets[i + 1])].unsqueeze(0)
            share = torch.ones(bag.shape, dtype=w.dtype) / max(bag.shape[1], 1)
            out.append(fasttext_sgd_step(model, bag, share, onehot[i : i + 1], float(rates[b])))
        return torch.cat(out) if want_logits and out else None
    ids = ids.contiguous().to(torch.int64)
    offsets = offsets.contiguous().to(torch.int64)
    labels = labels.contiguous().to(torch.int64)
    rates = rates.contiguous().to(torch.float64)
    order = order.contiguous().to(torch.int64) if order is not None else None
    logits = torch.empty(steps, w.shape[0], dtype=torch.float32) if want_logits else None
    rc = lib.fasttext_sgd_f32(
        emb.data_ptr(), emb.shape[1], w.data_ptr(), c.data_ptr(), int(model.fc.bias.requires_grad), w.shape[0],
        ids.data_ptr(), offsets.data_ptr(),
        order.data_ptr() if order is not None else None, labels.data_ptr(), rates.data_ptr(), steps, int(threads),
        logits.data_ptr() if logits is not None else None,
    )  # fmt: skip
    if rc != 0:
        raise MemoryError("fastText's C kernel could not allocate its scratch memory")
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
    threads: int | None = None,
) -> TextClassifier:
    """Train a ``fasttext`` TextClassifier as the C++ fastText does, without Lightning: each epoch visits the
    examples in a new random order, one SGD update per example, the rate decaying linearly from ``lr`` to 0
    with the tokens read, as the C++ counts them (each line's words, its label and its ``</s>``);
    ``fasttext_sgd_examples``: the C kernel on ``threads`` Hogwild threads (default
    ``torch.get_num_threads()``), or the same update in torch without it.
    ``tokens``: the texts' word ids one after the other (1-D), or (N, L) padded with the model's pad index;
    ``lengths`` (N,), ``labels`` (N,).
    """
    if model.hparams.encoder != "fasttext":
        raise ConfigError(f"fit_fasttext trains model.encoder=fasttext, not {model.hparams.encoder}")
    threads = torch.get_num_threads() if threads is None else threads
    if threads < 1:
        raise ConfigError(f"fit_fasttext: threads={threads} must be >= 1")
    # hashed once: the bags do not change across epochs, and an epoch permutes their order, not their ids
    ids, offsets = model.encoder.bags(tokens, lengths)
    work = lengths.to(torch.float64) + 2
    total = float(work.sum()) * epochs
    g = torch.Generator().manual_seed(seed)
    done = 0.0
    for _ in range(epochs):
        perm = torch.randperm(len(lengths), generator=g)
        w = work[perm]
        span = float(w.sum())
        rates = linear_rates(lr * (1 - done / total), lr * (1 - (done + span) / total), w)
        fasttext_sgd_examples(model, ids, offsets, labels, rates, order=perm, threads=threads, want_logits=False)
        done += span
    return model
