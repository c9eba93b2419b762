"""fastText's bag of words and hashed word n-grams (Joulin et al. 2016): ``FastTextBag``, the ``fasttext``
encoder of ``nnlab.nn.text`` (which re-exports it), with its padded (``ngram_ids``) and ragged (``bags``) ids."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnlab.nn.hash_init import hash_uniform_
from nnlab.utils.errors import ConfigError


def fasttext_hash(word: str) -> int:
    """fastText's ``Dictionary::hash``: 32-bit FNV-1a over the UTF-8 bytes, each byte sign-extended
    (``uint32_t(int8_t(c))``), returned as the int32 the C++ keeps in its ``vector<int32_t>`` of word hashes."""
    h = 2166136261
    for byte in word.encode("utf-8"):
        h = ((h ^ (byte | 0xFFFFFF00 if byte >= 0x80 else byte)) * 16777619) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


class FastTextBag(nn.Module):
    """Joulin et al. (2016): ``h = mean(E[w_1..w_L] ∪ E[g_1..g_M])`` over the words and their hashed word
    n-grams (n = 2..ngrams), each n-gram hashed into one of ``buckets`` rows after the vocabulary.

    The n-gram hash is fastText's: ``h = h * 116049371 + hash(w)`` over the words of the n-gram in unsigned 64-bit
    arithmetic, ``hash`` the 32-bit FNV-1a of the word's UTF-8 bytes (each byte sign-extended, the int32 result
    sign-extended again), bucket ``h mod buckets``, so a word n-gram lands in the C++ model's bucket. With
    ``ngram_hash="ids"`` the vocabulary ids stand in for the string hashes: ids are small and dense, which makes
    ``a·116049371 + b`` collide in patterns (bigrams whose first words are 81 ids apart and second words 949
    apart share a bucket); on SST-2's phrases that cost 0.5 points of bigram accuracy against the C++.
    One ``EmbeddingBag`` (mode mean,
    padding excluded from the count) does lookup and mean in one kernel; ``sparse=True`` makes its gradient
    touch only the rows of the batch, which is what makes SGD on a large bucket table fast.

    ``eos=True`` ends every text with an end-of-sentence word (its own row, after the vocabulary), as the C++
    fastText reads ``</s>`` at every line end: a word in the mean of every bag, and in its last n-gram. It is
    a bias scaled by ``1/|bag|``, which lets short phrases lean to the frequent class without pulling long
    sentences there: trained on SST-1's phrases (51 % neutral) the model without it tests at 29 % on the
    sentences, with it at 41 %, the C++ model's 41.7 % (docs/results.md).

    ``unk_idx``: the unknown word is not a word of the bag (the C++ leaves out-of-vocabulary words out of the
    bag but keeps them in its n-grams); ``None`` keeps it.

    ``words``: the vocabulary's strings, by id (``num_words`` of them); ``ngram_hash="words"`` hashes the n-grams
    over them (the C++ buckets, the configs' choice), ``"ids"`` over the ids (the default, which is what
    checkpoints saved before the choice existed were trained with).

    ``ngram_init="zero"`` (the default) starts the n-gram rows at zero and the word rows at U(-1/dim, 1/dim);
    ``"uniform"`` draws them all from U(-1/dim, 1/dim). The C++ fastText draws its input matrix in ten blocks
    of rows, one per thread, and runs only ``thread`` of them (``DenseMatrix::uniform``): at 1 or 2 threads
    the words and the first 10-20 % of the 2M buckets are random, the other 80-90 % zero. A bucket that no
    training n-gram reached then adds nothing to a test text's mean, where a random row adds noise; that was
    the whole bigram deficit of ours against it (1 thread, 100 seeds on MR: -0.21 uniform, -0.12 zero;
    docs/text.md). Zero rows are also its thread-independent form.
    """

    HASH_MULT = 116049371
    EOS = "</s>"

    def __init__(
        self,
        num_words: int,
        dim: int = 10,
        ngrams: int = 1,
        buckets: int = 2_000_000,
        padding_idx: int = 0,
        sparse: bool = True,
        weight: torch.Tensor | None = None,
        eos: bool = False,
        unk_idx: int | None = None,
        words: Sequence[str] | None = None,
        ngram_hash: str = "ids",
        ngram_init: str = "zero",
    ):
        super().__init__()
        if ngram_init not in ("zero", "uniform"):
            raise ConfigError(f"model.ngram_init={ngram_init!r} must be 'zero' or 'uniform'")
        if ngram_hash not in ("words", "ids"):
            raise ConfigError(f"model.ngram_hash={ngram_hash!r} must be 'words' or 'ids'")
        if ngram_hash == "words" and words is None:
            raise ConfigError("model.ngram_hash=words needs the vocabulary's words")
        if words is not None and len(words) != num_words:
            raise ConfigError(f"FastTextBag: {len(words)} words for a vocabulary of {num_words}")
        if ngrams < 1:
            raise ConfigError(f"model.ngrams={ngrams} must be >= 1")
        if ngrams > 1 and buckets < 1:
            raise ConfigError(f"model.buckets={buckets} must be >= 1 when model.ngrams > 1")
        self.num_words = num_words
        self.ngrams = ngrams
        self.buckets = buckets if ngrams > 1 else 0
        self.padding_idx = padding_idx
        self.unk_idx = unk_idx
        self.eos_index = num_words if eos else None
        self.bucket_offset = num_words + int(eos)
        rows = self.bucket_offset + self.buckets
        # fastText's input init: U(-1/dim, 1/dim), drawn once (EmbeddingBag's own N(0, 1) init of the
        # 2M-row table would be thrown away) and on torch's threads (hash_uniform_: same values on any count).
        # The n-gram rows start at zero unless ngram_init=uniform (class docstring).
        init = torch.zeros(rows, dim) if ngram_init == "zero" else torch.empty(rows, dim)
        hash_uniform_(init[: self.bucket_offset] if ngram_init == "zero" else init, 1.0 / dim)
        self.bag = nn.EmbeddingBag(rows, dim, mode="mean", sparse=sparse, padding_idx=padding_idx, _weight=init)
        # What the n-gram hash reads for each id (the end-of-sentence word last): derived from the vocabulary,
        # which checkpoints keep in their hyperparameters, so not a checkpoint entry of its own.
        if ngram_hash == "ids":
            keys = torch.arange(self.bucket_offset, dtype=torch.int64)
        else:
            keys = torch.tensor([fasttext_hash(w) for w in [*words, self.EOS][: self.bucket_offset]], dtype=torch.int64)
        self.register_buffer("hash_keys", keys, persistent=False)
        with torch.no_grad():
            if weight is not None:
                self.bag.weight[:num_words] = weight
            self.bag.weight[padding_idx].zero_()
        self.output_dim = dim

    def ngram_ids(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(N, L + (L-1) + ...) ids: the words, then each n-gram order; entries on padding are padding.
        With ``eos`` each text first gets its end-of-sentence word after its last word (L + 1 columns)."""
        n, length = tokens.shape
        if self.eos_index is not None:
            lengths = lengths.to(tokens.device)
            tokens = torch.cat([tokens, tokens.new_full((n, 1), self.padding_idx)], dim=1)
            tokens[torch.arange(n, device=tokens.device), lengths] = self.eos_index
            lengths, length = lengths + 1, length + 1
        valid = torch.arange(length, device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]
        words = valid if self.unk_idx is None else valid & (tokens != self.unk_idx)
        parts = [tokens.masked_fill(~words, self.padding_idx)]
        keys = self.hash_keys[tokens] if self.ngrams > 1 else tokens  # padding is an id too
        h = keys
        for order in range(2, self.ngrams + 1):
            if length < order:
                break
            h = h[:, :-1] * self.HASH_MULT + keys[:, order - 1 :]
            ok = valid[:, order - 1 :]
            ids = self.bucket_offset + self._bucket(h)
            parts.append(ids.masked_fill(~ok, self.padding_idx))
        return torch.cat(parts, dim=1)

    def bags(self, flat: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of ``ngram_ids`` without their padding, ragged (CSR): ``(ids, offsets)``, text i's bag in
        ``ids[offsets[i]:offsets[i + 1]]``, in its row's order. ``flat``: the texts' word ids one after the
        other, ``lengths`` (N,); or (N, L) padded tokens, whose padding is dropped first. No (N, L) id matrix:
        on SST's phrases (1 to 52 words, 85 % of a padded row is padding) the padded ids cost more to build,
        gather and skip than the SGD itself."""
        dev = flat.device
        lengths = lengths.to(dev, torch.int64)
        if flat.dim() == 2:
            flat = flat[torch.arange(flat.shape[1], device=dev)[None, :] < lengths[:, None]]
        tokens = flat.to(torch.int64)
        n = len(lengths)
        if self.eos_index is not None:
            at_eos = torch.zeros(len(tokens) + n, dtype=torch.bool, device=dev)
            at_eos[torch.cumsum(lengths + 1, 0) - 1] = True
            tokens = tokens.new_full((len(tokens) + n,), self.eos_index).masked_scatter_(~at_eos, tokens)
            lengths = lengths + 1
        text = torch.repeat_interleave(torch.arange(n, device=dev), lengths)
        pos = torch.arange(len(tokens), device=dev) - (torch.cumsum(lengths, 0) - lengths)[text]
        if self.unk_idx is None:
            words, rank, kept = lengths, pos, slice(None)
        else:
            kept = tokens != self.unk_idx
            rank = torch.cumsum(kept, 0) - kept.long()  # kept words before each token, then within its text
            rank = (rank - rank[torch.cumsum(lengths, 0) - lengths][text])[kept]
            words = torch.zeros_like(lengths).index_add_(0, text, kept.long())
        orders = range(2, self.ngrams + 1)
        sizes = words + sum(((lengths - k + 1).clamp_min(0) for k in orders), torch.zeros_like(lengths))
        offsets = torch.zeros(n + 1, dtype=torch.int64, device=dev)
        torch.cumsum(sizes, 0, out=offsets[1:])
        ids = torch.empty(int(offsets[-1]), dtype=torch.int64, device=dev)
        base = offsets[:-1] + words  # where each bag's next order starts: words first, then each n-gram order
        ids[offsets[:-1][text[kept]] + rank] = tokens[kept]
        keys = self.hash_keys[tokens] if self.ngrams > 1 else tokens
        h = keys
        for k in orders:
            h = h[:-1] * self.HASH_MULT + keys[k - 1 :]  # the window of k words starting at each token
            at, start = text[: len(h)], pos[: len(h)]
            ok = start <= lengths[at] - k
            ids[base[at[ok]] + start[ok]] = self.bucket_offset + self._bucket(h[ok])
            base = base + (lengths - k + 1).clamp_min(0)
        return ids, offsets

    def _bucket(self, h: torch.Tensor) -> torch.Tensor:
        """``h mod buckets`` for h read as unsigned 64-bit (the C++ ``uint64_t``): int64 multiplication and
        addition wrap to the same bits, and a negative int64 stands for h + 2^64."""
        r = torch.remainder(h, self.buckets)
        return torch.remainder(r + (h < 0).long() * (2**64 % self.buckets), self.buckets)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.bag(self.ngram_ids(tokens, lengths))
