"""train.py / predict.py with the text family: default datasets per model, a local_text run end to end."""

from __future__ import annotations

import subprocess
import sys

import torch
from hydra import compose, initialize_config_dir
from test_text_models import _separable

from conftest import CONF, FAST, ROOT, compose_cfg, run_cli


def test_each_model_picks_sst2_and_cli_data_wins(tmp_path):
    for model in ("cnn", "rnn", "fasttext"):
        cfg = compose_cfg(overrides=[f"model={model}"], output_dir=tmp_path)
        assert cfg.data._target_ == "nnlab.data.SST2DataModule", model
        assert cfg.model.encoder == model
    cfg = compose_cfg(overrides=["model=fasttext", "data=mr", "data.fold=3"], output_dir=tmp_path)
    assert (cfg.data._target_, cfg.data.fold, cfg.model.ngrams) == ("nnlab.data.MRDataModule", 3, 2)
    cfg = compose_cfg(overrides=["model=cnn", "data=sst5", "model.pool=mean"], output_dir=tmp_path)
    assert cfg.data._target_ == "nnlab.data.SST5DataModule" and cfg.model.pool == "mean"


def test_sweep_experiments_cover_the_grid(tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=sentence_models"], return_hydra_config=True)
        mr = compose(config_name="train", overrides=["experiment=mr_10fold", "model=cnn"], return_hydra_config=True)
    grid = cfg.hydra.sweeper.params
    assert (grid.model, grid.data, str(grid.seed)) == ("cnn,rnn,fasttext", "sst2,sst5", "1,2,3")
    assert str(mr.hydra.sweeper.params["data.fold"]) == "range(0,10)"
    assert mr.data._target_ == "nnlab.data.MRDataModule" and mr.model.encoder == "cnn"


def test_image_model_on_text_data_fails_with_one_line(tmp_path):
    res = run_cli("train.py", "model=convnet", "data=sst2", *FAST, run_dir=tmp_path / "run")
    assert res.rc == 2, res
    lines = [line for line in res.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "(image) cannot train on data=sst2 (text)" in lines[0], res


def test_local_text_end_to_end_then_predict(tmp_path):
    train = _separable(tmp_path / "train.txt", 120, 0)
    test = _separable(tmp_path / "test.txt", 40, 1)
    run_dir = tmp_path / "run"
    res = run_cli(
        "train.py",
        "model=fasttext",
        "data=local_text",
        f"data.train={train}",
        f"data.test={test}",
        "model.buckets=1000",
        "model.optimizer.lr=0.5",
        *FAST,
        "trainer.max_epochs=4",
        run_dir=run_dir,
    )
    assert res.rc == 0, res
    m = res.metrics
    assert m["status"] == "ok" and m["family"] == "TextClassifier"
    assert m["test/acc"] >= 0.9 and {"val/f1", "test/f1", "val/loss"} <= set(m)
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    assert torch.load(ckpt, weights_only=True)["nnlab"]["model_kwargs"]["class_names"] == ["neg", "pos"]
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "predict.py"), f"ckpt_path={ckpt}", "w3 great w4", "awful w9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert [line.split("\t")[0] for line in out.stdout.splitlines()] == ["pos", "neg"]
