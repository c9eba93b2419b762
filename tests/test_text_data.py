"""Text data: benchmark split sizes, every local_text format, encodings, malformed lines, vocabulary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nnlab.data import LocalTextDataModule, MRDataModule, SST2DataModule, SST5DataModule
from nnlab.data.loader import BucketBatchSampler
from nnlab.data.readers import detect_format, read_examples, read_lines
from nnlab.data.sst_trees import parse_sst_tree
from nnlab.utils.errors import ConfigError, DataError
from nnlab.vocab import Vocab, pad_batch, tokenize

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DATA_DIR", REPO.parent / "shared" / "data"))
if not (SHARED / "sst").is_dir():
    SHARED = Path("/work/shared/data")
needs_shared = pytest.mark.skipif(not (SHARED / "sst").is_dir(), reason="shared benchmark data not present")


# ---------------------------------------------------------------------------------- real benchmarks


@needs_shared
@pytest.mark.parametrize(
    ("cls", "sizes", "classes"),
    [(SST2DataModule, (6920, 872, 1821), 2), (SST5DataModule, (8544, 1101, 2210), 5)],
)
def test_sst_split_sizes(cls, sizes, classes):
    dm = cls(data_dir=str(SHARED), phrases=False)
    dm.setup("fit")
    assert tuple(dm.split_sizes()[s] for s in ("train", "val", "test")) == sizes
    kw = dm.model_kwargs()
    assert kw["num_classes"] == classes == len(kw["class_names"])
    assert kw["pad_index"] == 0 and kw["vocab"]["tokens"][:2] == ["<pad>", "<unk>"]
    assert all(r.skipped == 0 for r in dm.reports)


@needs_shared
@pytest.mark.parametrize(
    ("cls", "sizes"), [(SST2DataModule, (77_195, 872, 1821)), (SST5DataModule, (156_817, 1101, 2210))]
)
def test_sst_default_trains_on_the_phrases_of_stanfords_trees(cls, sizes):
    """The shared trees' 156,817 distinct lower-cased phrases (sst/README.md); SST-2 keeps the non-neutral ones."""
    dm = cls(data_dir=str(SHARED))
    dm.setup("fit")
    assert dm.data_info()["protocol"] == "phrases (sst/trees/train.txt)"
    assert tuple(dm.split_sizes()[s] for s in ("train", "val", "test")) == sizes
    assert all(r.skipped == 0 for r in dm.reports)


@needs_shared
def test_mr_is_latin1_and_ten_folds_partition_it():
    lines = read_lines(SHARED / "mr" / "rt-polarity.pos")
    assert len(lines) == 5331  # str.splitlines would give 5,344 (0x85 -> U+0085 NEL)
    folds = []
    for fold in (0, 9):
        dm = MRDataModule(data_dir=str(SHARED), fold=fold)
        dm.setup("fit")
        n = dm.split_sizes()
        assert n["train"] + n["val"] + n["test"] == 10662
        assert n["test"] in (1066, 1067)
        assert dm.reports[0].encoding in ("cp1252", "latin-1")
        folds.append({t for _, t in dm.raw["test"]})
        train = {t for _, t in dm.raw["train"]} | {t for _, t in dm.raw["val"]}
        assert not folds[-1] & train
    assert not folds[0] & folds[1]  # different folds are disjoint: the permutation does not depend on `seed`
    again = MRDataModule(data_dir=str(SHARED), fold=9, seed=123)
    again.setup("fit")
    assert {t for _, t in again.raw["test"]} == folds[1]


def test_missing_dataset_fails_fast_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        SST2DataModule(data_dir=str(tmp_path)).setup("fit")
    msg = str(e.value)
    assert "\n" not in msg and "sst2" in msg and str(tmp_path) in msg and "SetFit/sst2" in msg


# ---------------------------------------------------------------------------------- phrase-level SST

TREE = "(3 (2 It) (4 (2 (2 's) (2 a)) (3 (2 very) (4 good))))"
TREE_NEG = "(1 (2 (2 a) (1 dull)) (2 film))"


