"""Recurrent word-level language model and the AWD-LSTM regularizers (Merity et al. 2017).

``RNNLM``: embedding -> ``nlayers`` recurrent layers (rnn_tanh, rnn_relu, lstm, gru) -> linear decoder,
optionally with tied input/output embeddings (Press & Wolf 2017; Inan et al. 2017). With tied weights the
last layer's width is ``emsize`` so that the decoder can share the embedding matrix.

Regularizers, each a switch (all off gives Zaremba et al. 2014; ``dropout`` alone gives their medium/large):
- ``dropout`` on the non-recurrent connections (embedding output, between layers, decoder input);
  ``dropouti``/``dropouth`` override the rate at the input/between layers.
- ``locked``: variational dropout (Gal & Ghahramani 2016), one mask per sequence shared over time.
- ``dropoute``: embedding dropout, whole words removed from the embedding matrix.
- ``wdrop``: DropConnect on the hidden-to-hidden matrices (weight drop), one mask per forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from nnlab.utils.errors import ConfigError, check_rate, choice_error

CELLS = {
    "rnn_tanh": lambda i, h: nn.RNN(i, h, nonlinearity="tanh"),
    "rnn_relu": lambda i, h: nn.RNN(i, h, nonlinearity="relu"),
    "lstm": lambda i, h: nn.LSTM(i, h),
    "gru": lambda i, h: nn.GRU(i, h),
}

Hidden = list  # one state per layer: a Tensor (rnn, gru) or a (h, c) tuple (lstm)


def locked_dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Dropout with one mask per sequence, shared over time: ``y[t, b] = x[t, b] * m[b] / (1 - p)``.

    ``x`` is (T, B, H); ``m`` ~ Bernoulli(1 - p) of shape (1, B, H). Identity when not training or p = 0.
    """
    if not training or p == 0.0:
        return x
    mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedding_dropout(weight: Tensor, p: float = 0.1, training: bool = True) -> Tensor:
    """The embedding matrix with whole rows (words) zeroed with probability ``p``, the rest scaled by 1/(1-p).

    Every occurrence of a dropped word in the batch then sees a zero vector (Gal & Ghahramani 2016)."""
    if not training or p == 0.0:
        return weight
    mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)
    return weight * mask


class DropConnect(nn.Module):
    """Parametrization ``W -> dropout(W, p)`` while training: weight drop on a recurrent matrix.

    Registered with ``torch.nn.utils.parametrize`` so cuDNN/MKL kernels still run on the whole
    sequence; one mask per forward pass, shared over all time steps."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, weight: Tensor) -> Tensor:
        return F.dropout(weight, self.p, self.training)


class LockedDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return locked_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class RNNLM(nn.Module):
    """Word-level recurrent LM on (T, B) index windows; ``forward`` gives (T, B, V) logits and the new state.

    ``p(w_{t+1} | w_{<=t}) = softmax(W_dec h_t + b)``, ``h_t`` from the stacked recurrent layers.
    Initial weights are uniform in ``[-init_range, init_range]`` (Zaremba et al. 2014) with zero decoder bias.
    """

    def __init__(
        self,
        ntoken: int,
        cell: str = "lstm",
        emsize: int = 200,
        nhid: int = 200,
        nlayers: int = 2,
        dropout: float = 0.0,
        dropouti: float | None = None,
        dropouth: float | None = None,
        dropoute: float = 0.0,
        wdrop: float = 0.0,
        locked: bool = False,
        tie_weights: bool = False,
        init_range: float = 0.1,
    ):
        super().__init__()
        if cell not in CELLS:
            raise choice_error("model.cell", cell, CELLS)
        if nlayers < 1 or emsize < 1 or nhid < 1:
            raise ConfigError(f"model.nlayers/emsize/nhid must be >= 1 (got {nlayers}/{emsize}/{nhid})")
        rates = {
            "dropout": dropout,
            "dropouti": dropouti,
            "dropouth": dropouth,
            "dropoute": dropoute,
            "wdrop": wdrop,
        }
        for k, v in rates.items():
            if v is not None:
                check_rate(f"model.{k}", v)
        self.cell, self.ntoken, self.nlayers = cell, ntoken, nlayers
        self.dropout = dropout
        self.dropouti = dropout if dropouti is None else dropouti
        self.dropouth = dropout if dropouth is None else dropouth
        self.dropoute = dropoute
        self.encoder = nn.Embedding(ntoken, emsize)
        sizes = [emsize] + [nhid] * (nlayers - 1) + [emsize if tie_weights else nhid]
        self.rnns = nn.ModuleList(CELLS[cell](sizes[i], sizes[i + 1]) for i in range(nlayers))
        if wdrop > 0:
            for rnn in self.rnns:
                parametrize.register_parametrization(rnn, "weight_hh_l0", DropConnect(wdrop))
        drop = LockedDropout if locked else nn.Dropout
        self.drop_in = drop(self.dropouti)
        self.drop_h = drop(self.dropouth)
        self.drop_out = drop(self.dropout)
        self.decoder = nn.Linear(sizes[-1], ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.reset_parameters(init_range)

    def reset_parameters(self, init_range: float) -> None:
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-init_range, init_range)
            self.decoder.bias.zero_()

    def init_hidden(self, batch_size: int) -> Hidden:
        w = self.encoder.weight
        states = []
        for rnn in self.rnns:
            h = w.new_zeros(1, batch_size, rnn.hidden_size)
            states.append((h, h.clone()) if self.cell == "lstm" else h)
        return states

    def forward(self, x: Tensor, hidden: Hidden | None = None) -> tuple[Tensor, Hidden]:
        if hidden is None:
            hidden = self.init_hidden(x.size(1))
        weight = embedding_dropout(self.encoder.weight, self.dropoute, self.training)
        out = self.drop_in(F.embedding(x, weight))
        new_hidden = []
        for i, rnn in enumerate(self.rnns):
            out, h = rnn(out, hidden[i])
            new_hidden.append(h)
            out = self.drop_h(out) if i < self.nlayers - 1 else self.drop_out(out)
        return self.decoder(out), new_hidden


def detach_hidden(hidden: Hidden | None) -> Hidden | None:
    """Cut the graph between TBPTT windows while keeping the values (the state carries over)."""
    if hidden is None:
        return None
    return [tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach() for h in hidden]


@torch.no_grad()
def generate(
    model: RNNLM,
    prompt: Tensor,
    words: int,
    temperature: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Sample ``words`` tokens after the (T,) index ``prompt``: ``w ~ softmax(logits / temperature)``,
    restricted to the ``top_k`` most likely words when ``top_k > 0``; ``temperature = 0`` is greedy."""
    if temperature < 0:
        raise ConfigError(f"temperature={temperature} must be >= 0")
    if prompt.numel() == 0:
        raise ConfigError("the prompt is empty; give at least one word")
    was_training = model.training
    model.eval()
    try:
        logits, hidden = model(prompt.view(-1, 1))
        last = logits[-1, 0]
        out = []
        for _ in range(words):
            if temperature == 0:
                nxt = int(last.argmax())
            else:
                scores = last.float() / temperature
                if 0 < top_k < scores.numel():
                    kth = torch.topk(scores, top_k).values[-1]
                    scores = scores.masked_fill(scores < kth, float("-inf"))
                probs = torch.softmax(scores, dim=-1).cpu()
                nxt = int(torch.multinomial(probs, 1, generator=generator))
            out.append(nxt)
            logits, hidden = model(torch.tensor([[nxt]], device=prompt.device), hidden)
            last = logits[-1, 0]
        return out
    finally:
        model.train(was_training)
