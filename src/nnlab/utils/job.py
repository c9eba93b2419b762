"""The plumbing of one Hydra job, shared by training and evaluation: the job's choices and overrides, its
loggers (W&B named and id'd by its run dir), and its record, metrics.json, written whatever happens."""

from __future__ import annotations

import logging
import secrets
import shutil
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from nnlab.utils.errors import ConfigError
from nnlab.utils.run import HYDRA_BACKUP, finished_record, write_json
from nnlab.utils.wandb_run import WANDB_ID_FILE

log = logging.getLogger(__name__)


def hydra_choices() -> dict[str, str]:
    """The config group options of this run (``{"model": "convnet", ...}``), Hydra's own left out."""
    try:
        choices = HydraConfig.get().runtime.choices
    except ValueError:  # composed without a Hydra app (tests, notebooks)
        return {}
    return {k: v for k, v in choices.items() if not k.startswith("hydra")}


def is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def job_overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def instantiate_loggers(cfg: DictConfig | None, out_dir: Path) -> list[Logger]:
    loggers = []
    for conf in (cfg or {}).values():
        if conf is None or "_target_" not in conf:
            continue
        if get_class(conf._target_) is WandbLogger:
            conf = OmegaConf.merge(conf, wandb_names(conf, out_dir))
        loggers.append(instantiate(conf))
    return loggers


def wandb_run_id(out_dir: Path) -> str:
    """The W&B run id of this run dir, created on first use and kept in ``wandb/nnlab-run-id``.

    The id belongs to the run dir, not the process: a run resumed into the same dir (``resume=auto``, a
    ``ckpt_path`` there, a SLURM requeue of the same job) continues the same W&B run (WandbLogger passes
    ``resume="allow"``), and a new run dir starts a new one.
    """
    path = out_dir / WANDB_ID_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    # W&B's own form of id (lowercase letters and digits); wandb 0.31 keeps its generator private.
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def wandb_names(conf: DictConfig, out_dir: Path) -> dict:
    """Each multirun job is its own W&B run, grouped by sweep, named by its overrides, with its run dir's id."""
    names: dict[str, Any] = {}
    if conf.get("group") is None and is_multirun():
        names["group"] = Path(HydraConfig.get().sweep.dir).name
    if conf.get("name") is None:
        try:
            override_dirname = HydraConfig.get().job.override_dirname
        except ValueError:
            override_dirname = ""
        # override_dirname leaves the seed out (so seed replicas share a setting in reports); the run's
        # name must still tell the replicas apart.
        seeds = [o for o in job_overrides() if o.split("=", 1)[0].lstrip("+~") == "seed"]
        names["name"] = ",".join(filter(None, [override_dirname, *seeds])) or out_dir.name
    if conf.get("id") is None and conf.get("version") is None:
        names["id"] = wandb_run_id(out_dir)
    return names


def finish_loggers(loggers: list[Logger], failed: bool) -> None:
    """Close every logger; the W&B run is finished (marked failed when the job failed) even on errors."""
    for lg in loggers:
        try:
            lg.finalize("failed" if failed else "success")
        except Exception as e:  # closing a logger must never hide the run's own outcome
            log.warning("closing logger %s failed: %s", type(lg).__name__, e)
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=1 if failed else 0)


@contextmanager
def run_record(out_dir: Path, record: dict[str, Any], loggers: list[Logger]) -> Iterator[None]:
    """Whatever happens inside: metrics.json is written (``status: failed`` and the error on an exception,
    with the wall time) and every logger is finished, W&B marked failed when the job failed.

    A dir that already holds a finished run keeps its metrics.json unless this run got as far as training
    (``record["supersedes"]`` set): a refused or failed attempt writes ``metrics.failed.json`` beside it."""
    finished = finished_record(out_dir)
    t0 = time.time()
    failed = True
    try:
        yield
        failed = False
    except BaseException as e:
        record.update(status="failed", error=" ".join(str(e).split()) or type(e).__name__)
        raise
    finally:
        record["wall_s"] = round(time.time() - t0, 3)
        keep = finished is not None and failed and "supersedes" not in record
        write_json(out_dir / ("metrics.failed.json" if keep else "metrics.json"), record)
        if keep:
            log.error("the finished run's metrics.json in %s is kept; this attempt: metrics.failed.json", out_dir)
            if (out_dir / HYDRA_BACKUP).is_dir():  # the finished run's composed config, saved before Hydra started
                shutil.rmtree(out_dir / ".hydra", ignore_errors=True)
                (out_dir / HYDRA_BACKUP).rename(out_dir / ".hydra")
        finish_loggers(loggers, failed)


def stage_metrics(results: list[dict[str, float]], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in results or []:
        out.update({k: float(v) for k, v in r.items() if k.startswith(prefix)})
    return out


def _a(word: str | None) -> str:
    return f"{'an' if str(word)[:1] in 'aeiou' else 'a'} {word}"


def check_modalities(
    model_cls: type, data_cls: type, model: str | None = None, data: str | None = None, verb: str = "train on"
) -> None:
    """Refuse a model and a dataset of different modalities (the contract every family keeps), naming both:
    ``model``/``data`` are their config names where known (``model=cnn``), else the class names are used."""
    model_mod, data_mod = getattr(model_cls, "modality", None), getattr(data_cls, "modality", None)
    if model_mod != data_mod:
        raise ConfigError(
            f"model={model or model_cls.__name__} ({model_mod}) cannot {verb} data={data or data_cls.__name__} "
            f"({data_mod}): choose {_a(model_mod)} dataset for this model or {_a(data_mod)} model for this dataset"
        )
