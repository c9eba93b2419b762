"""The one Vocab, two index orders: which index every word gets, pinned for the sentence and the stream layout.

A word's index decides which embedding row it gets, so a changed order changes every result for a seed. The
small corpora below are built so that the two rules disagree (ties, specials, what max_size counts); the
shared-data tests pin the exact assignments the lab's runs have used (sha256 of the index order, computed with
the code before the two vocabularies became one class).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from nnlab.utils.errors import DataError
from nnlab.vocab import EOS, PAD, UNK, Vocab, tokenize_lines

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("DATA_DIR", ROOT.parent / "shared" / "data"))

# every word twice: only the tie rules order them
TIED = ["b a c", "c b a"]


def _sha(itos: list[str]) -> str:
    return hashlib.sha256("\n".join(itos).encode()).hexdigest()


def test_sentence_layout_specials_first_ties_alphabetical():
    sents = [line.split() for line in TIED]
    v = Vocab.build(sents)
    assert v.itos == [PAD, UNK, "a", "b", "c"]
    assert (v.pad_index, v.unk_index, v.eos_index) == (0, 1, None)
    # max_size counts the words besides <pad> and <unk>
    assert Vocab.build(sents, max_size=1).itos == [PAD, UNK, "a"]
    assert Vocab.build([["z", "y", "y", UNK, UNK, UNK]]).itos == [PAD, UNK, "y", "z"]


def test_stream_layout_ties_first_seen_specials_ranked_or_last():
    lines = list(tokenize_lines(TIED))
    assert lines[0] == ["b", "a", "c", EOS]
    v = Vocab.build_stream(lines)
    assert v.itos == ["b", "a", "c", EOS, UNK]  # <unk> is not in the corpus: last
    assert (v.pad_index, v.unk_index, v.eos_index) == (None, 4, 3)
    # max_size counts <eos> and <unk>
    assert Vocab.build_stream(lines, max_size=3).itos == ["b", EOS, UNK]
    # a corpus that has <unk> (PTB does) keeps it at its frequency rank
    assert Vocab.build_stream(list(tokenize_lines(["z <unk> <unk> y y y"]))).itos == ["y", UNK, "z", EOS]
    ids, oov = v.encode_with_oov(["c", "zz", UNK])
    assert ids == [2, 4, 4] and oov == 1
    assert v.decode(ids) == ["c", UNK, UNK]


def test_each_layout_checks_its_specials():
    with pytest.raises(DataError, match="must start with"):
        Vocab(["a", PAD, UNK])
    with pytest.raises(DataError, match="lacks '<eos>'"):
        Vocab(["a", UNK], stream=True)
    assert Vocab(["a", UNK, EOS], stream=True).unk_index == 1


@pytest.mark.parametrize(
    "name, sha, size, head",
    [
        ("ptb", "5398e3c52166790aae82ce03ceccccb6097d99ea25eea6045ff857418faad3ac", 10000, ["the", UNK, EOS, "N"]),
        ("wikitext2", "a504545a2448f4a1ef4b3d6b0c9bc85c16d68ee0722ce27149335aff2e2595d7", 33278, ["the", ",", "."]),
    ],
)
def test_the_language_models_word_indices_stay_as_trained(name, sha, size, head):
    from nnlab.data.corpus import SOURCES, EncodedCorpus, load_source_lines

    if not (DATA_DIR / SOURCES[name].folder).is_dir():
        pytest.skip(f"{DATA_DIR / SOURCES[name].folder} not present (set DATA_DIR)")
    vocab = EncodedCorpus.from_lines(load_source_lines(SOURCES[name], DATA_DIR)).vocab
    assert len(vocab) == size and vocab.itos[: len(head)] == head
    assert _sha(vocab.itos) == sha


@pytest.mark.parametrize(
    "phrases, sha, size",
    [
        (False, "735ff12278b538586f08c27bce58fef57781b93fb962baa4cf055a5a02a90285", 14830),
        (True, "93c5b436d9822638bd586f45ce8dd29715382b6c96fc95ef2202de13ab4a45ed", 16372),
    ],
)
def test_the_sentence_models_word_indices_stay_as_trained(phrases, sha, size):
    from nnlab.data import SST2DataModule

    need = DATA_DIR / "sst" / ("trees/train.txt" if phrases else "stsa.binary.train")
    if not need.is_file():
        pytest.skip(f"{need} not present (set DATA_DIR)")
    dm = SST2DataModule(data_dir=str(DATA_DIR), phrases=phrases)
    dm.setup("fit")
    assert len(dm.vocab) == size and dm.vocab.itos[:4] == [PAD, UNK, *([".", "the"] if not phrases else ["the", ","])]
    assert _sha(dm.vocab.itos) == sha
