"""Nothing lost, one clear line: crash and resume, determinism, NaN, bad data, broken or foreign
checkpoints, secrets. Every refusal is one ``error:`` line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import _wandb_records as wandb_records
import numpy as np
import pytest
import torch

from conftest import FAST, ROOT, compose_cfg, make_image_folder, run_cli
from nnlab.data import LocalTextDataModule
from nnlab.report import write_report
from nnlab.train import run
from nnlab.utils.checkpoint import load_checkpoint
from nnlab.utils.errors import CheckpointError, DataError, NnlabError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short digits run shared by the checkpoint tests."""
    out = tmp_path_factory.mktemp("trained")
    record = run(compose_cfg(overrides=[*FAST, "data.train_subset=400"], output_dir=out))
    assert record["status"] == "ok"
    return out


def test_checkpoint_is_plain_data(trained) -> None:
    ckpt = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["nnlab"]["family"] == "ImageClassifier"
    assert ckpt["nnlab"]["model_kwargs"]["class_names"] == [str(i) for i in range(10)]


def test_truncated_checkpoint_is_one_line(trained, tmp_path) -> None:
    data = (trained / "checkpoints" / "best.ckpt").read_bytes()
    broken = tmp_path / "truncated.ckpt"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot be read") as e:
        load_checkpoint(broken)
    assert "\n" not in str(e.value)
    r = run_cli("eval.py", f"ckpt_path={broken}", run_dir=tmp_path / "eval")
    assert r.rc == 2 and r.stderr.count("error: ") == 1 and "Traceback" not in r.stderr, r


def test_tampered_checkpoint_is_refused(trained, tmp_path) -> None:
    ckpt = torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)
    ckpt["state_dict"]["net.head.weight"] = torch.zeros(3, 3)  # shape no longer fits the model
    tampered = tmp_path / "tampered.ckpt"
    torch.save(ckpt, tampered)
    r = run_cli("eval.py", f"ckpt_path={tampered}", run_dir=tmp_path / "eval")
    assert r.rc == 2 and "do not fit model ImageClassifier" in r.stderr and "Traceback" not in r.stderr, r


def test_pickled_object_in_checkpoint_is_refused(tmp_path) -> None:
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "nnlab": {"config": object()}}, evil)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(evil)


def test_checkpoint_of_other_labels_is_refused(trained, tmp_path) -> None:
    pets = make_image_folder(tmp_path / "pets", {"cat": 6, "dog": 6})  # digits' shape, other class names
    r = run_cli(
        "eval.py", f"ckpt_path={trained}/checkpoints/best.ckpt", "data=image_folder", f"data.path={pets}",
        run_dir=tmp_path / "e",
    )  # fmt: skip
    assert r.rc == 2 and "trained with another class_names" in r.stderr and "Traceback" not in r.stderr, r


def test_wandb_key_never_reaches_run_files_or_reports(tmp_path) -> None:
    secret = "0123456789abcdef0123456789abcdef01234567"
    r = run_cli("train.py", *FAST, "data.train_subset=300", "logger=many", "logger.wandb.mode=offline",
                run_dir=tmp_path / "run", env={"WANDB_API_KEY": secret})  # fmt: skip
    assert r.rc == 0, r
    assert secret not in r.stdout + r.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "ok"
    write_report(tmp_path)  # the run dir as a one-job sweep: summary, plots, report.html
    assert (tmp_path / "report.html").is_file()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# ----------------------------------------------------------------------------------------- crash and resume


