"""Every model x data pair composes; incompatible pairs and unknown choices fail with one line."""

from __future__ import annotations

import re

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from conftest import CONF, compose_cfg
from nnlab.train import check_pair
from nnlab.utils.errors import ConfigError
from nnlab.utils.run import build

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
DATAS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))


def modality(target: str) -> str:
    return get_class(target).modality


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("data", DATAS)
def test_every_pair_composes_and_is_checked(model: str, data: str, tmp_path) -> None:
    cfg = compose_cfg(overrides=[f"model={model}", f"data={data}"], output_dir=tmp_path)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    assert cfg.data._target_ and cfg.model._target_
    if modality(cfg.model._target_) == modality(cfg.data._target_):
        check_pair(cfg)
    else:
        with pytest.raises(ConfigError) as e:
            check_pair(cfg)
        msg = str(e.value)
        assert "\n" not in msg and "cannot train on" in msg


class FakeTextData:
    modality = "text"


def test_incompatible_pair_names_both_sides(tmp_path) -> None:
    cfg = compose_cfg(overrides=["model=convnet"], output_dir=tmp_path)
    cfg.data = OmegaConf.create({"_target_": f"{__name__}.FakeTextData"})
    with pytest.raises(ConfigError, match=r"model=.*\(image\) cannot train on data=.*\(text\)"):
        check_pair(cfg)


@pytest.mark.parametrize("key,value", [("model.pool", "median"), ("model.norm", "instance"), ("model.conv", "fft")])
def test_unknown_choice_lists_valid_ones(key: str, value: str, tmp_path) -> None:
    cfg = compose_cfg(overrides=[f"{key}={value}", "trainer.max_epochs=1"], output_dir=tmp_path)
    OmegaConf.resolve(cfg)
    with pytest.raises(ConfigError) as e:
        build(cfg.model, num_classes=10, input_shape=[1, 8, 8])
    msg = str(e.value)
    assert msg.startswith(f"{key}='{value}' is not a valid choice; choose one of: ")
    assert "max" in msg or "batch" in msg or "torch" in msg


def test_experiments_and_searches_compose(tmp_path) -> None:
    for exp in sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")):
        cfg = compose_cfg(overrides=[f"experiment={exp}"], output_dir=tmp_path)
        assert cfg.data._target_ and cfg.model._target_, exp
    for debug in ("fdr", "limit", "overfit"):
        cfg = compose_cfg(overrides=[f"debug={debug}"], output_dir=tmp_path)
        assert cfg.trainer.max_epochs >= 1
    expected = {
        "image_optuna": ("val/acc", "max"),
        "text_optuna": ("val/acc", "max"),
        "fasttext_optuna": ("val/acc", "max"),
        "lm_optuna": ("val/ppl", "min"),
    }
    for search in sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml")):
        cfg = compose_cfg(overrides=[f"hparams_search={search}"], output_dir=tmp_path)
        assert (cfg.optimized_metric, cfg.optimize_mode) == expected[search], search


