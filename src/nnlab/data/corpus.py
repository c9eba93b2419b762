"""Word-level corpora for language modelling: token streams and TBPTT windows (vocabulary: ``nnlab.vocab``).

The classic recipe (Mikolov's PTB setup, Zaremba et al. 2014, pytorch/examples word_language_model):
every line is split on whitespace and gets ``<eos>`` appended; the vocabulary is built from the
training split only; a word of val/test that is not in it becomes ``<unk>`` (counted and reported).
The whole split is one token stream, cut into ``batch_size`` contiguous columns ("batchify") and read
in order in windows of ``bptt`` steps; the stream is never shuffled, so the hidden state of window
``i`` is the right initial state for window ``i + 1``.

Data come from local files first (``{data_dir}/ptb/ptb.{train,valid,test}.txt``,
``{data_dir}/wikitext-2/{train,valid,test}.txt``, or any files for ``local_corpus``) and from the HF hub
second (``ptb_text_only``, ``Salesforce/wikitext``/``wikitext-2-v1``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from nnlab.data.hub import hub_cache_dir, load_hub
from nnlab.data.loader import ResumableDataLoader
from nnlab.utils.errors import ConfigError, DataError
from nnlab.vocab import Vocab, tokenize_lines

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def batchify(stream: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N,) token stream -> (N // batch_size, batch_size): column ``j`` is the ``j``-th contiguous chunk.

    The ``N % batch_size`` trailing tokens are dropped (the usual convention)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1")
    steps = stream.numel() // batch_size
    if steps < 2:
        raise DataError(
            f"a split of {stream.numel()} tokens is too short for batch_size={batch_size}; use a smaller batch"
        )
    return stream[: steps * batch_size].view(batch_size, steps).t().contiguous()


def window_bounds(
    num_steps: int, bptt: int, variable: bool = False, generator: torch.Generator | None = None
) -> list[tuple[int, int]]:
    """(start, length) of the TBPTT windows over a (num_steps, B) batchified stream.

    Window ``i`` covers inputs ``[start, start + length)`` and targets ``[start + 1, start + length + 1)``,
    so consecutive windows tile positions ``0 .. num_steps - 2`` exactly once.
    ``variable`` draws each length as in AWD-LSTM (Merity et al. 2017): base ``bptt`` with probability
    0.95 else ``bptt / 2``, then ``max(5, round(N(base, 5)))``; the mean stays close to ``bptt`` while the
    window boundaries move from epoch to epoch.
    """
    if bptt < 1:
        raise ConfigError(f"bptt={bptt} must be >= 1")
    bounds, start, last = [], 0, num_steps - 1
    while start < last:
        length = bptt
        if variable:
            base = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2
            length = max(5, int(round(base + 5 * torch.randn((), generator=generator).item())))
        length = min(length, last - start)
        bounds.append((start, length))
        start += length
    return bounds


class TBPTTWindows(IterableDataset):
    """Yields ``(input, target)`` pairs of shape (T, B) in stream order; ``target`` is ``input`` shifted by one.

    With ``variable=True`` each epoch draws new window lengths from ``(seed, epoch)`` (the loader calls
    ``set_epoch``), so runs are reproducible, resumable, and windows differ between epochs.
    """

    def __init__(self, data: torch.Tensor, bptt: int, variable: bool = False, seed: int = 0):
        self.data, self.bptt, self.variable, self.seed = data, bptt, variable, seed
        self.epoch = 0
        if not variable:
            self._fixed = window_bounds(data.size(0), bptt)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def bounds(self) -> list[tuple[int, int]]:
        if not self.variable:
            return self._fixed
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return window_bounds(self.data.size(0), self.bptt, True, g)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bounds = self.bounds()
        for start, length in bounds:
            yield self.data[start : start + length], self.data[start + 1 : start + 1 + length]

    def __len__(self) -> int:
        if self.variable:
            # Unknown before the pass: no length, so Lightning reads until the stream ends instead of
            # stopping at a guessed count and silently skipping the end of the stream.
            raise TypeError("variable-length TBPTT windows have no length before a pass")
        return len(self._fixed)


# --- sources: local files first, HF hub second


@dataclass(frozen=True)
class CorpusSource:
    name: str
    folder: str
    files: tuple[str, str, str]  # train, val, test file names inside folder
    hub: tuple[str, str | None, str] | None  # (hub id, config name, text field)
    hub_splits: tuple[str, str, str] = ("train", "validation", "test")


SOURCES = {
    "ptb": CorpusSource(
        "ptb", "ptb", ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"), ("ptb_text_only", None, "sentence")
    ),
    "wikitext2": CorpusSource(
        "wikitext2",
        "wikitext-2",
        ("train.txt", "valid.txt", "test.txt"),
        ("Salesforce/wikitext", "wikitext-2-v1", "text"),
    ),
}


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 ({e.reason} at byte {e.start}); convert it with iconv") from None


def load_source_lines(source: CorpusSource, data_dir: str | os.PathLike) -> dict[str, list[str]]:
    """Raw lines of the three splits, from ``data_dir/source.folder`` or else from the hub."""
    folder = Path(data_dir) / source.folder
    paths = [folder / f for f in source.files]
    if all(p.is_file() for p in paths):
        return {split: _read_lines(p) for split, p in zip(SPLITS, paths)}
    where = f"{folder}/{{{','.join(source.files)}}}"
    hint = f"put the files there or set paths.data_dir (DATA_DIR) to the folder holding {source.folder}/"
    if source.hub is None:
        raise DataError(f"{source.name}: not found at {where}; {hint}")
    hub_id, config, field = source.hub
    ds = load_hub(source.name, hub_id, where, config, hint=hint, cache_dir=hub_cache_dir(data_dir))
    return {split: list(ds[hs][field]) for split, hs in zip(SPLITS, source.hub_splits)}


def load_local_lines(train: str | None, val: str | None, test: str | None) -> dict[str, list[str]]:
    for split, path in zip(SPLITS, (train, val, test)):
        if not path:
            raise ConfigError(f"local_corpus needs data.{split}=PATH (plain text, one sentence or paragraph per line)")
    lines = {}
    for split, path in zip(SPLITS, (train, val, test)):
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataError(f"local_corpus: data.{split}={path} is not a file")
        lines[split] = _read_lines(p)
    return lines


@dataclass
class EncodedCorpus:
    vocab: Vocab
    streams: dict[str, torch.Tensor]
    oov: dict[str, int]

    @classmethod
    def from_lines(cls, lines: dict[str, list[str]], max_vocab: int | None = None, min_freq: int = 1) -> EncodedCorpus:
        tokens = {split: [w for words in tokenize_lines(lines[split]) for w in words] for split in SPLITS}
        vocab = Vocab.build_stream([tokens["train"]], max_size=max_vocab, min_freq=min_freq)
        streams, oov = {}, {}
        for split in SPLITS:
            ids, oov[split] = vocab.encode_with_oov(tokens[split])
            if len(ids) < 2:
                raise DataError(f"the {split} split has {len(ids)} tokens; a language model needs at least 2")
            streams[split] = torch.tensor(ids, dtype=torch.long)
        return cls(vocab, streams, oov)


class CorpusDataModule(L.LightningDataModule):
    """A word-level corpus as TBPTT windows. ``model_kwargs()`` gives the model its vocabulary.

    Args:
        name: ``ptb``, ``wikitext2`` or ``local_corpus``.
        data_dir: folder holding ``ptb/`` and ``wikitext-2/`` (``paths.data_dir``).
        train, val, test: files for ``local_corpus``.
        batch_size: columns of the training stream; ``eval_batch_size`` for val/test (default: batch_size).
        bptt: window length; ``variable_bptt`` draws lengths around it (AWD-LSTM).
        max_vocab, min_freq: vocabulary cut for your own corpora (PTB/WikiText come pre-cut).
    """

    modality = "tokens"

    def __init__(
        self,
        name: str = "ptb",
        data_dir: str = "data",
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        batch_size: int = 20,
        eval_batch_size: int | None = None,
        bptt: int = 35,
        variable_bptt: bool = False,
        max_vocab: int | None = None,
        min_freq: int = 1,
        seed: int = 0,
    ):
        super().__init__()
        if name != "local_corpus" and name not in SOURCES:
            raise ConfigError(f"data.name={name!r} is not a corpus; choose one of: local_corpus, {', '.join(SOURCES)}")
        if bptt < 1 or batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ConfigError("data.bptt, data.batch_size and data.eval_batch_size must be >= 1")
        self.name, self.data_dir = name, data_dir
        self.files = (train, val, test)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.bptt, self.variable_bptt = bptt, variable_bptt
        self.max_vocab, self.min_freq, self.seed = max_vocab, min_freq, seed
        self.corpus: EncodedCorpus | None = None
        self.windows: dict[str, TBPTTWindows] = {}
        self._lines: dict[str, list[str]] | None = None

    def prepare_data(self) -> None:
        # Once per node (local rank 0): the hub path downloads into <data_dir>/hf here; the lines are kept
        # for this process's setup().
        if self.name in SOURCES and self.corpus is None and self._lines is None:
            self._lines = load_source_lines(SOURCES[self.name], self.data_dir)

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        if self.name == "local_corpus":
            lines = load_local_lines(*self.files)
        elif self._lines is not None:
            lines, self._lines = self._lines, None
        else:
            lines = load_source_lines(SOURCES[self.name], self.data_dir)
        self.corpus = EncodedCorpus.from_lines(lines, self.max_vocab, self.min_freq)
        c = self.corpus
        counts = ", ".join(f"{s} {c.streams[s].numel():,}" for s in SPLITS)
        unk = ", ".join(f"{s} {c.oov[s]:,}" for s in SPLITS)
        log.info(f"{self.name}: tokens {counts}; vocabulary {len(c.vocab):,}; out-of-vocabulary -> <unk>: {unk}")
        for split in SPLITS:
            bs = self.batch_size if split == "train" else self.eval_batch_size
            data = batchify(c.streams[split], bs)
            variable = self.variable_bptt and split == "train"
            self.windows[split] = TBPTTWindows(data, self.bptt, variable=variable, seed=self.seed)

    @property
    def vocab(self) -> Vocab:
        if self.corpus is None:
            raise RuntimeError("call setup() first")
        return self.corpus.vocab

    def model_kwargs(self) -> dict:
        return {"vocab": list(self.vocab.itos)}

    def stats(self) -> dict:
        """Token counts, vocabulary size and out-of-vocabulary counts (plain data, for logs and tests)."""
        c = self.corpus
        assert c is not None, "call setup() first"
        return {
            "tokens": {s: int(c.streams[s].numel()) for s in SPLITS},
            "vocab_size": len(c.vocab),
            "oov": dict(c.oov),
        }

    def _loader(self, split: str) -> DataLoader:
        # batch_size=None: the dataset already yields (T, B) windows; order is the stream's order.
        return ResumableDataLoader(self.windows[split], batch_size=None, shuffle=False, num_workers=0, seed=self.seed)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