def _text_files(d: Path) -> list[str]:
    """A small two-class sentence set: each class has its own words among shared filler words."""
    rng = np.random.default_rng(0)
    words = {"pos": ["good", "great", "fine", "fun"], "neg": ["bad", "dull", "poor", "weak"]}
    filler = [f"w{i}" for i in range(40)]
    for split, n in (("train", 400), ("test", 100)):
        lines = []
        for _ in range(n):
            label = str(rng.choice(["pos", "neg"]))
            toks = list(rng.choice(filler, size=int(rng.integers(3, 12)))) + [str(rng.choice(words[label]))]
            rng.shuffle(toks)
            lines.append(f"{label} {' '.join(toks)}")
        (d / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return ["model=cnn", "data=local_text", f"data.train={d}/train.txt", f"data.test={d}/test.txt",
            "data.batch_size=16", "model.embed_dim=32"]  # fmt: skip


def _corpus_files(d: Path) -> list[str]:
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(60)]
    for split, n in (("train", 300), ("valid", 40), ("test", 40)):
        lines = [" ".join(rng.choice(vocab, size=int(rng.integers(4, 15)))) for _ in range(n)]
        (d / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return [
        "model=lm", "data=local_corpus", f"data.train={d}/train.txt", f"data.val={d}/valid.txt",
        f"data.test={d}/test.txt", "data.batch_size=8", "data.bptt=10", "data.variable_bptt=true",
        "model.emsize=16", "model.nhid=16", "model.dropout=0.3",
    ]  # fmt: skip


FAMILIES = {
    "image": lambda d: ["data.train_subset=640", "data.batch_size=16"],
    "text": _text_files,
    "lm": _corpus_files,
}
COMPARED = ("val/loss", "test/loss", "val/acc", "test/acc", "val/ppl", "test/ppl", "global_step", "epoch")


@pytest.fixture(params=sorted(FAMILIES))
def family(request, tmp_path) -> tuple[str, list[str]]:
    return _family(request.param, tmp_path)


# One family killed and resumed in the default suite; all three in the slow suite (each takes ~35 s).
@pytest.fixture(
    params=["image", pytest.param("text", marks=pytest.mark.slow), pytest.param("lm", marks=pytest.mark.slow)]
)
def killed_family(request, tmp_path) -> tuple[str, list[str]]:
    return _family(request.param, tmp_path)


def _family(name: str, tmp_path: Path) -> tuple[str, list[str]]:
    data = tmp_path / "data"
    data.mkdir()
    return name, FAMILIES[name](data)


def test_same_seed_deterministic_gives_identical_metrics_for_each_family(family, tmp_path) -> None:
    name, overrides = family
    overrides = [*FAST, *overrides, "trainer.deterministic=true", "seed=7"]
    a = run(compose_cfg(overrides=overrides, output_dir=tmp_path / "a"))
    b = run(compose_cfg(overrides=overrides, output_dir=tmp_path / "b"))
    assert a["status"] == b["status"] == "ok"
    keys = [k for k in a if k.startswith(("train/", "val/", "test/"))]
    assert len(keys) >= 5, keys
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_sigkill_mid_epoch_then_resume_auto_matches_an_uninterrupted_run(killed_family, tmp_path) -> None:
    """Killed with SIGKILL in epoch 2, resumed with resume=auto: at most ``every_n_train_steps`` steps are
    redone and the run ends with exactly the metrics and weights of a run that was never interrupted."""
    name, data = killed_family
    every = 3
    common = [*FAST, *data, "trainer.max_epochs=2", "trainer.deterministic=true", "seed=3",
              f"callbacks.model_checkpoint.every_n_train_steps={every}"]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT / "tests")}
    whole = run_cli("train.py", *common, run_dir=tmp_path / "whole", env=env)
    assert whole.rc == 0, whole
    steps = whole.metrics["global_step"]
    per_epoch = steps // 2
    kill_at = per_epoch + per_epoch // 2 + 1  # mid epoch 2, not on a checkpoint step
    if kill_at % every == 0:
        kill_at += 1
    killed = run_cli("train.py", *common, "+callbacks.kill._target_=_fault_injection.KillAtStep",
                     f"+callbacks.kill.step={kill_at}", run_dir=tmp_path / "crash", env=env)  # fmt: skip
    assert killed.rc == -signal.SIGKILL, killed
    assert not (tmp_path / "crash" / "metrics.json").exists()
    ckpt = torch.load(tmp_path / "crash" / "checkpoints" / "last.ckpt", weights_only=True)
    assert kill_at - every <= ckpt["global_step"] < kill_at and ckpt["epoch"] == 1, "a mid-epoch checkpoint"

    resumed = run_cli("train.py", *common, "resume=auto", run_dir=tmp_path / "crash", env=env)
    assert resumed.rc == 0, resumed
    assert "resume=auto: continuing from" in (tmp_path / "crash" / "train.log").read_text()
    a, b = whole.metrics, resumed.metrics
    compared = [k for k in COMPARED if k in a]
    assert {k: a[k] for k in compared} == {k: b[k] for k in compared}
    assert [r["epoch"] for r in b["history"]] == [0, 1], "the history before the crash survives"
    # Validation after the last epoch ran on the final weights: equal losses mean equal training.
    val = [[r[k] for k in sorted(r) if k.startswith("val/")] for r in a["history"]]
    assert val == [[r[k] for k in sorted(r) if k.startswith("val/")] for r in b["history"]]