def test_parse_sst_tree_gives_every_node_root_first():
    nodes = parse_sst_tree(TREE)
    assert nodes[0] == (3, ["It", "'s", "a", "very", "good"])
    assert sorted((lab, " ".join(w)) for lab, w in nodes) == sorted(
        [(3, "It 's a very good"), (2, "It"), (4, "'s a very good"), (2, "'s a"), (2, "'s"), (2, "a"),
         (3, "very good"), (2, "very"), (4, "good")]
    )  # fmt: skip
    for bad in ("(3 (2 It) (4 good)", "(x (2 It))", "3 (2 It)", "(3 (2 It)) (2 more)"):
        with pytest.raises(ValueError):
            parse_sst_tree(bad)


def _sst_dir(root: Path, prefix: str = "binary") -> Path:
    d = root / "sst"
    d.mkdir(parents=True)
    pos, neg = ("1", "0") if prefix == "binary" else ("4", "1")
    (d / f"stsa.{prefix}.train").write_text(f"{pos} it 's a very good\n{neg} a dull film\n")
    (d / f"stsa.{prefix}.dev").write_text(f"{pos} very good\n{neg} dull\n")
    (d / f"stsa.{prefix}.test").write_text(f"{pos} good film\n{neg} a dull one\n")
    return d


def test_sst2_phrases_from_trees_binary_labels_sentences_for_val_and_test(tmp_path):
    d = _sst_dir(tmp_path)
    (d / "trees").mkdir()
    (d / "trees" / "train.txt").write_text(f"{TREE}\n\n{TREE_NEG}\n(3 (2 broken\n")
    dm = SST2DataModule(data_dir=str(tmp_path), phrases=True, max_bad_fraction=0.5)
    dm.setup("fit")
    # neutral (2) phrases are left out, 3/4 -> 1 and 0/1 -> 0, each distinct phrase once (lowercased later)
    assert sorted(dm.raw["train"]) == sorted(
        [("1", "It 's a very good"), ("1", "'s a very good"), ("1", "very good"), ("1", "good"),
         ("0", "a dull film"), ("0", "dull")]
    )  # fmt: skip
    assert dm.raw["val"] == [("1", "very good"), ("0", "dull")]
    assert dm.raw["test"] == [("1", "good film"), ("0", "a dull one")]
    report = next(r for r in dm.reports if r.path.endswith("train.txt"))
    assert (report.examples, report.blank, report.malformed) == (2, 1, 1)
    assert "train.txt:4: not an SST tree" in report.problems[0]
    sentences = SST2DataModule(data_dir=str(tmp_path), phrases=False)
    sentences.setup("fit")
    assert len(sentences.raw["train"]) == 2


def test_sst5_phrases_keep_five_labels_and_flat_phrase_file_comes_first(tmp_path):
    d = _sst_dir(tmp_path, "fine")
    (d / "trees").mkdir()
    (d / "trees" / "train.txt").write_text(f"{TREE}\n{TREE_NEG}\n")
    dm = SST5DataModule(data_dir=str(tmp_path), phrases=True)
    dm.setup("fit")
    assert ("2", "It") in dm.raw["train"] and ("4", "good") in dm.raw["train"] and len(dm.raw["train"]) == 13
    (d / "stsa.fine.phrases.train").write_text("4 good\n1 dull\n2 film\n")
    flat = SST5DataModule(data_dir=str(tmp_path), phrases=True)
    flat.setup("fit")
    assert flat.raw["train"] == [("4", "good"), ("1", "dull"), ("2", "film")]


def test_sst5_phrases_missing_is_one_line(tmp_path):
    _sst_dir(tmp_path, "fine")
    with pytest.raises(DataError) as e:
        SST5DataModule(data_dir=str(tmp_path), phrases=True).setup("fit")
    msg = str(e.value)
    assert "\n" not in msg and "stsa.fine.phrases.train" in msg and "data.phrases=false" in msg


def test_sst2_phrases_fall_back_to_glue_on_the_hub(tmp_path, monkeypatch):
    _sst_dir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        SST2DataModule(data_dir=str(tmp_path), phrases=True).setup("fit")
    msg = str(e.value)
    assert "\n" not in msg and "nyu-mll/glue" in msg and "stsa.binary.phrases.train" in msg