@pytest.mark.parametrize("search", ["image_optuna", "text_optuna", "fasttext_optuna", "lm_optuna"])
def test_every_optuna_search_point_is_a_valid_config(search: str, tmp_path) -> None:
    """Each searched parameter, at each of its choices or interval ends, composes into a model that builds."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        full = compose("train", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    sweeper = full.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.nnlab_optuna.ResumableOptunaSweeper"
    assert sweeper.direction == {"max": "maximize", "min": "minimize"}[full.optimize_mode]
    for key, spec in sweeper.params.items():
        inner = spec[spec.rindex("(") + 1 : spec.index(")")]
        for value in (v.strip() for v in inner.split(",")):
            cfg = compose_cfg(overrides=[f"hparams_search={search}", f"{key}={value}"], output_dir=tmp_path)
            OmegaConf.resolve(cfg)
            assert OmegaConf.select(cfg, key) is not None or key == "model", (key, value)


def test_ddp_trainer_composes_and_builds_on_cpu(tmp_path) -> None:
    from pytorch_lightning.strategies import DDPStrategy

    cfg = compose_cfg(overrides=["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"], output_dir=tmp_path)
    trainer = build(cfg.trainer, logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.num_devices == 2 and trainer.world_size == 2


def test_default_is_convnet_batchnorm_maxpool_on_digits() -> None:
    cfg = compose_cfg()
    assert cfg.data.name == "digits"
    assert cfg.model.net._target_.endswith("ConvNet")
    # our batch norm, max pooling and conv: all ours since they met their speed targets (issue 21)
    assert (cfg.model.norm, cfg.model.pool, cfg.model.conv) == ("batch", "max", "ours")
    assert compose_cfg(overrides=["model=mlp"]).model.norm == "batch"


@pytest.mark.parametrize("spec", sorted((CONF / "wandb_sweep").glob("*.yaml")), ids=lambda p: p.stem)
def test_wandb_sweep_specs_are_valid_hydra_overrides(spec, tmp_path) -> None:
    """Every W&B sweep parameter must be an override train.py accepts (the agent passes key=value)."""
    import yaml

    s = yaml.safe_load(spec.read_text())
    assert s["program"] == "train.py" and "${args_no_hyphens}" in s["command"]
    assert s["metric"]["goal"] in ("maximize", "minimize")
    overrides = []
    for key, p in s["parameters"].items():
        value = p["value"] if "value" in p else p["values"][0] if "values" in p else p["min"]
        overrides.append(f"{key}={value}")
    cfg = compose_cfg(overrides=overrides, output_dir=tmp_path)
    OmegaConf.resolve(cfg)
    build(cfg.model, num_classes=10, input_shape=[1, 28, 28])


def test_progress_bar_and_summary_switches_drop_their_callbacks(tmp_path) -> None:
    # callbacks=default carries a RichProgressBar and RichModelSummary; Lightning refuses them beside
    # enable_progress_bar=false / enable_model_summary=false, which users type to quiet a run.
    from pytorch_lightning.callbacks import ModelCheckpoint, ModelSummary, ProgressBar

    from nnlab.train import instantiate_callbacks

    cfg = compose_cfg(output_dir=tmp_path)
    kinds = lambda cbs: {ProgressBar: any(isinstance(c, ProgressBar) for c in cbs),  # noqa: E731
                         ModelSummary: any(isinstance(c, ModelSummary) for c in cbs)}  # fmt: skip
    assert kinds(instantiate_callbacks(cfg.callbacks, cfg.trainer)) == {ProgressBar: True, ModelSummary: True}
    quiet = compose_cfg(
        overrides=["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"], output_dir=tmp_path
    )
    callbacks = instantiate_callbacks(quiet.callbacks, quiet.trainer)
    assert kinds(callbacks) == {ProgressBar: False, ModelSummary: False}
    assert any(isinstance(c, ModelCheckpoint) for c in callbacks)
    build(quiet.trainer, callbacks=callbacks, logger=False)


@pytest.mark.parametrize(
    "model,data,metric",
    [("mlp", "digits", "val/acc"), ("convnet", "digits", "val/acc"), ("cnn", "SST2DataModule", "val/acc"),
     ("rnn", "SST2DataModule", "val/acc"), ("fasttext", "SST2DataModule", "val/acc"), ("lm", "ptb", "val/ppl")],
)  # fmt: skip
def test_each_model_trains_on_its_familys_data_unless_told(model: str, data: str, metric: str) -> None:
    cfg = compose_cfg(overrides=[f"model={model}"])
    assert data in (cfg.data.get("name"), cfg.data._target_.rsplit(".", 1)[-1]) and cfg.optimized_metric == metric
    other = "mr" if model in ("cnn", "rnn", "fasttext") else "wikitext2" if model == "lm" else "fashion_mnist"
    picked = compose_cfg(overrides=[f"model={model}", f"data={other}"]).data
    assert picked.get("name", picked._target_) in (other, "nnlab.data.MRDataModule")
    if model == "lm":
        assert (cfg.trainer.max_epochs, cfg.callbacks.early_stopping.patience) == (13, 4)
    if model == "fasttext":  # the model's own data settings win over its family's, the command line over both
        assert (cfg.data.batch_size, cfg.data.bucket) == (16, False)
        assert compose_cfg(overrides=["model=fasttext", "data.batch_size=3"]).data.batch_size == 3


@pytest.mark.parametrize("model", ["cnn", "rnn", "fasttext"])
@pytest.mark.parametrize("data", ["sst2", "sst5", "mr"])
def test_a_model_data_pair_brings_its_dev_searched_settings(model: str, data: str) -> None:
    """conf/family/model_data/<model>_<data>.yaml: the cnn and rnn train SST's phrases in batches of 200 (the rnn
    with 200-d embeddings), fastText SST-1 at lr 1.0; the sentence batch and MR are untouched, and the command line
    still wins."""
    cfg = compose_cfg(overrides=[f"model={model}", f"data={data}"])
    assert cfg.data.batch_size == (16 if model == "fasttext" else 50)
    if data == "mr":
        assert "phrase_batch_size" not in cfg.data
    else:
        assert cfg.data.phrase_batch_size == (None if model == "fasttext" else 200)
        told = compose_cfg(overrides=[f"model={model}", f"data={data}", "data.phrase_batch_size=64"])
        assert told.data.phrase_batch_size == 64
    if model == "rnn":  # stage 3 of the phrase-level search: 200-d embeddings on SST only
        assert cfg.model.embed_dim == (300 if data == "mr" else 200)
    if model == "fasttext":  # its dev search: lr 1.0 on SST-1, the course's 0.25 elsewhere
        assert cfg.model.optimizer.lr == (1.0 if data == "sst5" else 0.25)
        told = compose_cfg(overrides=[f"model={model}", f"data={data}", "model.optimizer.lr=0.5"])
        assert told.model.optimizer.lr == 0.5
    pairs = {p.stem for p in (CONF / "family" / "model_data").glob("*.yaml")}
    # each names a model and a data config
    assert pairs == {"cnn_sst2", "cnn_sst5", "rnn_sst2", "rnn_sst5", "fasttext_sst5"}
    for pair in pairs:
        m, d = pair.split("_")
        assert (CONF / "model" / f"{m}.yaml").is_file() and (CONF / "data" / f"{d}.yaml").is_file()


def test_no_model_config_reaches_outside_its_own_node() -> None:
    """Model configs hold the model only: what a model trains with is its family's (conf/family/<model>.yaml)."""
    for path in sorted((CONF / "model").glob("*.yaml")):
        text = path.read_text()
        assert "@package" not in text and not re.search(r"^defaults:", text, re.M), path.name
        assert (CONF / "family" / path.name).is_file(), f"conf/family/{path.name} missing"


def test_experiment_that_switches_model_brings_that_familys_data() -> None:
    cfg = compose_cfg(overrides=["experiment=ptb_small"])
    assert cfg.model._target_.endswith("LanguageModel") and cfg.data.name == "ptb"