# ----------------------------------------------------------------------------------------- NaN and sweeps

NAN = ["+callbacks.nan._target_=_fault_injection.NaNBatchAtStep", "callbacks.model_checkpoint.every_n_train_steps=5"]
INJECT = {"PYTHONPATH": str(ROOT / "tests")}


def test_nan_loss_stops_at_once_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    run_dir = tmp_path / "run"
    r = run_cli("train.py", *FAST, "trainer.max_epochs=3", "data.train_subset=640", "data.batch_size=16", *NAN,
                "+callbacks.nan.step=47", run_dir=run_dir, env=INJECT)  # fmt: skip
    assert_one_line_error(
        r, "training loss is nan at step 47", f"last good checkpoint: {run_dir}/checkpoints/last.ckpt"
    )
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 45, "the newest checkpoint before the bad step"
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    m = r.metrics
    assert m["status"] == "failed" and "nan at step 47" in m["error"]
    assert "Traceback" in (run_dir / "train.log").read_text(), "the traceback goes to the run's log file"


def test_failing_sweep_job_is_recorded_marked_failed_in_wandb_and_the_rest_finish(tmp_path) -> None:
    r = run_cli("train.py", *FAST, "data.train_subset=320", "data.batch_size=16", "logger=wandb", *NAN,
                "+callbacks.nan.step=5,100000", multirun=True, run_dir=tmp_path, env=INJECT)  # fmt: skip
    assert r.rc == 1 and "multirun: 1 of 2 jobs ok" in r.stderr, r
    jobs = {}
    for path in tmp_path.glob("*/metrics.json"):
        rec = json.loads(path.read_text())
        (run_file,) = path.parent.glob("wandb/offline-run-*/run-*.wandb")
        jobs[rec["status"]] = (rec, wandb_records.exit_code(run_file))
    assert set(jobs) == {"ok", "failed"}
    failed, failed_exit = jobs["failed"]
    assert "nan at step 5" in failed["error"] and failed_exit == 1
    ok, ok_exit = jobs["ok"]
    assert ok["test/acc"] > 0.3 and ok_exit == 0


# ----------------------------------------------------------------------------------------- bad data

GOOD = [
    f"{'pos' if i % 2 else 'neg'} the film was {'good great' if i % 2 else 'bad dull'} w{i % 13}" for i in range(200)
]


def _write(path: Path, lines: list[str] | bytes) -> Path:
    path.write_bytes(lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode())
    return path


def _text_run(tmp_path: Path, train: Path, *extra: str, test: Path | None = None):
    test = test or _write(tmp_path / "test.txt", GOOD[:40])
    return run_cli("train.py", *FAST, "model=cnn", "model.embed_dim=16", "data=local_text",
                   f"data.train={train}", f"data.test={test}", *extra, run_dir=tmp_path / "run")  # fmt: skip


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.rc == 2, result
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result
    for f in fragments:
        assert f in errors[0], result


