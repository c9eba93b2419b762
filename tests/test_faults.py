"""Nothing lost, one clear line: broken checkpoints, foreign checkpoints, determinism, secrets."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import FAST, compose_cfg, run_cli
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


def test_same_seed_deterministic_gives_identical_metrics(tmp_path) -> None:
    overrides = [*FAST, "data.train_subset=400", "trainer.deterministic=true", "seed=7"]
    a = run(compose_cfg(overrides=overrides, output_dir=tmp_path / "a"))
    b = run(compose_cfg(overrides=overrides, output_dir=tmp_path / "b"))
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "train/loss"):
        assert a[key] == b[key], key


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
