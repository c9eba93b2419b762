"""Evaluate a checkpoint on a test split: `python eval.py ckpt_path=PATH [data=...]`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as L
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from nnlab.utils.checkpoint import CHECKPOINT_KEY, check_fits, load_checkpoint, model_from_checkpoint
from nnlab.utils.errors import NnlabError
from nnlab.utils.job import (
    check_modalities,
    hydra_choices,
    instantiate_loggers,
    job_overrides,
    run_record,
    stage_metrics,
)
from nnlab.utils.run import build, report_error
from nnlab.utils.wandb_media import WandbMedia

log = logging.getLogger(__name__)


def run(cfg: DictConfig, validate: Callable[[DictConfig], None] | None = None) -> dict[str, Any]:
    out_dir = Path(cfg.paths.output_dir)
    record: dict[str, Any] = {
        "status": "running",
        "ckpt_path": str(cfg.ckpt_path),
        "overrides": job_overrides(),
    }
    loggers: list = []
    with run_record(out_dir, record, loggers):
        if validate is not None:  # the typed schema (nnlab.cli.schema): one line before any work
            validate(cfg)
        ckpt = load_checkpoint(cfg.ckpt_path)
        info = ckpt[CHECKPOINT_KEY]
        stored = OmegaConf.create(info["config"])
        data_cfg = cfg.data if cfg.get("data") is not None else stored.data
        model_cls, data_cls = get_class(stored.model._target_), get_class(data_cfg._target_)
        check_modalities(model_cls, data_cls, data=hydra_choices().get("data"), verb="be evaluated on")
        L.seed_everything(stored.get("seed", cfg.seed), workers=True)
        datamodule = build(data_cfg)
        datamodule.prepare_data()
        datamodule.setup("test")
        check_fits(ckpt, None, datamodule.model_kwargs(), data_cfg.get("name", data_cls.__name__))
        model = model_from_checkpoint(ckpt)
        loggers.extend(instantiate_loggers(cfg.get("logger"), out_dir))
        trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[WandbMedia()])
        record.update(stage_metrics(trainer.test(model, datamodule=datamodule), "test/"))
        record.update(family=info.get("family"), params=sum(p.numel() for p in model.parameters()), status="ok")
    return record


def main(cfg: DictConfig, validate: Callable[[DictConfig], None] | None = None) -> float | None:
    try:
        record = run(cfg, validate)
    except NnlabError as e:
        report_error(e)
        sys.exit(e.exit_code)
    return record.get("test/acc", record.get("test/ppl"))