def _local_text(train: Path, test: Path, **kw) -> LocalTextDataModule:
    dm = LocalTextDataModule(train=str(train), test=str(test), **kw)
    dm.setup("fit")
    return dm


def test_undecodable_lines_are_reported_with_file_and_line_not_misread(tmp_path, caplog) -> None:
    # A UTF-8 file (accents in it) with one corrupt line: that line is skipped and named, the rest is UTF-8.
    raw = ("\n".join(GOOD[:100]) + "\npos naïve café great\n").encode() + b"neg caf\xe9 \xff bad\n"
    train = _write(tmp_path / "train.txt", raw + ("\n".join(GOOD[100:]) + "\n").encode())
    dm = _local_text(train, _write(tmp_path / "test.txt", GOOD[:40]), max_bad_fraction=0.05)
    assert f"{train}:102: not utf-8 (byte 0xe9 at column 8)" in caplog.text and "1 undecodable" in caplog.text
    assert "naïve" in dm.vocab.itos and "cafã©" not in dm.vocab.itos
    # The same file with too many bad lines for data.max_bad_fraction: one line, exit 2.
    r = _text_run(tmp_path, train, "data.max_bad_fraction=0.001")
    assert_one_line_error(r, f"{train}:", "data.max_bad_fraction=0.001")


def test_blank_and_malformed_lines_are_counted_and_reported(tmp_path, caplog) -> None:
    train = _write(tmp_path / "train.txt", [*GOOD[:100], "", "   ", "pos", *GOOD[100:]])
    dm = _local_text(train, _write(tmp_path / "test.txt", GOOD[:40]), split_seed=0)
    assert "skipped 2 blank, 0 undecodable and 1 malformed lines" in caplog.text and f"{train}:103: " in caplog.text
    assert sum(dm.split_sizes()[s] for s in ("train", "val")) == len(GOOD), "nothing else dropped"


def test_empty_training_file_is_one_line_and_the_traceback_goes_to_the_log(tmp_path) -> None:
    train = _write(tmp_path / "train.txt", b"")
    assert_one_line_error(_text_run(tmp_path, train), f"{train}: no examples could be read")
    assert "Traceback" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.parametrize(
    ("train", "test", "fragment"),
    [
        (
            GOOD,
            [*GOOD[:20], "neutral an ok film"],
            "the test split has labels not in the training split: {'neutral': 1}",
        ),
        ([g for g in GOOD if g.startswith("pos")], GOOD[:20], "the training split has 1 label(s)"),
    ],
)
def test_labels_the_model_cannot_learn_are_refused(tmp_path, train, test, fragment) -> None:
    with pytest.raises(DataError, match=re.escape(fragment)) as e:
        _local_text(_write(tmp_path / "train.txt", train), _write(tmp_path / "test.txt", test))
    assert "\n" not in str(e.value)


def test_long_and_empty_sentences_are_truncated_or_kept_with_counts(tmp_path, caplog) -> None:
    long = "pos " + " ".join(["good"] * 5000)
    train = _write(tmp_path / "train.txt", [*GOOD, long, "neg ... !!!", "pos ~~~"])
    test = _write(tmp_path / "test.txt", [*GOOD[:40], "pos ~~~"])
    dm = _local_text(train, test, max_length=50, tokenizer="basic", val=str(test))
    # "..." and "!!!" are tokens of the basic tokenizer; "~~~" is not, so that sentence is empty
    assert dm.text_stats["train"] == {"examples": len(GOOD) + 3, "truncated": 1, "empty": 1}
    assert dm.text_stats["test"] == {"examples": 41, "truncated": 0, "empty": 1}
    assert max(len(x) for x, _ in dm.datasets["train"]) == 50
    assert "train: truncated 1 of 203 sentences to data.max_length=50 tokens" in caplog.text
    assert "test: 1 of 41 sentences are empty after tokenization" in caplog.text