def test_bad_fold_is_a_config_error():
    with pytest.raises(ConfigError, match="data.fold"):
        MRDataModule(fold=10)


# ---------------------------------------------------------------------------------- local_text formats


ROWS = [("pos", "a fine film ."), ("neg", "dull , dull , dull ."), ("pos", "great fun"), ("neg", "a mess")]


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("a.txt", "".join(f"{lab} {t}\n" for lab, t in ROWS), "label_first"),
        ("b.txt", "".join(f"__label__{lab} {t}\n" for lab, t in ROWS), "fasttext"),
        ("c.csv", "label,text\n" + "".join(f'{lab},"{t}"\n' for lab, t in ROWS), "csv"),
        ("d.csv", "sentence,sentiment\n" + "".join(f'"{t}",{lab}\n' for lab, t in ROWS), "csv"),
        ("e.tsv", "".join(f"{lab}\t{t}\n" for lab, t in ROWS), "tsv"),
        ("f.data", "text\tlabel\n" + "".join(f"{t}\t{lab}\n" for lab, t in ROWS), "tsv"),
    ],
)
def test_every_format_is_detected_and_read(tmp_path, name, content, fmt):
    path = _write(tmp_path / name, content)
    examples, report = read_examples(path, "auto")
    assert report.format == fmt
    assert examples == ROWS
    assert report.skipped == 0


def test_headerless_two_column_csv_finds_the_label_column(tmp_path):
    path = _write(tmp_path / "x.csv", "".join(f'"{t}",{lab}\n' for lab, t in ROWS * 3))
    examples, _ = read_examples(path, "csv")
    assert examples == ROWS * 3


def test_csv_quoted_field_with_newline_and_comma(tmp_path):
    path = _write(tmp_path / "q.csv", 'label,text\npos,"one, two\nthree"\nneg,plain\n')
    examples, _ = read_examples(path)
    assert examples == [("pos", "one, two\nthree"), ("neg", "plain")]


def test_latin1_file_is_detected_and_0x85_does_not_split_lines(tmp_path):
    text = "1 caf\xe9 society\x85 a fine film\n0 na\xefve and dull\n"
    path = _write(tmp_path / "l.txt", text, "latin-1")
    examples, report = read_examples(path)
    assert report.encoding in ("cp1252", "latin-1")
    assert len(examples) == 2 and examples[0][1].startswith("café society")
    assert examples[1] == ("0", "naïve and dull")


def test_undecodable_and_malformed_lines_are_reported_with_file_and_line(tmp_path):
    raw = b"1 good film\n\xff\xfe broken bytes\n0\n\n__label__x y\n0 bad film\n"
    path = tmp_path / "bad.txt"
    path.write_bytes(raw)
    examples, report = read_examples(path, "label_first", encoding="utf-8")
    # line 5's label is "__label__x": a label_first file takes it literally; it is not dropped silently
    assert [lab for lab, _ in examples] == ["1", "__label__x", "0"]
    assert report.undecodable == 1 and report.malformed == 1 and report.blank == 1
    assert report.problems[0].startswith(f"{path}:2:") and f"{path}:3:" in report.problems[1]


def test_fasttext_format_rejects_lines_without_exactly_one_label(tmp_path):
    path = _write(tmp_path / "ft.txt", "__label__a x y\nno label here\n__label__a __label__b z\n__label__b w\n")
    examples, report = read_examples(path, "fasttext")
    assert examples == [("a", "x y"), ("b", "w")]
    assert report.malformed == 2 and ":2:" in report.problems[0] and ":3:" in report.problems[1]


def test_too_many_bad_lines_fail_with_one_line(tmp_path):
    train = _write(tmp_path / "tr.txt", "1 ok\n0\n1\n0 fine\n")
    test = _write(tmp_path / "te.txt", "1 ok\n0 fine\n")
    dm = LocalTextDataModule(train=str(train), test=str(test), format="label_first")
    with pytest.raises(DataError) as e:
        dm.setup("fit")
    assert "\n" not in str(e.value) and f"{train}:2" in str(e.value)


