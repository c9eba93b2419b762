"""The whole life of one training run: compose -> data -> model -> fit -> test -> metrics.json."""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
from pytorch_lightning.loggers import Logger

from nnlab.utils import ckernel
from nnlab.utils.callbacks import ResumeState
from nnlab.utils.checkpoint import CHECKPOINT_KEY, check_fits, load_checkpoint, load_weights
from nnlab.utils.errors import ConfigError, NnlabError
from nnlab.utils.job import (
    check_modalities,
    hydra_choices,
    instantiate_loggers,
    is_multirun,
    job_overrides,
    run_record,
    stage_metrics,
)
from nnlab.utils.malloc import keep_freed_memory
from nnlab.utils.run import HYDRA_BACKUP, build, finished_record, local_rank, print_config_tree, report_error, to_plain
from nnlab.utils.wandb_media import WandbMedia

log = logging.getLogger(__name__)


class RunInfo(Callback):
    """Stores what prediction needs, as plain data, in every checkpoint: config, model kwargs, family."""

    def __init__(self, config: dict, model_kwargs: dict, family: str) -> None:
        self.info = {"config": config, "model_kwargs": model_kwargs, "family": family}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.info


class History(Callback):
    """Per-epoch train/val metrics, kept in metrics.json so reports can draw learning curves without a logger."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self._t0 = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # epoch_s: this epoch's training and its validation (Lightning validates before this hook)
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step, "epoch_s": time.perf_counter() - self._t0}
        for k, v in trainer.callback_metrics.items():
            if k.startswith(("train/", "val/")) and v.numel() == 1:
                row[k] = float(v)
        self.rows.append(row)

    # Kept in checkpoints, so a resumed run's metrics.json still has the epochs before the crash; only
    # resuming a fit restores them (validate/test on best.ckpt must not roll the history back).
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint["nnlab_history"] = list(self.rows)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == "fit":
            self.rows = list(checkpoint.get("nnlab_history", []))


# ----------------------------------------------------------------------------- composition helpers


def check_pair(cfg: DictConfig) -> None:
    """Refuse a model/data pair of different modalities before any work, naming the pair."""
    choices = hydra_choices()
    check_modalities(
        get_class(cfg.model._target_), get_class(cfg.data._target_), choices.get("model"), choices.get("data")
    )


def instantiate_callbacks(
    cfg: DictConfig | None, trainer_cfg: DictConfig | None = None, has_logger: bool = True
) -> list[Callback]:
    """The configured callbacks, less those Lightning refuses in this run: a progress bar or model summary that
    the trainer config switches off, and the learning-rate monitor when there is no logger (``logger=none``)."""
    off = [
        cls
        for key, cls in (("enable_progress_bar", ProgressBar), ("enable_model_summary", ModelSummary))
        if trainer_cfg is not None and trainer_cfg.get(key) is False
    ]
    if not has_logger:
        off.append(LearningRateMonitor)
    callbacks = [instantiate(c) for c in (cfg or {}).values() if c is not None and "_target_" in c]
    return [c for c in callbacks if not isinstance(c, tuple(off))]


def resolve_ckpt_path(cfg: DictConfig, out_dir: Path) -> str | None:
    if cfg.get("resume") == "auto":
        last = out_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            log.info("resume=auto: continuing from %s", last)
            return str(last)
        log.info("resume=auto: no %s yet, starting fresh", last)
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"ckpt_path={cfg.ckpt_path} does not exist; give the path of a .ckpt file")
        return str(path)
    return None


# ----------------------------------------------------------------------------- the run


def run(cfg: DictConfig, validate: Callable[[DictConfig], None] | None = None) -> dict[str, Any]:
    """Fit and test as configured; returns (and writes to ``metrics.json``) the run's record."""
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "status": "running",
        "seed": cfg.get("seed"),
        "overrides": job_overrides(),
        "optimized_metric": cfg.get("optimized_metric"),
        "optimize_mode": cfg.get("optimize_mode"),
        "choices": hydra_choices(),
    }
    loggers: list[Logger] = []
    with run_record(out_dir, record, loggers):
        if validate is not None:  # the typed schema (nnlab.cli.schema): one line before any work
            validate(cfg)
        if cfg.get("extras", {}).get("ignore_warnings"):
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*The number of training batches.*")
        if cfg.get("extras", {}).get("keep_freed_memory"):
            keep_freed_memory()
        check_pair(cfg)
        if cfg.get("extras", {}).get("print_config"):
            print_config_tree(cfg)
        if cfg.get("seed") is not None:
            L.seed_everything(cfg.seed, workers=True)
        if cfg.get("threads"):
            torch.set_num_threads(int(cfg.threads))

        datamodule: L.LightningDataModule = build(cfg.data)
        # Downloads once per node: under DDP the other local ranks find the data in <data_dir>/hf.
        if local_rank() == 0:
            datamodule.prepare_data()
        datamodule.setup("fit")
        model_kwargs = datamodule.model_kwargs()
        if hasattr(datamodule, "data_info"):  # e.g. which SST protocol ran, on how many training examples
            record["data"] = datamodule.data_info()
        model: L.LightningModule = build(cfg.model, **model_kwargs)
        record["params"] = sum(p.numel() for p in model.parameters())
        record["family"] = type(model).__name__
        ckpt_path = resolve_ckpt_path(cfg, out_dir)
        if ckpt_path is not None:
            # Refuse a foreign checkpoint in one line here, not deep inside Lightning's
            # restore, and before any logger opens (or clears) its files in the run dir.
            ckpt = load_checkpoint(ckpt_path)
            check_fits(ckpt, type(model).__name__, model_kwargs, hydra_choices().get("data", cfg.data._target_))
            load_weights(model, ckpt)
            del ckpt
        # .hydra/config.yaml keeps the interpolations; this is what the run actually used.
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

        loggers.extend(instantiate_loggers(cfg.get("logger"), out_dir))
        callbacks = instantiate_callbacks(cfg.get("callbacks"), cfg.get("trainer"), has_logger=bool(loggers))
        history = History()
        callbacks += [RunInfo(to_plain(cfg), model_kwargs, type(model).__name__), history, ResumeState(), WandbMedia()]
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        for lg in loggers:
            lg.log_hyperparams({**to_plain(cfg), "params": record["params"]})

        best = ckpt_path
        if cfg.get("train", True):
            previous = finished_record(out_dir)
            if previous is not None:  # training really continues: this record replaces the finished one
                keep = ("epoch", "global_step", "wall_s", "val/acc", "val/ppl", "test/acc", "test/ppl")
                record["supersedes"] = {k: previous[k] for k in keep if k in previous}
                shutil.rmtree(out_dir / HYDRA_BACKUP, ignore_errors=True)
                log.info("continuing a finished run: its metrics.json is replaced at the end (see 'supersedes')")
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
            # the checkpoint that follows the optimized metric (last_checkpoint has no monitor)
            ckpts = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
            ckpt_cb = next((c for c in ckpts if c.monitor is not None), ckpts[0] if ckpts else None)
            best = (ckpt_cb.best_model_path or None) if ckpt_cb else None
            if best is None:
                log.warning("no best checkpoint was saved; evaluating the final weights")
            record.update(epoch=trainer.current_epoch, global_step=trainer.global_step)
            record.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})
            record.update(stage_metrics(trainer.validate(model, datamodule=datamodule, ckpt_path=best), "val/"))
            record["history"] = history.rows
        if cfg.get("test", True):
            record.update(stage_metrics(trainer.test(model, datamodule=datamodule, ckpt_path=best), "test/"))
            if getattr(model, "confusion_matrix", None) is not None:
                record["confusion_matrix"] = model.confusion_matrix
                record["class_names"] = model_kwargs.get("class_names")
        record["best_ckpt"] = best
        record["kernels"] = ckernel.paths()  # native C or the same computation in torch, per kernel
        record["status"] = "ok"
    return record


def main(cfg: DictConfig, validate: Callable[[DictConfig], None] | None = None) -> float | None:
    """Hydra task function: run, report one line on failure, return the optimized metric for sweepers.

    In a multirun a failing job is recorded (metrics.json ``status: failed``) and the sweep goes on;
    ``MultirunSummary`` exits non-zero at the end. A single run exits 2 on a user error, with one line.
    """
    try:
        record = run(cfg, validate)
    except NnlabError as e:
        report_error(e)
        if is_multirun():
            return float("nan")
        sys.exit(e.exit_code)
    except Exception as e:
        if not is_multirun():
            raise
        report_error(e)
        return float("nan")
    value = record.get(cfg.get("optimized_metric") or "")
    if value is None:
        return None
    log.info("%s = %.4f (run dir %s)", cfg.optimized_metric, value, cfg.paths.output_dir)
    return float(value) if not math.isnan(value) else float("nan")
