"""Attach later work (``scripts/tsne.py``) to the W&B run of the training run that wrote a checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WANDB_ID_FILE = "wandb/nnlab-run-id"  # relative to a run dir; written by nnlab.utils.job.wandb_run_id


def checkpoint_run_dir(ckpt_path: str | Path) -> Path:
    """The run dir of ``<run dir>/checkpoints/<name>.ckpt``."""
    return Path(ckpt_path).expanduser().resolve().parent.parent


def checkpoint_wandb_target(ckpt_path: str | Path, config: dict | None = None) -> dict[str, Any]:
    """``wandb.init`` arguments that continue the checkpoint's own run: its run dir's id (``resume="allow"``),
    the project and entity of its stored config, files in its run dir. Without an id file, no ``id``."""
    run_dir = checkpoint_run_dir(ckpt_path)
    wb = ((config or {}).get("logger") or {}).get("wandb") or {}
    target: dict[str, Any] = {"project": wb.get("project") or "nnlab", "entity": wb.get("entity"), "dir": str(run_dir)}
    id_file = run_dir / WANDB_ID_FILE
    if id_file.is_file() and id_file.read_text().strip():
        target.update(id=id_file.read_text().strip(), resume="allow")
    return target


def log_image(
    path: str | Path, key: str, caption: str, ckpt: str | Path | None = None, config: dict | None = None,
    start: bool = False,
) -> str | None:  # fmt: skip
    """Log the PNG ``path`` as ``key`` into a W&B run and return one line saying which run; None when nothing
    was logged (no active run and ``start`` false, or wandb missing).

    An active run is used as it is. Otherwise, with ``start``: the checkpoint's own run when its run dir
    keeps the id (``ckpt``), else a new run. A run started here is finished here.
    """
    try:
        import wandb
    except ImportError:
        return None
    started = False
    if wandb.run is None:
        if not start:
            return None
        from nnlab.utils.resolvers import wandb_mode

        target = checkpoint_wandb_target(ckpt, config) if ckpt else {"project": "nnlab"}
        wandb.init(**target, job_type="tsne" if "id" not in target else None, mode=wandb_mode())
        started = True
        if "id" in target:
            line = f"W&B: logged {key} into the checkpoint's own run {wandb.run.id} ({target['project']})"
        else:
            why = f"no {WANDB_ID_FILE} beside {ckpt}" if ckpt else "no checkpoint"
            line = f"W&B: logged {key} into a new run {wandb.run.id} ({why})"
    else:
        line = f"W&B: logged {key} into the active run {getattr(wandb.run, 'id', '')}".rstrip()
    try:
        wandb.log({key: wandb.Image(str(path), caption=caption)})
    finally:
        if started:
            wandb.finish()
    return line
