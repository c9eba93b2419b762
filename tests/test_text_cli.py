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
        "trainer.max_epochs=6",  # with the end-of-sentence word (model.eos) 4 epochs reached 0.85
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
    # the report of this one run: by model and data, with the inference speed of its best checkpoint
    rep = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report.py"), f"sweep_dir={run_dir}", "by=[model,data]",
         "throughput=true", "percent=true"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rep.returncode == 0, rep.stderr
    row = json.loads((run_dir / "summary.json").read_text())["settings"][0]
    assert (row["model"], row["data"], row["runs"]) == ("fasttext", "local_text", 1) and row["sent/s mean"] > 0
    assert "| fasttext | local_text | 1 | 0 |" in rep.stdout and "inference sent/s" in rep.stdout


def _dev_jobs(experiment: str, *cli: str) -> tuple[list[list[str]], object]:
    """The jobs Hydra's basic sweeper runs for ``experiment`` (each a list of overrides, in launch order)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        single = [o for o in cli if "," not in o]  # a sweep is the sweeper's, not the composition's
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}", *single], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + list(cli)
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    return jobs, cfg


def test_dev_search_experiments_are_the_grids_on_three_dev_sets_seed_major():
    from hydra.core.hydra_config import HydraConfig

    for experiment, model, grid in (
        ("text_dev_cnn", "cnn", {"model.embed_dropout", "model.num_filters", "model.dropout"}),
        ("text_dev_rnn", "rnn", {"model.embed_dropout", "model.hidden_size", "model.rnn_type"}),
    ):
        jobs, cfg = _dev_jobs(experiment)
        assert len(jobs) == 12 * 3 * 2 and cfg.model.encoder == model and cfg.test is False
        assert not cfg.get("logger") and "drop_checkpoints" in cfg.hydra.callbacks
        assert all("seed=1" in j for j in jobs[:36]) and all("seed=2" in j for j in jobs[36:])  # seed-major
        configs = {tuple(o for o in j if o.split("=")[0] in grid) for j in jobs}
        assert len(configs) == 12 and all(len(c) == 3 for c in configs)
        for c in configs:  # every configuration on every dev set with both seeds
            runs = [j for j in jobs if set(c) <= set(j)]
            assert sorted(o for j in runs for o in j if o.startswith("data=")) == sorted(
                ["data=mr", "data=sst2", "data=sst5"] * 2
            )
    # the protocol's epochs per dataset, as sentence_models (10) and mr_10fold (15) train them
    for data, epochs in (("sst2", 10), ("sst5", 10), ("mr", 15)):
        _, cfg = _dev_jobs("text_dev_cnn", f"data={data}")
        HydraConfig.instance().set_config(cfg)  # what a job sees (its epochs follow its data choice)
        try:
            assert cfg.trainer.max_epochs == epochs and (data != "mr" or cfg.data.fold == 0)
        finally:
            HydraConfig.instance().cfg = None
    # a grid from the command line: the protocol with the given values, for the model given
    jobs, cfg = _dev_jobs("text_dev", "model=rnn", "model.word_dropout=0.0,0.25", "seed=1")
    assert len(jobs) == 6 and cfg.model.encoder == "rnn" and all("seed=1" in j for j in jobs)


def _dev_sweep(root, runs):
    """A sweep dir of dev runs: (model, cfg, data, seed, val/acc or None for a failed run)."""
    for num, (model, cfg, data, seed, acc) in enumerate(runs):
        job = root / str(num)
        job.mkdir(parents=True)
        record = {"overrides": [f"model={model}", f"model.cfg={cfg}", f"data={data}", f"seed={seed}"],
                  "choices": {"model": model, "data": data}, "seed": seed, "optimized_metric": "val/acc",
                  "optimize_mode": "max"}  # fmt: skip
        if acc is None:
            record.update(status="failed", error="boom")
        else:
            record.update({"status": "ok", "val/acc": acc})
        (job / "metrics.json").write_text(json.dumps(record))
    return root


def test_dev_search_report_ranks_by_the_mean_over_datasets_and_skips_incomplete_configs(tmp_path):
    from nnlab.report import load_jobs, summarize

    runs = [
        # cfg 0: best on SST-2 alone, worse on average
        ("cnn", 0, "sst2", 1, 0.90), ("cnn", 0, "sst5", 1, 0.30), ("cnn", 0, "mr", 1, 0.70),
        # cfg 1: two seeds on SST-2 (mean 0.82), best mean over the datasets
        ("cnn", 1, "sst2", 1, 0.80), ("cnn", 1, "sst2", 2, 0.84), ("cnn", 1, "sst5", 1, 0.40),
        ("cnn", 1, "mr", 1, 0.75),
        # cfg 2: the highest numbers but no MR run: not ranked
        ("cnn", 2, "sst2", 1, 0.95), ("cnn", 2, "sst5", 1, 0.50),
        # cfg 3 failed everywhere
        ("cnn", 3, "sst2", 1, None),
        # another model's runs never count
        ("rnn", 0, "mr", 2, 0.99),
    ]  # fmt: skip
    jobs = load_jobs(_dev_sweep(tmp_path / "sweep", runs))
    s = summarize(jobs, "val/acc", "max", by=["model", "model.cfg"], across="data")
    cnn = s[s.model == "cnn"].reset_index(drop=True)
    assert list(cnn["model.cfg"])[:2] == ["1", "0"]
    assert abs(cnn.loc[0, "val/acc sst2"] - 0.82) < 1e-9
    assert abs(cnn.loc[0, "score"] - (0.82 + 0.40 + 0.75) / 3) < 1e-9
    assert abs(cnn.loc[1, "score"] - (0.90 + 0.30 + 0.70) / 3) < 1e-9
    assert set(cnn["model.cfg"][2:]) == {"2", "3"} and cnn["score"][2:].isna().all()
    assert s.loc[s.model == "rnn", "val/acc mr"].item() == 0.99  # its own row, never in the cnn's means


def test_dev_search_bad_report_arguments_are_one_line(tmp_path, capsys):
    from nnlab.cli import main

    sweep = _dev_sweep(tmp_path / "sweep", [("cnn", 0, "sst2", 1, 0.8), ("cnn", 1, "sst2", 1, 0.7)])
    for args, msg in (
        (["by=[huge]"], "by=huge: no job has huge"),
        (["across=transformer"], "across=transformer: no job has transformer"),
        (["jobz=3"], "jobz is not a key of nnlab report"),
        (["threads=many"], "threads='many' must be an integer"),
        (["percent=maybe"], "percent='maybe' must be true or false"),
        ([f"sweep_dir=[{sweep},{sweep}]"], "give out=DIR"),
    ):
        argv = ["report", *args] if args[0].startswith("sweep_dir") else ["report", f"sweep_dir={sweep}", *args]
        assert main(argv) == 2, args
        err = capsys.readouterr().err
        assert msg in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (sweep / "summary.md").exists()  # refused before any work


@pytest.mark.slow
def test_dev_search_end_to_end_on_a_smoke_grid_then_tests_the_winner(tmp_path, shared_data):
    """experiment=text_dev on a two-configuration grid, its report, then the winner as the issue measures it."""
    env = {**os.environ, "DATA_DIR": str(shared_data), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    tiny = ["trainer.max_epochs=1", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2",
            "+trainer.limit_test_batches=2", "model.num_filters=4"]  # fmt: skip

    def train(*args: str) -> None:
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, *tiny], capture_output=True, text=True,
                              timeout=900, cwd=ROOT, env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]

    def report(*args: str) -> dict:
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), *args], capture_output=True,
                              text=True, timeout=300, cwd=ROOT, env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    dev = tmp_path / "dev"
    train("experiment=text_dev", "model=cnn", "model.embed_dropout=0.0,0.5", "seed=1", f"hydra.sweep.dir={dev}")
    report(f"sweep_dir={dev}", "across=data")
    summary = json.loads((dev / "summary.json").read_text())
    assert len(summary["jobs"]) == 6 and all(r["status"] == "ok" for r in summary["jobs"])
    assert all("test/acc" not in r and r["val/acc"] is not None for r in summary["jobs"])  # test=false
    scores = [s["score"] for s in summary["settings"]]
    assert scores[0] == max(scores) and summary["across"] == "data"
    assert not list(dev.rglob("*.ckpt"))  # the dev runs keep their metrics, not their weights
    winner = [f"model.embed_dropout={summary['settings'][0]['model.embed_dropout']}"]
    sst, mr = tmp_path / "sst", tmp_path / "mr"
    train("experiment=sentence_models", "model=cnn", *winner, "logger=none", f"hydra.sweep.dir={sst}")
    train("-m", "experiment=mr_10fold", "model=cnn", *winner, "logger=none", f"hydra.sweep.dir={mr}")
    out = report(f"sweep_dir=[{sst},{mr}]", "by=[model,data]", "percent=true", f"out={tmp_path / 'final'}")
    final = json.loads((tmp_path / "final" / "summary.json").read_text())
    assert sorted((t["data"], t["runs"]) for t in final["settings"]) == [("mr", 10), ("sst2", 3), ("sst5", 3)]
    assert all(0 <= t["test/acc mean"] <= 1 for t in final["settings"]) and "| cnn | mr | 10 | 0 |" in out
    finals = [json.loads(p.read_text()) for p in [*sst.glob("*/metrics.json"), *mr.glob("*/metrics.json")]]
    assert len(finals) == 16
    assert all(set(winner) <= set(r["overrides"]) and "test=false" not in r["overrides"] for r in finals)


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
    # the phrases train in the dev-searched batches of 200 after, in the sentences' 50 before
    assert [(r["before"]["batch_size"], r["after"]["batch_size"]) for r in rows] == [(50, 50), (50, 200)]
    assert "| cnn | SST-2 phrases | 6 | 50 → 200 |" in proc.stdout


def test_sst2_neutral_phrases_train_end_to_end_and_the_checkpoint_scores_binary(tmp_path):
    """data.phrase_labels=fine_neutral through train.py: five training grades, binary metrics, and a checkpoint
    that eval.py scores again on the binary test sentences."""
    d = tmp_path / "data" / "sst"
    (d / "trees").mkdir(parents=True)
    pos = ["superb", "moving", "great"]
    neg = ["awful", "dull", "boring"]
    trees = [f"({4 - i % 2} (2 film) ({4 - i % 2} {pos[i % 3]}))" for i in range(6)]
    trees += [f"({i % 2} (2 plot) ({i % 2} {neg[i % 3]}))" for i in range(6)]
    trees += ["(2 (2 a) (2 film))"]
    (d / "trees" / "train.txt").write_text("\n".join(trees) + "\n")
    for split in ("train", "dev", "test"):
        (d / f"stsa.binary.{split}").write_text("1 a superb film\n0 a dull plot\n1 great film\n0 boring awful plot\n")
    run_dir = tmp_path / "run"
    data = [f"paths.data_dir={tmp_path / 'data'}", "data=sst2", "data.phrase_labels=fine_neutral"]
    res = run_cli("train.py", "model=cnn", *data, *FAST, "trainer.max_epochs=8", run_dir=run_dir)
    assert res.rc == 0, res
    m = res.metrics
    assert m["data"]["protocol"] == "phrases (sst/trees/train.txt, five grades, neutral never scored)"
    assert m["data"]["train_examples"] == 16  # 7 distinct phrases per sentiment, and the neutral "a film", "a"
    saved = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    hp = saved["hyper_parameters"]
    assert hp["num_classes"] == 2 and hp["train_classes"] == 5 and hp["label_groups"] == [[0, 1], [3, 4]]
    assert saved["state_dict"]["fc.weight"].shape[0] == 5
    # eval.py on the checkpoint alone takes its stored data settings (fine_neutral's vocabulary included)
    again = run_cli("eval.py", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", run_dir=tmp_path / "eval")
    assert again.rc == 0, again
    assert again.metrics["test/acc"] == pytest.approx(m["test/acc"])
