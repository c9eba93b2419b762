"""What every sentence-classification dataset shares: the ``TextDataModule`` pipeline, and the datasets with
no protocol of their own (AG News and Yelp from the hub, your own files).

A dataset subclasses ``TextDataModule`` and writes ``load_splits()``; everything after that is the same for
all of them and lives here: validation carved from train when absent (seeded by ``split_seed`` only), the
label set and the vocabulary from the training split only, truncation, encoding, bucketed batches and
``model_kwargs``. Reading files: ``nnlab.data.readers``; SST: ``nnlab.data.sst``; MR: ``nnlab.data.mr``;
tokenizer and vocabulary: ``nnlab.vocab``. Local files come first (``${paths.data_dir}`` in the layout of
``../shared/data``), Hugging Face hub ids second.

Batches are ``(tokens, lengths, labels)``: ``tokens`` (N, L) int64 padded with ``pad_index`` to the longest
sentence of the batch, ``lengths`` (N,) int64, ``labels`` (N,) int64. Batches of the training split are
bucketed by length (``BucketBatchSampler``: sentences of similar length together, batch order shuffled),
which cuts padding.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from nnlab.data.hub import hub_cache_dir, load_hub
from nnlab.data.loader import BucketBatchSampler, ResumableDataLoader
from nnlab.data.readers import FORMATS, ReadReport, check_bad_fraction, read_examples
from nnlab.utils.errors import ConfigError, DataError, choice_error
from nnlab.vocab import TOKENIZERS, Vocab, pad_batch, tokenize

log = logging.getLogger(__name__)

# tokens a sentence keeps (longer ones are truncated and counted per split): SST's and MR's longest are ~60, and
# one runaway line (a whole file without newlines) must not turn a seconds-long epoch into minutes
MAX_LENGTH = 512


def sort_labels(labels: set[str] | Sequence[str]) -> list[str]:
    """Label names in a stable order: numerically when they are all integers, else alphabetically."""
    labels = set(labels)
    if all(re.fullmatch(r"[+-]?\d+", lab) for lab in labels):
        return sorted(labels, key=int)
    return sorted(labels)


class EncodedText(Dataset):
    """Token-id sequences and labels of one split; an empty sequence is read as one ``unk_index``."""

    def __init__(self, ids: list[list[int]], labels: list[int], unk_index: int):
        if len(ids) != len(labels):
            raise ValueError("ids and labels differ in length")
        self.lengths = [max(len(s), 1) for s in ids]
        #: all texts' ids one after the other; ``ids`` are views into it. Whole-split trainers (fastText's
        #: ``fit_fasttext``) take it as it is instead of padding or concatenating a list of tensors.
        self.flat = torch.tensor([t for s in ids for t in (s or [unk_index])], dtype=torch.long)
        self.ids = list(self.flat.split(self.lengths))
        self.labels = torch.tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.ids[i], int(self.labels[i])


class TextDataModule(LightningDataModule):
    """Base of the sentence-classification DataModules.

    Subclasses implement ``load_splits()`` returning ``{"train": [(label, text)], "val": [...] or None,
    "test": [...]}`` with string labels, and may set ``class_names``/``label_order``. Everything else
    (val carved from train when absent, label set from train, vocabulary on train only, encoding,
    bucketed batches, ``model_kwargs``) is shared.
    """

    modality = "text"
    name = "text"
    # what the training split holds (SST: "phrases (...)" under the published protocol); in metrics.json
    protocol = "sentences"
    #: display names of the classes, in label order; None: the label strings themselves
    class_names: list[str] | None = None
    #: training label -> the label it is scored as (None: trained on, never scored), when the training split
    #: has finer labels than val/test (SST-2's grades, ``data.phrase_labels``); None: one label set for all splits
    train_label_map: dict[str, str] | None = None

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 50,
        eval_batch_size: int = 500,
        lowercase: bool = True,
        tokenizer: str = "whitespace",
        min_freq: int = 1,
        max_size: int | None = None,
        max_length: int | None = MAX_LENGTH,
        encoding: str = "auto",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        seed: int = 0,
        bucket: bool = True,
        max_bad_fraction: float = 0.01,
        num_workers: int = 0,
    ):
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise choice_error("data.tokenizer", tokenizer, TOKENIZERS)
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction={val_fraction} must be in (0, 1)")
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError("data.batch_size and data.eval_batch_size must be >= 1")
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.lowercase = lowercase
        self.tokenizer = tokenizer
        self.min_freq = min_freq
        self.max_size = max_size
        self.max_length = max_length
        self.encoding = encoding
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.seed = seed
        self.bucket = bucket
        self.max_bad_fraction = max_bad_fraction
        self.num_workers = num_workers
        self.vocab: Vocab | None = None
        self.labels: list[str] = []
        self.reports: list[ReadReport] = []
        self.datasets: dict[str, EncodedText] = {}
        self.raw: dict[str, list[tuple[str, str]]] = {}
        self._splits: dict[str, list[tuple[str, str]] | None] | None = None

    # -- to implement
    def load_splits(self) -> dict[str, list[tuple[str, str]] | None]:
        raise NotImplementedError

    # -- shared
    def _read(self, path: Path, fmt: str = "label_first", **kw) -> list[tuple[str, str]]:
        examples, report = read_examples(path, fmt, self.encoding, **kw)
        self._accept(report)
        return examples

    def _accept(self, report: ReadReport) -> None:
        """Fail on too many bad lines (one line), else keep the file's report in ``self.reports``."""
        check_bad_fraction(report, self.max_bad_fraction)
        self.reports.append(report)

    def carve_val(self, train: list[tuple[str, str]]) -> tuple[list, list]:
        """A seeded ``val_fraction`` of ``train`` as validation (the split depends on ``split_seed`` only,
        so runs with different training seeds see the same split)."""
        rng = np.random.default_rng(self.split_seed)
        perm = rng.permutation(len(train))
        n_val = max(1, round(self.val_fraction * len(train)))
        val = [train[i] for i in sorted(perm[:n_val])]
        rest = [train[i] for i in sorted(perm[n_val:])]
        return rest, val

    def _hub(self, hub_id: str, looked: str, config: str | None = None, hint: str = ""):
        return load_hub(self.name, hub_id, looked, config=config, hint=hint, cache_dir=hub_cache_dir(self.data_dir))

    def prepare_data(self) -> None:
        # Lightning calls this once per node (local rank 0): the hub download happens here, and the splits
        # read are kept, so the setup() that follows in the same process does not read them again.
        if self.datasets or self._splits is not None:
            return
        self.reports = []
        self._splits = self.load_splits()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self._splits is None:
            self.reports = []
            splits = self.load_splits()
        else:
            splits, self._splits = self._splits, None
        if splits.get("val") is None:
            splits["train"], splits["val"] = self.carve_val(splits["train"])
        self.raw = {k: v for k, v in splits.items() if v is not None}
        sizes = ", ".join(f"{len(v):,} {k}" for k, v in self.raw.items())
        log.info(f"{self.name}: training on {self.protocol}; {sizes} examples; training batches of {self.batch_size}")
        train_labels = self.label_order(sorted({lab for lab, _ in self.raw["train"]}))
        fine = self.train_label_map
        if fine is not None and set(train_labels) - set(fine):
            raise DataError(
                f"dataset {self.name!r}: training labels {sorted(set(train_labels) - set(fine))} have no scored label"
            )
        scored = train_labels if fine is None else {fine[lab] for lab in train_labels} - {None}
        self.labels = self.label_order(sorted(scored))
        if len(self.labels) < 2:
            raise DataError(f"dataset {self.name!r}: the training split has {len(self.labels)} label(s); need >= 2")
        label_index = {lab: i for i, lab in enumerate(self.labels)}
        #: the training split's label ids (its finer labels when train_label_map is set)
        self.train_labels = train_labels
        train_index = {lab: i for i, lab in enumerate(train_labels)}
        tokens = {split: [self._tok(t) for _, t in examples] for split, examples in self.raw.items()}
        truncated = dict.fromkeys(tokens, 0)
        if self.max_length:
            truncated = {split: sum(len(t) > self.max_length for t in toks) for split, toks in tokens.items()}
            tokens = {split: [t[: self.max_length] for t in toks] for split, toks in tokens.items()}
        self.vocab = Vocab.build(tokens["train"], self.min_freq, self.max_size, self.lowercase, self.tokenizer)
        self.text_stats = {}
        for split, examples in self.raw.items():
            index = train_index if split == "train" else label_index
            unknown = Counter(lab for lab, _ in examples if lab not in index)
            if unknown:
                raise DataError(
                    f"dataset {self.name!r}: the {split} split has labels not in the training split: "
                    f"{dict(unknown)}; fix the file or drop those lines"
                )
            # Nothing left after tokenization ("..." under the basic tokenizer): EncodedText reads it as one
            # <unk>, so the example keeps its place and label and every model sees a sequence of length >= 1.
            empty = sum(not t for t in tokens[split])
            ids = [self.vocab.encode(t) for t in tokens[split]]
            self.text_stats[split] = {"examples": len(ids), "truncated": truncated[split], "empty": empty}
            if truncated[split]:
                log.warning(
                    f"{self.name} {split}: truncated {truncated[split]} of {len(ids)} sentences to "
                    f"data.max_length={self.max_length} tokens"
                )
            if empty:
                log.warning(
                    f"{self.name} {split}: {empty} of {len(ids)} sentences are empty after tokenization; "
                    "each is read as a single <unk>"
                )
            self.datasets[split] = EncodedText(ids, [index[lab] for lab, _ in examples], self.vocab.unk_index)

    def _tok(self, text: str) -> list[str]:
        return tokenize(text, self.lowercase, self.tokenizer)

    def label_order(self, labels: list[str]) -> list[str]:
        return sort_labels(labels)

    def data_info(self) -> dict:
        """What a run trained and was scored on (metrics.json ``data``): the protocol, the split sizes and the
        training batch size (SST's phrases may train in batches of their own)."""
        sizes = {f"{k}_examples": len(v) for k, v in self.raw.items()}
        return {"protocol": self.protocol, **sizes, "batch_size": self.batch_size}

    def model_kwargs(self) -> dict:
        if self.vocab is None:
            raise DataError("call setup('fit') before model_kwargs()")
        names = self.class_names if self.class_names is not None else list(self.labels)
        kw = {
            "vocab": self.vocab.to_dict(),
            "num_classes": len(self.labels),
            "class_names": list(names),
            "pad_index": self.vocab.pad_index,
        }
        if self.train_label_map is not None:
            kw["label_groups"] = [
                [i for i, lab in enumerate(self.train_labels) if self.train_label_map[lab] == scored]
                for scored in self.labels
            ]
            kw["train_classes"] = len(self.train_labels)
        return kw

    def split_sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.datasets.items()}

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup("fit")
        ds = self.datasets[split]
        common = {"collate_fn": pad_batch, "num_workers": self.num_workers, "seed": self.seed}
        if train and self.bucket:
            sampler = BucketBatchSampler(ds.lengths, self.batch_size, seed=self.seed)
            return ResumableDataLoader(ds, batch_sampler=sampler, **common)
        return ResumableDataLoader(
            ds, batch_size=self.batch_size if train else self.eval_batch_size, shuffle=train, **common
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class _HubOnlyDataModule(TextDataModule):
    """A hub dataset with train/test splits (validation carved from train)."""

    hub_id = ""

    def load_splits(self):
        hub = self._hub(self.hub_id, "(hub only)")
        names = hub["train"].features["label"].names
        self.class_names = list(names)
        return {
            "train": [(str(r["label"]), r["text"]) for r in hub["train"]],
            "val": None,
            "test": [(str(r["label"]), r["text"]) for r in hub["test"]],
        }


class AGNewsDataModule(_HubOnlyDataModule):
    """AG News (4 topics; 120,000 / 7,600), from the hub only."""

    name = "ag_news"
    hub_id = "fancyzhx/ag_news"


class YelpPolarityDataModule(_HubOnlyDataModule):
    """Yelp review polarity (560,000 / 38,000), from the hub only."""

    name = "yelp_polarity"
    hub_id = "fancyzhx/yelp_polarity"


class LocalTextDataModule(TextDataModule):
    """Your own labelled text: ``data=local_text data.train=PATH [data.val=PATH] data.test=PATH``.

    Each file is ``label_first`` (``<label> <text>``), ``fasttext`` (``__label__<label> <text>``), or
    ``csv``/``tsv`` with label and text columns; ``format=auto`` detects per file. The label set comes from
    the training file; a validation split is carved from it (seeded) when ``val`` is absent.
    """

    name = "local_text"

    def __init__(
        self,
        train: str | None = None,
        test: str | None = None,
        val: str | None = None,
        format: str = "auto",
        label_column: str | int | None = None,
        text_column: str | int | None = None,
        tokenizer: str = "basic",
        **kw,
    ):
        super().__init__(tokenizer=tokenizer, **kw)
        if not train or not test:
            raise ConfigError("data=local_text needs data.train=PATH and data.test=PATH (data.val=PATH optional)")
        if format not in FORMATS:
            raise choice_error("data.format", format, FORMATS)
        self.paths = {"train": train, "val": val, "test": test}
        self.format = format
        self.label_column = label_column
        self.text_column = text_column

    def load_splits(self):
        out: dict[str, list | None] = {}
        for split, p in self.paths.items():
            if p is None:
                out[split] = None
                continue
            path = Path(p).expanduser()
            out[split] = self._read(path, self.format, label_column=self.label_column, text_column=self.text_column)
        return out