def test_undecodable_corpus_is_one_line(tmp_path) -> None:
    bad = _write(tmp_path / "train.txt", b"the cat \xff sat\n")
    r = run_cli("train.py", *FAST, "model=lm", "data=local_corpus", f"data.train={bad}", f"data.val={bad}",
                f"data.test={bad}", run_dir=tmp_path / "run")  # fmt: skip
    assert_one_line_error(r, str(bad), "not UTF-8")


# ----------------------------------------------------------------------------------------- foreign checkpoints


def test_checkpoint_of_another_family_is_refused_before_training(trained, tmp_path) -> None:
    train = _write(tmp_path / "train.txt", GOOD)
    r = _text_run(tmp_path, train, f"ckpt_path={trained}/checkpoints/best.ckpt")
    assert_one_line_error(r, "holds model ImageClassifier", "builds TextClassifier")


def test_checkpoint_of_another_vocabulary_or_shape_is_refused(tmp_path) -> None:
    train, test = _write(tmp_path / "train.txt", GOOD), _write(tmp_path / "test.txt", GOOD[:40])
    data = ["model=cnn", "model.embed_dim=16", "data=local_text", f"data.train={train}", f"data.test={test}"]
    assert run(compose_cfg(overrides=[*FAST, *data], output_dir=tmp_path / "a"))["status"] == "ok"
    ckpt = tmp_path / "a" / "checkpoints" / "best.ckpt"
    other = _write(_mkdir(tmp_path / "b") / "train.txt", [g.replace("film", "movie") for g in GOOD])
    assert_one_line_error(_text_run(tmp_path / "b", other, f"ckpt_path={ckpt}"), "trained with another vocab")
    r = _text_run(_mkdir(tmp_path / "c"), train, f"ckpt_path={ckpt}", "model.embed_dim=8")
    assert_one_line_error(r, "checkpoint weights do not fit model TextClassifier", "size mismatch")


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# ----------------------------------------------------------------------------------------- secrets


def test_env_file_is_git_ignored() -> None:
    r = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert r.returncode == 0, ".env must be listed in .gitignore"


def test_last_checkpoint_is_written_every_epoch_even_when_the_metric_does_not_improve(tmp_path) -> None:
    # lr 0: validation never improves after epoch 0, so best.ckpt stays there; last.ckpt must still move on,
    # or a killed run would resume from a stale epoch (Lightning's save_last follows best.ckpt).
    overrides = [*FAST, "data.train_subset=320", "trainer.max_epochs=3", "model.optimizer.lr=0.0"]
    record = run(compose_cfg(overrides=overrides, output_dir=tmp_path))
    assert record["status"] == "ok"
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert last["epoch"] == 2 and best["epoch"] == 0
    assert record["best_ckpt"] == str(tmp_path / "checkpoints" / "best.ckpt")


@pytest.mark.parametrize("bad", [["model.pool=median"], ["model=mlp"]])
def test_a_failed_resume_into_a_finished_run_keeps_its_results(trained, tmp_path, bad: list[str]) -> None:
    """The refusal comes after composition (a bad choice, another model's checkpoint): the finished run's
    metrics.json and the CSV logger's file stay as they were; the attempt is recorded beside them."""
    import shutil

    copy = tmp_path / "finished"
    shutil.copytree(trained, copy)
    keep = {p: (copy / p).read_bytes() for p in ("metrics.json", "config.yaml") if (copy / p).exists()}
    keep.update({str(p.relative_to(copy)): p.read_bytes() for p in (copy / "csv").rglob("*") if p.is_file()})
    assert json.loads(keep["metrics.json"])["status"] == "ok"
    with pytest.raises(NnlabError):
        run(compose_cfg(overrides=[*FAST, "data.train_subset=400", "resume=auto", *bad], output_dir=copy))
    assert {p: (copy / p).read_bytes() for p in keep} == keep
    assert json.loads((copy / "metrics.failed.json").read_text())["status"] == "failed"
