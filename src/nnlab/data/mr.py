"""MR, the movie-review polarity sentences (Pang & Lee 2005), with the 10-fold protocol of Kim (2014).

MR has no standard split: the folds are made here, from ``split_seed`` alone, so that every run of one
fold, whatever its training seed, and the ten runs of ``experiment=mr_10fold`` partition the same data.
"""

from __future__ import annotations

import logging

import numpy as np

from nnlab.data.readers import ReadReport, read_lines
from nnlab.data.text import TextDataModule
from nnlab.utils.errors import ConfigError

log = logging.getLogger(__name__)


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
