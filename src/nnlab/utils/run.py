"""Run artifacts and console glue shared by train.py, eval.py and scripts."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def to_plain(cfg: DictConfig | Mapping) -> dict:
    """The resolved config as plain Python data (what checkpoints and loggers store)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    return dict(cfg)


def local_rank() -> int:
    """This process's rank on its node, as the launchers Lightning supports set it (0 when not distributed)."""
    for var in ("LOCAL_RANK", "SLURM_LOCALID"):
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (a reader never sees half a file), NaN/inf as null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(dict(data)), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def build(conf: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with plain containers, re-raising our one-line errors unwrapped.

    Hydra wraps whatever a constructor raises in ``InstantiationException`` (with a multi-line message);
    a user error (``NnlabError``) must reach the entry point as itself.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from nnlab.utils.errors import NnlabError

    try:
        # _convert_="all": constructors get plain lists/dicts, so checkpoints stay weights_only-loadable.
        return instantiate(conf, _convert_="all", **kwargs)
    except InstantiationException as e:
        cause: BaseException | None = e.__cause__
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, NnlabError):
            raise cause from None
        raise


def one_line(exc: BaseException) -> str:
    """An exception as one line: our own errors carry their message, others are prefixed with their type."""
    from nnlab.utils.errors import NnlabError

    msg = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split()) or type(exc).__name__
    return msg if isinstance(exc, NnlabError) else f"{type(exc).__name__}: {msg}"


def log_traceback_to_files(exc: BaseException) -> None:
    """Put the full traceback into the run's log file(s) only, not on the console."""
    record = logging.LogRecord(
        "nnlab", logging.ERROR, __file__, 0,
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(), None, None,
    )  # fmt: skip
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def report_error(exc: BaseException) -> str:
    """The traceback goes to the log file; one line goes to stderr. Returns that line."""
    line = one_line(exc)
    log_traceback_to_files(exc)
    print(f"error: {line}", file=sys.stderr, flush=True)
    return line


def print_config_tree(
    cfg: DictConfig, order: tuple[str, ...] = ("data", "model", "callbacks", "logger", "trainer")
) -> None:
    """Print the resolved config as a rich tree, the main groups first."""
    import rich
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    rich.print(tree)


# where `nnlab train ... resume=auto` keeps a finished run's .hydra/ while an attempt to continue it starts
HYDRA_BACKUP = ".hydra.finished"


def finished_record(out_dir: Path) -> dict[str, Any] | None:
    """The metrics.json of a run that finished in ``out_dir`` (``status: ok``), else None."""
    try:
        record = json.loads((out_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") == "ok" else None
