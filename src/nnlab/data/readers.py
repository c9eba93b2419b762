"""Labelled text files as ``(label, text)`` pairs, with a report of every line that could not be used.

Kept apart from the DataModules because reading is where user files go wrong (a Latin-1 export, a UTF-16 file
from Excel, a zip instead of its text, a CSV whose header names no column), and every such case gets one line
here saying ``file:line`` and what to do, whichever dataset reads the file. Files are split on ``\\n`` only
and decoded line by line, so that a Latin-1 byte such as 0x85 (U+0085, which ``str.splitlines`` treats as a
line break) cannot cut a sentence in two, and an undecodable or malformed line is counted (``ReadReport``)
instead of being silently mislabeled.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnlab.utils.errors import ConfigError, DataError, choice_error

log = logging.getLogger(__name__)

ENCODINGS_AUTO = ("utf-8", "cp1252", "latin-1")
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
