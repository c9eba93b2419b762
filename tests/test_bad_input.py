"""Bad input is refused before any work, in one line, and nothing is lost.

A table of config values, script arguments and run-dir collisions. In-process cases check the validation pass
itself (composition + schema, no data read, no model built); subprocess cases check what a user sees: exit code
2, one ``error:`` line, no traceback, and a neighbouring finished run dir byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from nnlab.cli import main as nnlab_main
from nnlab.cli.schema import precheck
from nnlab.utils.errors import ConfigError

# (overrides, what the one line must say): the typed schema of train.py / nnlab train
TRAIN_CASES = [
    (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' must be an integer"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 must be >= 1 (or -1: no limit)"),
    (["trainer.max_epochs=2.5"], "trainer.max_epochs=2.5 must be an integer"),
    (["+trainer.max_steps=-5"], "trainer.max_steps=-5 must be >= -1"),
    (["+trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches=0 must be >= 1"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1 must be >= 0"),
    (["trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch=0 must be >= 1"),
    (["trainer.deterministic=maybe"], "trainer.deterministic='maybe' must be true or false"),
    (["model.optimizer.lr=-1"], "model.optimizer.lr=-1 must be > 0"),
    (["model.optimizer.lr=0"], "model.optimizer.lr=0 must be > 0"),
    (["model.optimizer.lr=abc"], "model.optimizer.lr='abc' must be a number"),
    (["model.optimizer.weight_decay=-0.1"], "model.optimizer.weight_decay=-0.1 must be >= 0"),
    (["model.net.dropout=1.0"], "model.net.dropout=1.0 must be in [0, 1)"),
    (["model.net.dropout=-0.2"], "model.net.dropout=-0.2 must be in [0, 1)"),
    (["model=mlp", "model.net.dropout=abc"], "model.net.dropout='abc' must be a number"),
    (["model=cnn", "model.dropout=1.5"], "model.dropout=1.5 must be in [0, 1)"),
    (["model=cnn", "model.embed_dropout=2"], "model.embed_dropout=2 must be in [0, 1)"),
    (["model=rnn", "model.word_dropout=-0.1"], "model.word_dropout=-0.1 must be in [0, 1)"),
    (["model=rnn", "model.rnn_dropout=1"], "model.rnn_dropout=1 must be in [0, 1)"),
    (["model=rnn", "model.ema=1.0"], "model.ema=1.0 must be in (0, 1)"),
    (["model=fasttext", "model.optimizer.lr=-0.25"], "model.optimizer.lr=-0.25 must be > 0"),
    (["model=lm", "model.dropoute=1.2"], "model.dropoute=1.2 must be in [0, 1)"),
    (["model=lm", "data.bptt=0"], "data.bptt=0 must be >= 1"),
    (["model=lm", "model.optimizer.lr=x"], "model.optimizer.lr='x' must be a number"),
    (["seed=x"], "seed='x' must be an integer"),
    (["seed=-1"], "seed=-1 must be in [0, 2**32)"),
    (["seed=4294967296"], "seed=4294967296 must be in [0, 2**32)"),
    (["threads=0"], "threads=0 must be >= 1"),
    (["resume=yes"], "resume='yes' is not a valid choice; choose one of: auto"),
    (["train=maybe"], "train='maybe' must be true or false"),
    (["test=2"], "test=2 must be true or false"),
    (["ckpt_path=/nonexistent/best.ckpt"], "ckpt_path=/nonexistent/best.ckpt does not exist"),
    (["ckpt_path=/"], "ckpt_path=/ is a directory, not a file"),
    (["data.batch_size=abc"], "data.batch_size='abc' must be an integer"),
    (["data.batch_size=0"], "data.batch_size=0 must be >= 1"),
    (["data.batch_size=-3"], "data.batch_size=-3 must be >= 1"),
    (["data.val_fraction=1.5"], "data.val_fraction=1.5 must be in (0, 1)"),
    (["data.val_fraction=0"], "data.val_fraction=0 must be in (0, 1)"),
    (["data.train_subset=0"], "data.train_subset=0 must be >= 1"),
    (["data=sst2", "data.max_length=0"], "data.max_length=0 must be >= 1"),
    (["data=sst2", "data.min_freq=0"], "data.min_freq=0 must be >= 1"),
    (["data=sst2", "data.phrases=sometimes"], "data.phrases=sometimes must be true, false or auto"),
    (["data=sst2", "model=cnn", "data.phrase_batch_size=0"], "data.phrase_batch_size=0 must be >= 1"),
    (["data=sst2", "model=cnn", "data.phrase_batch_size=abc"], "data.phrase_batch_size='abc' must be an integer"),
    (["data=mr", "model=cnn", "data.fold=10"], "data.fold=10 must be in 0..9 (MR's ten folds)"),
    (["data=local_text", "model=cnn", "data.max_bad_fraction=2"], "data.max_bad_fraction=2 must be in [0, 1]"),
    (["callbacks.early_stopping.patience=-1"], "callbacks.early_stopping.patience=-1 must be >= 0"),
    (["hydra.run.dir=/etc/hostname"], "hydra.run.dir=/etc/hostname is a file; give a directory"),
]


@pytest.mark.parametrize("overrides,expected", TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES])
def test_train_config_is_refused_before_any_work(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        precheck("train", overrides, multirun=False)
    assert expected in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_bad_value_anywhere_in_a_sweep_is_refused_before_the_first_job() -> None:
    with pytest.raises(ConfigError, match="seed='x' must be an integer"):
        precheck("train", ["seed=1,2,x", "model.pool=max,lp"], multirun=True)
    with pytest.raises(ConfigError, match="model.optimizer.lr=-1 must be > 0"):
        precheck("train", ["model.optimizer.lr=1e-3,-1"], multirun=True)
    precheck("train", ["seed=1,2", "model.pool=max,lp"], multirun=True)  # a good sweep passes


def test_good_configs_pass() -> None:
    for overrides in ([], ["model=rnn"], ["model=lm"], ["model=fasttext", "data=mr"], ["trainer.max_epochs=-1"]):
        precheck("train", overrides, multirun=False)


def test_eval_needs_an_existing_checkpoint(tmp_path) -> None:
    with pytest.raises(ConfigError, match="ckpt_path is required"):
        precheck("eval", [], multirun=False)
    with pytest.raises(ConfigError, match="does not exist"):
        precheck("eval", [f"ckpt_path={tmp_path / 'no.ckpt'}"], multirun=False)


# ----------------------------------------------------------------------------- script arguments
SCRIPT_CASES = [
    (["generate", "ckpt_path=/no.ckpt", "words=-5"], "words=-5 must be >= 1"),
    (["generate", "ckpt_path=/no.ckpt", "words=abc"], "words='abc' must be an integer"),
    (["generate", "ckpt_path=/no.ckpt", "temperature=-1"], "temperature=-1 must be >= 0"),
    (["generate", "ckpt_path=/no.ckpt", "top_k=-2"], "top_k=-2 must be >= 0"),
    (["generate", "ckpt_path=/no.ckpt"], "ckpt_path=/no.ckpt does not exist"),
    (["generate", "ckpt_path=/"], "ckpt_path=/ is a directory, not a file"),
    (["generate"], "needs ckpt_path=..."),
    (["predict", "ckpt_path=/no.ckpt", "batch_size=0", "x"], "batch_size=0 must be >= 1"),
    (["predict", "ckpt_path=/no.ckpt", "batch_size=abc"], "batch_size='abc' must be an integer"),
    (["predict", "ckpt_pth=/no.ckpt"], "did you mean ckpt_path?"),
    (["embeddings", "ckpt_path=/no.ckpt", "top=0"], "top=0 must be >= 1"),
    (["embeddings", "ckpt_path=/no.ckpt", "tsv=perhaps"], "tsv='perhaps' must be true or false"),
    (["tsne", "data=svhn"], "data='svhn' is not a valid choice; choose one of: digits"),
    (["tsne", "data=digits", "n=1"], "n=1 must be >= 2"),
    (["tsne", "data=digits", "perplexity=0"], "perplexity=0 must be > 0"),
    (["tsne", "data=digits", "max_iter=10"], "max_iter=10 must be >= 250"),
    (["tsne", "data=digits", "ckpt_path=/no.ckpt"], "ckpt_path=/no.ckpt does not exist"),
    (["tsne"], "give exactly one of data=<image dataset> or ckpt_path=<checkpoint>"),
    (["tsne", "--ckpt", "x.ckpt"], "takes key=value arguments, not '--ckpt'"),
    (["report"], "needs sweep_dir=..."),
    (["report", "sweep_dir=/nonexistent"], "sweep_dir=/nonexistent does not exist"),
    (["report", "sweep_dir=/etc/hostname"], "sweep_dir=/etc/hostname is a file, not a directory"),
    (["report", "sweep_dir=/tmp", "wandb=sure"], "wandb='sure' must be true or false"),
    (["nope"], "'nope' is not an nnlab command"),
]


@pytest.mark.parametrize("argv,expected", SCRIPT_CASES, ids=[" ".join(c[0]) for c in SCRIPT_CASES])
def test_script_arguments_are_refused_in_one_line(argv: list[str], expected: str, capsys) -> None:
    assert nnlab_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err


# ----------------------------------------------------------------------------- what a user sees; nothing lost
def _snapshot(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()
    }


@pytest.fixture
def finished(tmp_path) -> Path:
    """A finished run dir (the files a run leaves) and its snapshot."""
    d = tmp_path / "finished"
    (d / ".hydra").mkdir(parents=True)
    (d / "checkpoints").mkdir()
    (d / "csv").mkdir()
    (d / "metrics.json").write_text(json.dumps({"status": "ok", "test/acc": 0.97, "history": [{"epoch": 0}]}))
    (d / ".hydra" / "config.yaml").write_text("seed: 42\n")
    (d / "checkpoints" / "last.ckpt").write_bytes(b"not read by a refused run")
    (d / "csv" / "metrics.csv").write_text("epoch,val/acc\n0,0.97\n")
    (d / "train.log").write_text("done\n")
    return d


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=180)  # fmt: skip


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' must be an integer"),
        (["model.optimizer.lr=-1"], "model.optimizer.lr=-1 must be > 0"),
        (["resume=yes"], "resume='yes' is not a valid choice"),
        (["model.lr=0.1"], "did you mean model.optimizer.lr?"),
        (["model=transfomer"], "model=transfomer is not an option of model"),
    ],
)
def test_refused_run_prints_one_line_and_leaves_a_neighbour_untouched(finished, tmp_path, args, expected) -> None:
    before = _snapshot(finished)
    line = _one_line(_cli(*args, f"hydra.run.dir={tmp_path / 'new'}"))
    assert expected in line, line
    assert not (tmp_path / "new").exists()  # refused before Hydra made the run dir
    assert _snapshot(finished) == before


def test_a_new_run_into_a_finished_run_dir_is_refused(finished) -> None:
    before = _snapshot(finished)
    line = _one_line(_cli("trainer.max_epochs=1", f"hydra.run.dir={finished}"))
    assert "holds a finished run; choose a new dir, or add resume=auto" in line
    assert _snapshot(finished) == before


def test_a_refused_value_with_resume_into_a_finished_run_dir_keeps_it(finished) -> None:
    before = _snapshot(finished)
    line = _one_line(_cli("trainer.max_epochs=abc", "resume=auto", f"hydra.run.dir={finished}"))
    assert "must be an integer" in line
    assert _snapshot(finished) == before


def test_an_eval_into_a_finished_run_dir_is_refused(finished, tmp_path) -> None:
    before = _snapshot(finished)
    ckpt = finished / "checkpoints" / "last.ckpt"
    r = subprocess.run([sys.executable, str(ROOT / "eval.py"), f"ckpt_path={ckpt}", f"hydra.run.dir={finished}"],
                       capture_output=True, text=True, cwd=ROOT, timeout=180)  # fmt: skip
    assert "an evaluation writes a dir of its own" in _one_line(r)
    assert _snapshot(finished) == before


# ----------------------------------------------------------------------------- data files: say what the file is
LINES = [f"{'pos' if i % 2 else 'neg'} the film was {'good' if i % 2 else 'bad'} w{i % 7}" for i in range(60)]
TEXT = "\n".join(LINES) + "\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe" + TEXT.encode("utf-16-le"),  # UTF-16 with its BOM (what Windows' Notepad writes)
        TEXT.encode("utf-16"),
        TEXT.encode("utf-16-le"),  # no BOM: the NUL pattern of ASCII text
        TEXT.encode("utf-16-be"),
        TEXT.encode("utf-32"),
    ],
    ids=["utf16-bom-le", "utf16", "utf16-le-nobom", "utf16-be-nobom", "utf32"],
)
def test_wide_encodings_are_read_as_what_they_are(tmp_path, raw: bytes) -> None:
    from nnlab.data.readers import read_examples

    path = tmp_path / "train.txt"
    path.write_bytes(raw)
    examples, report = read_examples(path)
    assert examples[:2] == [("neg", "the film was bad w0"), ("pos", "the film was good w1")] and len(examples) == 60
    assert report.encoding.startswith(("utf-16", "utf-32")) and report.skipped == 0


@pytest.mark.parametrize(
    "raw,expected",
    [
        (bytes(range(256)) * 20, "is binary (NUL bytes), not a text file"),
        (b"\x1f\x8b\x08\x00" + bytes(100), "is a gzip file; decompress it (gunzip) first"),
        (b"PK\x03\x04" + bytes(100), "is a zip archive"),
        (b"%PDF-1.4\n" + bytes(50), "is a PDF"),
        (bytes([1, 2, 3, 4, 5, 6, 7, 8]) * 200 + b"\n", "is binary (1600 control bytes"),
        (b"\xff\xfe" + "pos a\n".encode("utf-16-le") + b"\x00\xd8", "looks like UTF-16 but does not decode"),
        (b"rating,comment\n" + b"".join(f"0.{i % 9},a review {i}\n".encode() for i in range(30)), "neither of its 2"),
        (
            b"id,words\n" + b"".join(f"{'pos' if i % 2 else 'neg'},text {i}\n".encode() for i in range(30)),
            "a header (id, words) that names no label or text column; set data.label_column=NAME",
        ),
    ],
    ids=["random-bytes", "gzip", "zip", "pdf", "control-bytes", "bad-utf16", "csv-no-label-column", "csv-header"],
)
def test_files_that_are_not_what_they_should_be_are_named(tmp_path, raw: bytes, expected: str) -> None:
    from nnlab.data.readers import read_examples
    from nnlab.utils.errors import DataError

    path = tmp_path / ("train.csv" if raw.startswith((b"rating", b"id,")) else "train.txt")
    path.write_bytes(raw)
    with pytest.raises(DataError) as e:
        read_examples(path)
    assert expected in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_runaway_line_is_cut_to_the_default_length_and_counted(tmp_path, caplog) -> None:
    from nnlab.data import LocalTextDataModule
    from nnlab.data.text import MAX_LENGTH

    train = tmp_path / "train.txt"
    train.write_text(TEXT + "pos " + " ".join(["word"] * 200_000) + "\n")  # one 1 MB line
    test = tmp_path / "test.txt"
    test.write_text(TEXT)
    dm = LocalTextDataModule(train=str(train), test=str(test))
    dm.setup("fit")
    assert max(len(ids) for ids in dm.datasets["train"].ids) == MAX_LENGTH
    assert dm.text_stats["train"]["truncated"] == 1 and dm.text_stats["test"]["truncated"] == 0
    assert f"truncated 1 of 55 sentences to data.max_length={MAX_LENGTH} tokens" in caplog.text


def test_checkpoint_refusals_are_short_and_name_the_problem(tmp_path) -> None:
    import torch

    from nnlab.utils.checkpoint import load_checkpoint
    from nnlab.utils.errors import CheckpointError

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "nnlab": {"config": object()}}, evil)
    cases = [(evil, "holds pickled Python objects"), (tmp_path, "is a directory; pass a file")]
    for path, expected in cases:
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(path)
        msg = str(e.value)
        assert expected in msg and "\n" not in msg and len(msg) < 300 and "Weights only load failed" not in msg, msg


def test_a_resume_that_fails_after_composition_keeps_the_finished_run(finished) -> None:
    """model.pool=median passes the schema and fails when the model is built: the finished run's metrics.json,
    .hydra/ and logger files come back as they were (train.log gains the attempt's lines: a log only grows)."""
    before = {k: v for k, v in _snapshot(finished).items() if k != "train.log"}
    line = _one_line(_cli("model.pool=median", "resume=auto", "logger=csv", f"hydra.run.dir={finished}"))
    assert "model.pool='median' is not a valid choice" in line
    after = _snapshot(finished)
    assert {k: v for k, v in after.items() if k not in ("train.log", "metrics.failed.json")} == before
    assert json.loads((finished / "metrics.failed.json").read_text())["status"] == "failed"


def test_a_model_without_a_family_file_is_told_where_its_data_comes_from(tmp_path) -> None:
    """A user's new model config (here on Hydra's search path) and no conf/family/<name>.yaml yet."""
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "mynet.yaml").write_text("_target_: nnlab.models.ImageClassifier\n")
    args = ("model=mynet", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"hydra.run.dir={tmp_path / 'run'}")
    line = _one_line(_cli(*args))
    assert "model=mynet has no conf/family/mynet.yaml" in line and "family=image|text|lm" in line
    assert not (tmp_path / "run").exists()
