"""Tokens and their indices, for sentence classifiers and language models alike: the tokenizer, the one
``Vocab`` and batch padding.

One class, so that a fix to how words get their indices reaches both families; two index orders in it
(``Vocab.build`` for sentences, ``Vocab.build_stream`` for token streams), because the two families were
trained with them and the order decides which row of the embedding a word gets, hence every result for a seed.
Below both ``nnlab.data`` (which builds a vocabulary from a training split) and ``nnlab.models`` (which keeps it
in a checkpoint and encodes new text with it at prediction time), so neither imports the other.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import torch

from nnlab.utils.errors import ConfigError, DataError, choice_error

PAD = "<pad>"
UNK = "<unk>"
EOS = "<eos>"

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


def tokenize_lines(lines: Iterable[str]) -> Iterator[list[str]]:
    """A corpus for language modelling: each line's whitespace tokens plus ``<eos>``, case kept (an empty line
    gives a lone ``<eos>``, as in the literature: Mikolov's PTB setup, pytorch/examples word_language_model)."""
    for line in lines:
        yield tokenize(line, lowercase=False) + [EOS]


# ---------------------------------------------------------------------------------------------- vocabulary


def _by_frequency(counts: Counter[str], ties: str) -> list[str]:
    """The counted tokens, most frequent first; equal counts ``alphabetical`` or in ``first_seen`` order
    (``Counter`` keeps insertion order and ``sorted`` is stable)."""
    if ties == "alphabetical":
        return sorted(counts, key=lambda t: (-counts[t], t))
    if ties == "first_seen":
        return sorted(counts, key=lambda t: -counts[t])
    raise ValueError(f"ties={ties!r}: alphabetical or first_seen")


class Vocab:
    """Token <-> index map, built on the training split only, in one of two layouts.

    Sentences (``Vocab.build``, the text classifiers): ``<pad>`` at 0 and ``<unk>`` at 1, then the tokens by
    training frequency, equal counts in alphabetical order (so the indices do not depend on the order of the
    examples, e.g. of SST's phrases); ``max_size`` counts the tokens besides the two specials. The encoders pad
    with index 0 and word dropout writes index 1.

    Token streams (``Vocab.build_stream``, the language models): by training frequency with equal counts in
    order of first occurrence, so ``itos[:k]`` are the ``k`` most frequent words; ``<eos>`` and ``<unk>`` are
    always in, at their own frequency rank when the corpus has them (PTB has ``<unk>``), else last;
    ``max_size`` counts them. No padding: a stream has none.

    ``to_dict()`` is plain data (lists, strings, bools) so a sentence vocabulary can travel in a checkpoint
    loaded with ``weights_only=True``; ``Vocab.from_dict`` rebuilds the same map, tokenizer settings included,
    so prediction on new text sees exactly the training-time preprocessing.
    """

    def __init__(
        self, tokens: Sequence[str], lowercase: bool = True, tokenizer: str = "whitespace", stream: bool = False
    ):
        self.itos = list(tokens)
        if not stream and self.itos[:2] != [PAD, UNK]:
            raise DataError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {self.itos[:2]}")
        if tokenizer not in TOKENIZERS:
            raise choice_error("data.tokenizer", tokenizer, TOKENIZERS)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise DataError("a vocabulary holds a token twice; rebuild it from the training data")
        for special in (EOS, UNK) if stream else ():
            if special not in self.stoi:
                raise DataError(f"vocabulary lacks {special!r}; build it with Vocab.build_stream")
        self.lowercase = lowercase
        self.tokenizer = tokenizer
        self.stream = stream
        self.unk_index = self.stoi[UNK]
        self.pad_index = self.stoi.get(PAD)  # 0 for sentences; None for a stream
        self.eos_index = self.stoi.get(EOS)  # a stream's end-of-line token

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        lowercase: bool = True,
        tokenizer: str = "whitespace",
    ) -> Vocab:
        """The sentence layout from tokenized training sentences: ``<pad>``, ``<unk>``, then the tokens seen at
        least ``min_freq`` times, most frequent first (ties alphabetical), at most ``max_size`` of them."""
        if min_freq < 1:
            raise ConfigError(f"data.min_freq={min_freq} must be >= 1")
        if max_size is not None and max_size < 0:
            raise ConfigError(f"data.max_size={max_size} must be >= 0 or null")
        counts = Counter(t for s in sentences for t in s)
        kept = [t for t in _by_frequency(counts, "alphabetical") if counts[t] >= min_freq and t not in (PAD, UNK)]
        if max_size is not None:
            kept = kept[:max_size]
        return cls([PAD, UNK, *kept], lowercase=lowercase, tokenizer=tokenizer)

    @classmethod
    def build_stream(cls, lines: Iterable[Sequence[str]], max_size: int | None = None, min_freq: int = 1) -> Vocab:
        """The stream layout from tokenized training lines (with ``<eos>``: ``tokenize_lines``); words cut by
        ``max_size`` (which counts ``<eos>`` and ``<unk>``) or ``min_freq`` become ``<unk>``."""
        counts = Counter(t for s in lines for t in s)
        ranked = _by_frequency(counts, "first_seen")
        kept = [w for w in ranked if w not in (UNK, EOS) and counts[w] >= min_freq]
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]  # two slots for <eos> and <unk>
        keep = set(kept) | {UNK, EOS}
        # The specials keep their frequency rank when the corpus has them (PTB has <unk>); else they come last.
        itos = [w for w in ranked if w in keep] + [w for w in (EOS, UNK) if w not in counts]
        return cls(itos, lowercase=False, stream=True)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        unk = self.unk_index
        return [self.stoi.get(t, unk) for t in tokens]

    def encode_with_oov(self, tokens: Iterable[str]) -> tuple[list[int], int]:
        """Indices of ``tokens`` and how many of them were out of vocabulary (mapped to ``<unk>``)."""
        ids, oov, get, unk = [], 0, self.stoi.get, self.unk_index
        for t in tokens:
            i = get(t)
            if i is None:
                i, oov = unk, oov + 1
            ids.append(i)
        return ids, oov

    def encode_text(self, text: str) -> list[int]:
        return self.encode(tokenize(text, self.lowercase, self.tokenizer))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def to_dict(self) -> dict:
        return {"tokens": list(self.itos), "lowercase": self.lowercase, "tokenizer": self.tokenizer}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        """A sentence vocabulary from ``to_dict()`` (what a TextClassifier checkpoint stores)."""
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
