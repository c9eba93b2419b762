"""train.py / predict.py with the text family: default datasets per model, a local_text run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
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


@pytest.mark.parametrize("ema", ["null", pytest.param("0.9", marks=pytest.mark.slow)])  # ema=0.9: make test-slow
def test_local_text_end_to_end_then_predict(tmp_path, ema):
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
        f"model.ema={ema}",
        *FAST,
        "trainer.max_epochs=4",
        run_dir=run_dir,
    )
    assert res.rc == 0, res
    m = res.metrics
    assert m["status"] == "ok" and m["family"] == "TextClassifier"
    assert m["test/acc"] >= 0.9 and {"val/f1", "test/f1", "val/loss"} <= set(m)
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["nnlab"]["model_kwargs"]["class_names"] == ["neg", "pos"]
    assert ("ema" in saved) == (ema != "null")  # with model.ema: the average in state_dict, raw weights aside
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "predict.py"), f"ckpt_path={ckpt}", "w3 great w4", "awful w9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert [line.split("\t")[0] for line in out.stdout.splitlines()] == ["pos", "neg"]


def _sweep_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("text_dev_sweep", ROOT / "scripts" / "text_dev_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dev_sweep_ranks_by_the_mean_over_datasets_and_skips_incomplete_configs():
    t = _sweep_module()
    cfgs = t.configs({"model.a": [1, 2], "model.b": ["x", "y"]})
    assert cfgs[1] == {"model.a": 1, "model.b": "y"} and len(cfgs) == 4

    def run(cfg, data, seed, acc):
        return {"model": "cnn", "cfg": cfg, "data": data, "seed": seed, "val/acc": acc}

    runs = [
        # cfg 0: best on SST-2 alone, worse on average
        run(0, "sst2", 1, 0.90), run(0, "sst5", 1, 0.30), run(0, "mr", 1, 0.70),
        # cfg 1: two seeds on SST-2 (mean 0.82), best mean over the datasets
        run(1, "sst2", 1, 0.80), run(1, "sst2", 2, 0.84), run(1, "sst5", 1, 0.40), run(1, "mr", 1, 0.75),
        # cfg 2: the highest numbers but no MR run: not ranked
        run(2, "sst2", 1, 0.95), run(2, "sst5", 1, 0.50),
        # cfg 3 failed everywhere
        {"model": "cnn", "cfg": 3, "data": "sst2", "seed": 1, "status": "failed"},
        # another model's runs never count
        {**run(0, "mr", 2, 0.99), "model": "rnn"},
    ]  # fmt: skip
    ranking = t.rank(runs, "cnn", cfgs)
    assert [r["cfg"] for r in ranking][:2] == [1, 0]
    assert abs(ranking[0]["dev"]["sst2"] - 0.82) < 1e-9
    assert abs(ranking[0]["score"] - (0.82 + 0.40 + 0.75) / 3) < 1e-9
    assert abs(ranking[1]["score"] - (0.90 + 0.30 + 0.70) / 3) < 1e-9
    assert {r["cfg"] for r in ranking[2:]} == {2, 3} and all(r["score"] is None for r in ranking[2:])


def test_dev_sweep_bad_arguments_are_one_line():
    for args, msg in (
        (["grid=huge"], "grid=huge unknown"),
        (["models=transformer"], "models=transformer has no grid"),
        (["jobz=3"], "bad argument 'jobz=3'"),
        (["jobs=many"], "jobs=many is not a number"),
        (["seeds=1;2"], "seeds=1;2 must be integers"),
        (["final=yes"], "final=yes must be true or false"),
    ):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "text_dev_sweep.py"), *args], capture_output=True, text=True
        )
        assert proc.returncode != 0 and msg in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_dev_sweep_end_to_end_on_a_smoke_grid_then_tests_the_winner(tmp_path, shared_data):
    out = tmp_path / "sweep"
    env = {**os.environ, "DATA_DIR": str(shared_data), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "text_dev_sweep.py"), f"out={out}", "jobs=2", "models=cnn",
         "grid=smoke", "seeds=1", "epochs_scale=0.1", "final=true", "--", "+trainer.limit_train_batches=3",
         "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2", "model.num_filters=4"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    dev = json.loads((out / "dev.json").read_text())
    assert len(dev["runs"]) == 6 and all(r["status"] == "ok" for r in dev["runs"])
    assert all(r["test/acc"] is None and r["val/acc"] is not None for r in dev["runs"])  # test=false in stage 1
    assert dev["ranking"]["cnn"][0]["score"] == max(r["score"] for r in dev["ranking"]["cnn"])
    final = json.loads((out / "final.json").read_text())
    assert [(t["data"], t["n"]) for t in final["table"]] == [("sst2", 3), ("sst5", 3), ("mr", 10)]
    assert all(0 <= t["mean"] <= 100 for t in final["table"])
    winner = [f"{k}={v}" for k, v in dev["ranking"]["cnn"][0]["params"].items()]
    assert all(set(winner) <= set(r["overrides"]) and "test=false" not in r["overrides"] for r in final["runs"])
    assert not list(out.rglob("*.ckpt"))


@pytest.mark.slow  # long (15-60 s): `make test-slow`, run by CI
def test_bench_text_times_before_and_after_on_sentences_and_phrases(tmp_path):
    d = tmp_path / "sst"
    (d / "trees").mkdir(parents=True)
    for split, n in (("train", 40), ("dev", 10), ("test", 10)):
        (d / f"stsa.binary.{split}").write_text("".join(f"{i % 2} w{i % 7} {'good' if i % 2 else 'bad'} film\n"
                                                        for i in range(n)))  # fmt: skip
    (d / "trees" / "train.txt").write_text("(3 (2 a) (4 (4 good) (2 film)))\n(1 (2 a) (0 (0 bad) (2 film)))\n" * 20)
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_text.py"), f"data_dir={tmp_path}", "encoders=[cnn]",
         "steps=10", "warmup=1", "repeats=1", "force=true", f"out={out}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| cnn | SST-2 phrases |" in proc.stdout and "load average" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["encoder"], r["level"]) for r in rows] == [("cnn", "sentences"), ("cnn", "phrases")]
    assert rows[1]["after"]["train_examples"] == 6 and rows[0]["after"]["train_examples"] == 40  # distinct phrases
    assert all(r["before"]["s_per_epoch"] > 0 and r["after"]["examples_per_s"] > 0 for r in rows)
