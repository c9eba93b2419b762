"""Checkpoints as plain data: load safely, check what they belong to, rebuild their model."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as L
import torch

from nnlab.utils.errors import CheckpointError
from nnlab.utils.run import build

CHECKPOINT_KEY = "nnlab"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one clear line for a missing, broken or foreign file."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; pass a file, e.g. {path}/checkpoints/best.ckpt")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass ckpt_path=<run dir>/checkpoints/best.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Weights only load failed" in str(e):  # torch's explanation runs to a page; the gist is one line
            raise CheckpointError(
                f"checkpoint {path} cannot be read: it holds pickled Python objects, not plain data "
                "(nnlab loads weights_only); use a checkpoint written by nnlab"
            ) from e
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({first[:160]}); it is truncated, tampered with or not a "
            "checkpoint: use another one (e.g. last.ckpt) or retrain"
        ) from e
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path} is not an nnlab checkpoint (no '{CHECKPOINT_KEY}' entry); train it with train.py"
        )
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> L.LightningModule:
    """Rebuild the checkpoint's LightningModule from its stored config and load its weights (eval mode)."""
    info = ckpt[CHECKPOINT_KEY]
    model = build(info["config"]["model"], **info["model_kwargs"])
    load_weights(model, ckpt)
    return model.eval()


def check_fits(ckpt: dict[str, Any], family: str | None, model_kwargs: dict[str, Any], data_name: str) -> None:
    """Refuse a checkpoint of another model family, or one trained with other labels or another vocabulary."""
    info = ckpt[CHECKPOINT_KEY]
    trained_family = info.get("family")
    if family is not None and trained_family is not None and trained_family != family:
        raise CheckpointError(
            f"the checkpoint holds model {trained_family}, but this run builds {family}; "
            f"pass a checkpoint of the same model family (or drop ckpt_path to start fresh)"
        )
    trained = info.get("model_kwargs", {})
    for key in ("class_names", "num_classes", "label_groups", "train_classes", "vocab", "input_shape"):
        if key in trained and key in model_kwargs and trained[key] != model_kwargs[key]:
            raise CheckpointError(
                f"checkpoint of {trained_family} was trained with another {key} than data={data_name} provides"
                f" ({_difference(trained[key], model_kwargs[key])}); use it with the data (and vocabulary settings)"
                " it was trained on"
            )


def _difference(ckpt: Any, data: Any) -> str:
    """Where two stored values first differ, in a few words (checkpoint side first)."""
    if isinstance(ckpt, dict) and isinstance(data, dict):
        key = next((k for k in ckpt if ckpt.get(k) != data.get(k)), None)
        key = key if key is not None else next(k for k in data if k not in ckpt)
        return f"{key}: {_difference(ckpt.get(key), data.get(key))}"
    if isinstance(ckpt, list | tuple) and isinstance(data, list | tuple):
        i = next((i for i, (a, b) in enumerate(zip(ckpt, data)) if a != b), min(len(ckpt), len(data)))
        first = f"{ckpt[i]!r} vs {data[i]!r}" if i < min(len(ckpt), len(data)) else "one is longer"
        return f"{len(ckpt)} vs {len(data)} entries, first difference at {i}: {first}"
    return f"{ckpt!r} vs {data!r}"[:120]


def load_weights(model: L.LightningModule, ckpt: dict[str, Any]) -> None:
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(
            f"checkpoint weights do not fit model {ckpt[CHECKPOINT_KEY].get('family')} ({why[:200]}); "
            "build the model with the settings the checkpoint was trained with"
        ) from e