def test_local_text_carves_val_takes_labels_from_train_and_is_seeded(tmp_path):
    lines = [f"{'pos' if i % 2 else 'neg'} sentence number {i}" for i in range(100)]
    train = _write(tmp_path / "train.txt", "\n".join(lines) + "\n")
    test = _write(tmp_path / "test.txt", "pos a b\nneg c d\n")
    dms = [LocalTextDataModule(train=str(train), test=str(test), seed=s, val_fraction=0.2) for s in (0, 1)]
    for dm in dms:
        dm.setup("fit")
    assert dms[0].split_sizes() == {"train": 80, "val": 20, "test": 2}
    assert dms[0].labels == ["neg", "pos"] and dms[0].model_kwargs()["class_names"] == ["neg", "pos"]
    assert dms[0].raw["val"] == dms[1].raw["val"]  # split_seed, not the training seed, fixes the split
    assert "number" in dms[0].vocab.stoi
    val_only = {t.split()[-1] for _, t in dms[0].raw["val"]}
    assert not val_only & set(dms[0].vocab.itos)  # vocabulary from train only


def test_local_text_unknown_label_in_test_fails(tmp_path):
    train = _write(tmp_path / "train.txt", "a x\nb y\na z\nb w\n" * 5)
    test = _write(tmp_path / "test.txt", "c q\n")
    with pytest.raises(DataError, match="not in the training split"):
        LocalTextDataModule(train=str(train), test=str(test)).setup("fit")


def test_local_text_needs_train_and_test():
    with pytest.raises(ConfigError, match="data.train"):
        LocalTextDataModule(train="x.txt")


def test_detect_format_defaults_to_label_first(tmp_path):
    assert detect_format(tmp_path / "x.txt", [(1, "1 a b c"), (2, "0 d e")]) == "label_first"


# ---------------------------------------------------------------------------------- vocab and batches


def test_vocab_min_freq_max_size_and_round_trip():
    sents = [["a", "b", "a"], ["c", "a", "b"], ["d"]]
    v = Vocab.build(sents, min_freq=2)
    assert v.itos == ["<pad>", "<unk>", "a", "b"]
    assert Vocab.build(sents, max_size=1).itos == ["<pad>", "<unk>", "a"]
    assert v.encode(["a", "zzz"]) == [2, 1]
    w = Vocab.from_dict(v.to_dict())
    assert w.itos == v.itos and w.lowercase == v.lowercase and w.tokenizer == v.tokenizer
    with pytest.raises(DataError):
        Vocab.from_dict({"tokens": ["<pad>", "<unk>"]})


def test_tokenizers():
    assert tokenize("It's GREAT, isn't it?", tokenizer="basic") == [
        "it",
        "'s",
        "great",
        ",",
        "is",
        "n't",
        "it",
        "?",
    ]
    assert tokenize("Wo n't GO", lowercase=False) == ["Wo", "n't", "GO"]


def test_pad_batch_and_bucketing():
    seqs = [torch.tensor([5, 6, 7]), torch.tensor([8])]
    tokens, lengths, labels = pad_batch([(seqs[0], 1), (seqs[1], 0)])
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1] and labels.tolist() == [1, 0]
    lengths = [(i * 7) % 23 + 1 for i in range(200)]
    s = BucketBatchSampler(lengths, 16, seed=0)
    batches = list(s)
    assert len(batches) == len(s)
    assert sorted(i for b in batches for i in b) == list(range(200))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5  # similar lengths together (random batches would spread ~20)
    s.set_epoch(1)
    assert list(s) != batches


def test_phrases_are_the_default_when_the_trees_are_here_and_say_so(tmp_path, caplog):
    import logging

    d = _sst_dir(tmp_path)
    auto = SST2DataModule(data_dir=str(tmp_path))  # no trees: sentences, and the log says why
    with caplog.at_level(logging.INFO, logger="nnlab.data"):
        auto.setup("fit")
    assert auto.data_info() == {
        "protocol": "sentences", "train_examples": 2, "val_examples": 2, "test_examples": 2, "batch_size": 50
    }  # fmt: skip
    assert "no phrase file or trees" in caplog.text
    (d / "trees").mkdir()
    (d / "trees" / "train.txt").write_text(f"{TREE}\n{TREE_NEG}\n")
    dm = SST2DataModule(data_dir=str(tmp_path))
    with caplog.at_level(logging.INFO, logger="nnlab.data"):
        dm.setup("fit")
    info = dm.data_info()
    assert info["protocol"] == "phrases (sst/trees/train.txt)" and info["train_examples"] == 6
    assert info["val_examples"] == 2 and info["test_examples"] == 2  # validation and test stay sentences
    assert "training on phrases (sst/trees/train.txt); 6 train, 2 val, 2 test examples" in caplog.text


