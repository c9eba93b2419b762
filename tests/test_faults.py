"""Nothing lost, one clear line: crash and resume, determinism, NaN, bad data, broken or foreign
checkpoints, secrets. Every refusal is one ``error:`` line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, ROOT, compose_cfg, run_cli
from nnlab.train import run
from nnlab.utils.checkpoint import load_checkpoint
from nnlab.utils.errors import CheckpointError


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
    r = run_cli("eval.py", f"ckpt_path={trained}/checkpoints/best.ckpt", "data=fashion_mnist", run_dir=tmp_path / "e")
    assert r.rc == 2 and "trained with another class_names" in r.stderr and "Traceback" not in r.stderr, r


def test_wandb_key_never_reaches_run_files(tmp_path) -> None:
    secret = "0123456789abcdef0123456789abcdef01234567"
    r = run_cli("train.py", *FAST, "data.train_subset=300", "logger=many", "logger.wandb.mode=offline",
                run_dir=tmp_path / "run", env={"WANDB_API_KEY": secret})  # fmt: skip
    assert r.rc == 0, r
    assert secret not in r.stdout + r.stderr
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "ok"


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
