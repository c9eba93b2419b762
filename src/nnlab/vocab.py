"""Tokens and their indices for sentence models: the tokenizer, the vocabulary and batch padding.

Below both ``nnlab.data`` (which builds a vocabulary from a training split) and ``nnlab.models`` (which keeps it
in a checkpoint and encodes new text with it at prediction time), so neither imports the other.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence

import torch

from nnlab.utils.errors import ConfigError, DataError, choice_error

PAD = "<pad>"
UNK = "<unk>"

# ---------------------------------------------------------------------------------------------- tokenizer


_BASIC_PATTERNS = [
    # Kim (2014)'s clean_str: split clitics and punctuation off words, keep the rest of the word intact.
    (re.compile(r"[^A-Za-z0-9(),!?'`À-ÿ\-]"), " "),
    (re.compile(r"'s\b"), " 's"),
    (re.compile(r"'ve\b"), " 've"),
    (re.compile(r"n't\b"), " n't"),
    (re.compile(r"'re\b"), " 're"),
    (re.compile(r"'d\b"), " 'd"),
    (re.compile(r"'ll\b"), " 'll"),
    (re.compile(r"([,!?()])"), r" \1 "),
]

TOKENIZERS = ("whitespace", "basic")


def tokenize(text: str, lowercase: bool = True, tokenizer: str = "whitespace") -> list[str]:
    """Split ``text`` into tokens.

    ``whitespace`` splits on runs of whitespace (the SST and MR files are already tokenized);
    ``basic`` first separates punctuation and English clitics as Kim (2014)'s ``clean_str`` does,
    for raw text such as a user's own files or a sentence typed into ``scripts/predict.py``.
    """
    if lowercase:
        text = text.lower()
    if tokenizer == "basic":
        for pattern, repl in _BASIC_PATTERNS:
            text = pattern.sub(repl, text)
    elif tokenizer != "whitespace":
        raise choice_error("data.tokenizer", tokenizer, TOKENIZERS)
    return text.split()


# ---------------------------------------------------------------------------------------------- vocabulary


class Vocab:
    """Token <-> index map with ``<pad>`` at 0 and ``<unk>`` at 1, built on the training split only.

    ``to_dict()`` is plain data (lists, strings, bools) so it can travel in a checkpoint loaded with
    ``weights_only=True``; ``Vocab.from_dict`` rebuilds the same map, tokenizer settings included,
    so prediction on new text sees exactly the training-time preprocessing.
    """

    def __init__(self, tokens: Sequence[str], lowercase: bool = True, tokenizer: str = "whitespace"):
        if list(tokens[:2]) != [PAD, UNK]:
            raise DataError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {list(tokens[:2])}")
        if tokenizer not in TOKENIZERS:
            raise choice_error("data.tokenizer", tokenizer, TOKENIZERS)
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise DataError("a vocabulary holds a token twice; rebuild it from the training data")
        self.lowercase = lowercase
        self.tokenizer = tokenizer

    pad_index = 0
    unk_index = 1

    @classmethod
    def build(
        cls,
        sentences: Iterator[list[str]] | Sequence[list[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        lowercase: bool = True,
        tokenizer: str = "whitespace",
    ) -> Vocab:
        """Tokens seen at least ``min_freq`` times, most frequent first (ties alphabetical), at most
        ``max_size`` of them besides the two specials."""
        if min_freq < 1:
            raise ConfigError(f"data.min_freq={min_freq} must be >= 1")
        if max_size is not None and max_size < 0:
            raise ConfigError(f"data.max_size={max_size} must be >= 0 or null")
        counts = Counter(t for s in sentences for t in s)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            kept = kept[:max_size]
        return cls([PAD, UNK, *kept], lowercase=lowercase, tokenizer=tokenizer)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        unk = self.unk_index
        return [self.stoi.get(t, unk) for t in tokens]

    def encode_text(self, text: str) -> list[int]:
        return self.encode(tokenize(text, self.lowercase, self.tokenizer))

    def to_dict(self) -> dict:
        return {"tokens": list(self.itos), "lowercase": self.lowercase, "tokenizer": self.tokenizer}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        try:
            return cls(d["tokens"], lowercase=bool(d["lowercase"]), tokenizer=str(d["tokenizer"]))
        except (KeyError, TypeError) as e:
            raise DataError(f"not a stored vocabulary (missing {e}); need tokens, lowercase, tokenizer") from None


def pad_batch(batch: Sequence[tuple[torch.Tensor, int]], pad_index: int = 0):
    """``(tokens (N, L), lengths (N,), labels (N,))`` with ``tokens`` right-padded by ``pad_index``."""
    seqs = [s for s, _ in batch]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    tokens = torch.full((len(seqs), int(lengths.max())), pad_index, dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = s
    return tokens, lengths, torch.tensor([y for _, y in batch], dtype=torch.long)