def test_phrase_batch_size_applies_to_the_phrases_only(tmp_path):
    d = _sst_dir(tmp_path)
    sentences = SST2DataModule(data_dir=str(tmp_path), batch_size=1, phrase_batch_size=4, bucket=False)
    sentences.setup("fit")  # no trees: the sentences keep data.batch_size
    assert sentences.batch_size == 1 and [len(b[2]) for b in sentences.train_dataloader()] == [1, 1]
    (d / "trees").mkdir()
    (d / "trees" / "train.txt").write_text(f"{TREE}\n{TREE_NEG}\n")
    dm = SST2DataModule(data_dir=str(tmp_path), batch_size=1, phrase_batch_size=4, bucket=False)
    dm.setup("fit")
    assert sorted(len(b[2]) for b in dm.train_dataloader()) == [2, 4]  # 6 phrases in batches of 4
    assert [len(b[2]) for b in dm.val_dataloader()] == [2]  # evaluation batches are data.eval_batch_size
    assert dm.data_info()["batch_size"] == 4
    off = SST2DataModule(data_dir=str(tmp_path), batch_size=1, phrase_batch_size=4, phrases=False)
    off.setup("fit")
    assert off.batch_size == 1 and off.data_info()["protocol"] == "sentences"
    for bad in (0, True):
        with pytest.raises(ConfigError, match="data.phrase_batch_size=.* must be >= 1"):
            SST2DataModule(data_dir=str(tmp_path), phrase_batch_size=bad)


def test_dev_and_test_trees_never_reach_training(tmp_path):
    d = _sst_dir(tmp_path, "fine")
    (d / "trees").mkdir()
    (d / "trees" / "train.txt").write_text(f"{TREE}\n{TREE_NEG}\n")
    (d / "trees" / "dev.txt").write_text("(4 (3 devword) (4 (4 wonderful) (2 devonly)))\n")
    (d / "trees" / "test.txt").write_text("(0 (1 testword) (0 (0 awful) (2 testonly)))\n")
    dm = SST5DataModule(data_dir=str(tmp_path))
    dm.setup("fit")
    train_words = {w for _, t in dm.raw["train"] for w in t.lower().split()}
    assert not train_words & {"devword", "devonly", "testword", "testonly", "wonderful", "awful"}
    assert not {"devword", "testword", "wonderful", "awful"} & set(dm.vocab.itos)  # vocabulary from train only


def test_metrics_json_says_which_protocol_ran(tmp_path):
    import json

    from conftest import FAST, compose_cfg
    from nnlab.train import run

    d = _sst_dir(tmp_path / "data")
    (d / "trees").mkdir()
    (d / "trees" / "train.txt").write_text(f"{TREE}\n{TREE_NEG}\n" * 3)
    cfg = compose_cfg(
        overrides=[*FAST, "model=fasttext", "data=sst2", f"paths.data_dir={tmp_path / 'data'}", "test=false"],
        output_dir=tmp_path / "run",
    )
    run(cfg)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["data"] == {"protocol": "phrases (sst/trees/train.txt)", "train_examples": 6, "val_examples": 2,
                              "test_examples": 2, "batch_size": 16}  # fmt: skip
    # fastText's per-example update ran through its C kernel, or the same update in torch: the record says which
    from nnlab.models.fasttext_sgd import fasttext_kernel

    assert record["kernels"]["_fasttext"] == ("native" if fasttext_kernel() is not None else "torch")


