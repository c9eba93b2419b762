"""Corpora for language modelling: counts against the literature, vocabulary, batchify, TBPTT windows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nnlab.data.corpus import CorpusDataModule, TBPTTWindows, batchify, window_bounds
from nnlab.utils.errors import ConfigError, DataError
from nnlab.vocab import EOS, UNK, Vocab, tokenize_lines

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("DATA_DIR", ROOT.parent / "shared" / "data"))


def _need(folder: str) -> None:
    if not (DATA_DIR / folder).is_dir():
        pytest.skip(f"{DATA_DIR / folder} not present (set DATA_DIR)")


@pytest.mark.parametrize(
    "name, folder, tokens, vocab",
    [
        ("ptb", "ptb", (929_589, 73_760, 82_430), 10_000),
        ("wikitext2", "wikitext-2", (2_088_628, 217_646, 245_569), 33_278),
    ],
)
def test_counts_match_literature(name, folder, tokens, vocab):
    _need(folder)
    dm = CorpusDataModule(name, str(DATA_DIR))
    dm.setup("fit")
    stats = dm.stats()
    assert tuple(stats["tokens"].values()) == tokens
    assert stats["vocab_size"] == vocab
    # Both corpora come with <unk> already applied: no word of val/test is new.
    assert stats["oov"] == {"train": 0, "val": 0, "test": 0}
    assert dm.model_kwargs()["vocab"][:1] == ["the"]


def write_corpus(tmp_path: Path) -> dict[str, str]:
    texts = {
        "train": "the cat sat\nthe dog sat on the mat\n\na cat\n",
        "val": "the bird sat\nthe cat\n",
        "test": "zebra zebra on the mat\n",
    }
    paths = {}
    for split, text in texts.items():
        p = tmp_path / f"{split}.txt"
        p.write_text(text, encoding="utf-8")
        paths[split] = str(p)
    return paths


def test_local_corpus_unknown_words(tmp_path):
    p = write_corpus(tmp_path)
    dm = CorpusDataModule("local_corpus", train=p["train"], val=p["val"], test=p["test"], batch_size=2, bptt=3)
    dm.setup("fit")
    vocab = dm.vocab
    # Frequency order, ties in first-seen order; <unk> is not in train so it comes last.
    assert vocab.itos == [EOS, "the", "cat", "sat", "dog", "on", "mat", "a", UNK]
    stats = dm.stats()
    assert stats["tokens"] == {"train": 15, "val": 7, "test": 6}
    assert stats["oov"] == {"train": 0, "val": 1, "test": 2}
    test_words = vocab.decode(dm.corpus.streams["test"])
    assert test_words == [UNK, UNK, "on", "the", "mat", EOS]


def test_local_corpus_needs_paths_and_files(tmp_path):
    with pytest.raises(ConfigError, match="data.val=PATH"):
        CorpusDataModule("local_corpus", train="x").setup()
    p = write_corpus(tmp_path)
    with pytest.raises(DataError, match="is not a file"):
        CorpusDataModule("local_corpus", train=p["train"], val=str(tmp_path / "nope"), test=p["test"]).setup()


def test_non_utf8_file_is_one_line(tmp_path):
    p = write_corpus(tmp_path)
    Path(p["val"]).write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as e:
        CorpusDataModule("local_corpus", train=p["train"], val=p["val"], test=p["test"]).setup()
    assert "\n" not in str(e.value)


def test_missing_dataset_fails_fast_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dm = CorpusDataModule("ptb", str(tmp_path))
    with pytest.raises(DataError) as e:
        dm.prepare_data()
    msg = str(e.value)
    assert "\n" not in msg and "ptb.train.txt" in msg and "DATA_DIR" in msg


def test_unknown_corpus_name():
    with pytest.raises(ConfigError, match="local_corpus"):
        CorpusDataModule("imdb")


def test_vocab_cut_maps_rare_words_to_unk():
    lines = list(tokenize_lines(["a a a b b c", "a b d"]))
    vocab = Vocab.build_stream(lines, min_freq=2)
    assert vocab.itos == ["a", "b", EOS, UNK]
    ids, oov = vocab.encode_with_oov(["a", "c", "d", "zz"])
    assert ids == [0, 3, 3, 3] and oov == 3
    assert len(Vocab.build_stream(lines, max_size=3)) == 3


def test_batchify_columns_are_contiguous_chunks():
    stream = torch.arange(23)
    data = batchify(stream, 4)
    assert data.shape == (5, 4)
    for j in range(4):
        assert data[:, j].tolist() == list(range(5 * j, 5 * j + 5))
    with pytest.raises(DataError, match="too short"):
        batchify(torch.arange(5), 4)


@pytest.mark.parametrize("variable", [False, True])
def test_windows_shift_by_one_and_tile_the_stream(variable):
    data = batchify(torch.arange(4 * 101), 4)  # (101, 4)
    ds = TBPTTWindows(data, bptt=10, variable=variable, seed=3)
    covered = []
    for x, y in ds:
        assert x.shape == y.shape and x.size(1) == 4
        assert torch.equal(y[:-1], x[1:])  # targets are the inputs shifted by one step
        assert torch.equal(y - x, torch.ones_like(x))  # on arange, the next token of each column
        covered.append(x[:, 0])
    # Windows are consecutive: together they read column 0 in order, every position once.
    assert torch.cat(covered).tolist() == list(range(100))


def test_variable_windows_are_reproducible_and_vary_between_epochs():
    g = torch.Generator().manual_seed(0)
    lengths = [n for _, n in window_bounds(100_000, 70, variable=True, generator=g)]
    assert min(lengths) >= 5 and 60 < sum(lengths) / len(lengths) < 72
    data = batchify(torch.arange(2 * 2000), 2)
    a, b = TBPTTWindows(data, 35, True, seed=1), TBPTTWindows(data, 35, True, seed=1)
    first = [x.size(0) for x, _ in a]
    assert first == [x.size(0) for x, _ in b]  # same seed, same windows
    a.set_epoch(1)
    second = [x.size(0) for x, _ in a]
    assert first != second  # next epoch, new windows
    a.set_epoch(0)
    assert first == [x.size(0) for x, _ in a]  # an epoch's windows depend on (seed, epoch) only: resumable
    with pytest.raises(TypeError):  # no guessed length: a loader reads to the end of the stream
        len(a)


def test_loaders_keep_stream_order(tmp_path):
    p = write_corpus(tmp_path)
    dm = CorpusDataModule("local_corpus", train=p["train"], val=p["val"], test=p["test"], batch_size=2, bptt=2)
    dm.setup("fit")
    xs = [x for x, _ in dm.train_dataloader()]
    stream = dm.corpus.streams["train"]
    col0 = torch.cat([x[:, 0] for x in xs])
    assert torch.equal(col0, stream[: col0.numel()])
    assert torch.equal(torch.cat([x[:, 1] for x in xs]), stream[7 : 7 + col0.numel()])