def test_sst2_fine_phrase_labels_keep_the_grades_and_score_binary(tmp_path):
    d = _sst_dir(tmp_path)
    (d / "trees").mkdir()
    (d / "trees" / "train.txt").write_text(f"{TREE}\n{TREE_NEG}\n")
    binary = SST2DataModule(data_dir=str(tmp_path), phrases=True)
    binary.setup("fit")
    dm = SST2DataModule(data_dir=str(tmp_path), phrases=True, phrase_labels="fine")
    dm.setup("fit")
    # the same phrases as the binary protocol (neutral ones left out), each keeping its grade
    assert [t for _, t in dm.raw["train"]] == [t for _, t in binary.raw["train"]]
    assert sorted(dm.raw["train"]) == sorted(
        [("3", "It 's a very good"), ("4", "'s a very good"), ("3", "very good"), ("4", "good"),
         ("1", "a dull film"), ("1", "dull")]
    )  # fmt: skip
    assert dm.train_labels == ["1", "3", "4"] and dm.labels == ["0", "1"]
    # training targets are grade ids; validation and test stay negative (0) / positive (1)
    assert dm.datasets["train"].labels.tolist() == [dm.train_labels.index(lab) for lab, _ in dm.raw["train"]]
    assert dm.datasets["val"].labels.tolist() == [1, 0] and dm.datasets["test"].labels.tolist() == [1, 0]
    kw = dm.model_kwargs()
    assert kw["num_classes"] == 2 and kw["class_names"] == ["negative", "positive"]
    assert kw["label_groups"] == [[0], [1, 2]]  # grade 1 -> negative; 3, 4 -> positive (no grade 0 here)
    assert dm.data_info()["protocol"] == "phrases (sst/trees/train.txt, four grades)"
    assert "label_groups" not in binary.model_kwargs()
    # fine_neutral: every phrase, the neutral ones a fifth training class in no scored group
    five = SST2DataModule(data_dir=str(tmp_path), phrases=True, phrase_labels="fine_neutral")
    five.setup("fit")
    assert len(five.raw["train"]) == 13 and ("2", "It") in five.raw["train"]
    assert five.train_labels == ["1", "2", "3", "4"] and five.labels == ["0", "1"]
    kw = five.model_kwargs()
    assert kw["label_groups"] == [[0], [2, 3]] and kw["train_classes"] == 4 and kw["num_classes"] == 2
    assert five.datasets["val"].labels.tolist() == [1, 0]
    assert five.data_info()["protocol"] == "phrases (sst/trees/train.txt, five grades, neutral never scored)"
    # Harvard NLP's fine phrase file when there are no trees: its neutral phrases are left out (fine)
    (d / "trees" / "train.txt").unlink()
    (d / "stsa.fine.phrases.train").write_text("4 good\n2 film\n0 awful\n")
    flat = SST2DataModule(data_dir=str(tmp_path), phrases=True, phrase_labels="fine")
    flat.setup("fit")
    assert flat.raw["train"] == [("4", "good"), ("0", "awful")]
    assert flat.model_kwargs()["label_groups"] == [[0], [1]]
    flat5 = SST2DataModule(data_dir=str(tmp_path), phrases=True, phrase_labels="fine_neutral")
    flat5.setup("fit")
    assert flat5.raw["train"] == [("4", "good"), ("2", "film"), ("0", "awful")]
    assert flat5.model_kwargs()["label_groups"] == [[0], [2]]
    # sentence-level training has no grades to keep: it trains on the binary sentences
    sentences = SST2DataModule(data_dir=str(tmp_path), phrases=False, phrase_labels="fine")
    sentences.setup("fit")
    assert sentences.labels == ["0", "1"] and "label_groups" not in sentences.model_kwargs()


def test_fine_phrase_labels_refused_where_they_mean_nothing(tmp_path):
    with pytest.raises(ConfigError, match="data.phrase_labels"):
        SST2DataModule(data_dir=str(tmp_path), phrase_labels="grades")
    with pytest.raises(ConfigError, match="data.phrase_labels=fine is SST-2's"):
        SST5DataModule(data_dir=str(tmp_path), phrase_labels="fine")
    _sst_dir(tmp_path)  # sentences, no trees, no fine phrase file
    with pytest.raises(DataError) as e:
        SST2DataModule(data_dir=str(tmp_path), phrases=True, phrase_labels="fine").setup("fit")
    msg = str(e.value)
    assert "\n" not in msg and "trees/train.txt" in msg and "data.phrase_labels=binary" in msg
