"""The typed schema of train/eval configs: one validation pass before any work.

The same ``Key`` as the commands' arguments (type, range, choices), named by a glob over dotted config paths:
``model.*dropout*`` covers every dropout rate of every model. A value that breaks its rule is refused in one line
naming the key, the value and the valid range, before Hydra creates the run dir, data is read or a model is
built. Keys no rule names are left to the component that takes them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnlab.cli.args import REQUIRED, Key, _typed, at_least, check_value, existing_file, positive
from nnlab.utils.errors import ConfigError
from nnlab.utils.run import HYDRA_BACKUP, finished_record


def rate(v: float) -> str | None:
    return None if 0.0 <= v < 1.0 else "must be in [0, 1)"


def open_unit(v: float) -> str | None:
    return None if 0.0 < v < 1.0 else "must be in (0, 1)"


def unit(v: float) -> str | None:
    return None if 0.0 <= v <= 1.0 else "must be in [0, 1]"


def seed_range(v: int) -> str | None:
    return None if 0 <= v < 2**32 else "must be in [0, 2**32)"


def epochs(v: int) -> str | None:
    return None if v >= 1 or v == -1 else "must be >= 1 (or -1: no limit)"


def fold(v: int) -> str | None:
    return None if 0 <= v <= 9 else "must be in 0..9 (MR's ten folds)"


# (default None: the key may be null; REQUIRED: it must be set; anything else: set and not null)
COMMON = [
    Key("seed", None, "seed", int, check=seed_range),
    Key("ckpt_path", None, "checkpoint", Path, check=existing_file),
    Key("threads", None, "torch threads", int, check=at_least(1)),
    Key("trainer.max_epochs", None, "epochs", int, check=epochs),
    Key("trainer.min_epochs", None, "epochs", int, check=at_least(0)),
    Key("trainer.max_steps", None, "steps", int, check=at_least(-1)),
    Key("trainer.accumulate_grad_batches", 1, "batches per step", int, check=at_least(1)),
    Key("trainer.gradient_clip_val", None, "clip", float, check=at_least(0)),
    Key("trainer.check_val_every_n_epoch", None, "epochs", int, check=at_least(1)),
    Key("trainer.log_every_n_steps", None, "steps", int, check=at_least(1)),
    Key("trainer.deterministic", None, "deterministic", bool),
    Key("data.batch_size", 1, "batch size", int, check=at_least(1)),
    Key("data.eval_batch_size", None, "batch size", int, check=at_least(1)),
    Key("data.phrase_batch_size", None, "batch size", int, check=at_least(1)),
    Key("data.train_subset", None, "subset", int, check=at_least(1)),
    Key("data.val_fraction", 0.1, "fraction", float, check=open_unit),
    Key("data.max_bad_fraction", 0.0, "fraction", float, check=unit),
    Key("data.max_length", None, "tokens", int, check=at_least(1)),
    Key("data.min_freq", 1, "count", int, check=at_least(1)),
    Key("data.max_size", None, "words", int, check=at_least(1)),
    Key("data.max_vocab", None, "words", int, check=at_least(1)),
    Key("data.bptt", 1, "steps", int, check=at_least(1)),
    Key("data.fold", 0, "fold", int, check=fold),
    Key(
        "data.phrases",
        False,
        "phrases",
        check=lambda v: None if v in (True, False, "auto") else "must be true, false or auto",
    ),
    Key("model.optimizer.lr", 1.0, "learning rate", float, check=positive),
    Key("model.lr", 1.0, "learning rate", float, check=positive),
    Key("model.optimizer.weight_decay", 0.0, "weight decay", float, check=at_least(0)),
    Key("model.optimizer.momentum", 0.0, "momentum", float, check=rate),
    Key("model.ema", None, "ema decay", float, check=open_unit),
    Key("model.locked_dropout", False, "variational dropout switch", bool),  # before the rates' glob
    Key("model.*dropout*", None, "dropout", float, check=rate),
    Key("model.dropoute", None, "dropout", float, check=rate),
    Key("model.wdrop", None, "dropout", float, check=rate),
    Key("callbacks.early_stopping.patience", 0, "epochs", int, check=at_least(0)),
]
TRAIN = [
    Key("resume", None, "resume", choices=("auto",)),
    Key("train", True, "fit", bool),
    Key("test", True, "test", bool),
    *COMMON,
]
EVAL = [Key("ckpt_path", REQUIRED, "checkpoint", Path, check=existing_file), *COMMON]
SCHEMAS = {"train": TRAIN, "eval": EVAL}


def _leaves(node: DictConfig, prefix: str = "") -> Iterator[str]:
    for k in node.keys():
        path = f"{prefix}{k}"
        child = node._get_node(k)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            yield from _leaves(child, f"{path}.")
        else:
            yield path


def _value(cfg: DictConfig, path: str) -> tuple[bool, Any]:
    """(whether it could be read, the value): interpolations that need a running Hydra app are skipped."""
    try:
        return True, OmegaConf.select(cfg, path, throw_on_missing=True)
    except Exception as e:  # MissingMandatoryValue, or a resolver that needs HydraConfig
        return ("Missing mandatory value" in str(e) or type(e).__name__ == "MissingMandatoryValue"), "???"


def validate(cfg: DictConfig, schema: str) -> None:
    """Refuse (ConfigError, one line) the first value of ``cfg`` that breaks the ``schema`` rules."""
    rules = SCHEMAS[schema]
    for rule in rules:
        if rule.required and "*" not in rule.name:
            readable, value = _value(cfg, rule.name)
            if value is None or value == "???":
                raise ConfigError(f"{rule.name} is required: give {rule.name}=... (see `nnlab {schema} --help`)")
    for path in _leaves(cfg):
        if path.startswith("hydra."):
            continue
        rule = next((r for r in rules if fnmatchcase(path, r.name)), None)
        if rule is None:
            continue
        readable, value = _value(cfg, path)
        if not readable or value is None:
            if readable and value is None and rule.default is not None:
                raise ConfigError(f"{path}=null is not allowed; give a value")
            continue
        if value == "???":
            continue
        typed = _typed(Key(path, rule.default, rule.help, rule.type), value)
        check_value(rule, path, typed, value)


MAX_SWEEP_CHECKS = 40


def precheck(config_name: str, overrides: Sequence[str], multirun: bool) -> None:
    """Compose what Hydra will run (the first job of a sweep) and validate it, before Hydra touches any dir.

    Composition errors are left to the Hydra app, which explains them in one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nnlab.cli.hydra_app import conf_dir

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        base: list[str] = []
        sweeps: list[tuple[int, str, list[str]]] = []
        for i, o in enumerate(parsed):
            if o.is_sweep_override():
                values = list(o.sweep_string_iterator())
                if not values:
                    return
                sweeps.append((i, o.get_key_element(), values))
                base.append(f"{o.get_key_element()}={values[0]}")
            else:
                base.append(o.input_line)
    except Exception:
        return
    # every value of every swept key, the others at their first value: a bad value is refused before any job
    # runs (at most MAX_SWEEP_CHECKS compositions of ~0.15 s)
    variants = [base] + [base[:i] + [f"{key}={v}"] + base[i + 1 :] for i, key, values in sweeps for v in values[1:]][
        :MAX_SWEEP_CHECKS
    ]
    cfg = None
    for variant in variants:
        try:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
                composed = compose(config_name=config_name, overrides=variant, return_hydra_config=True)
        except Exception:
            if variant is base:
                return  # Hydra itself refuses these overrides, and explains them
            continue
        validate(composed, config_name)
        cfg = cfg if cfg is not None else composed
    if multirun:
        return
    try:
        run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).expanduser()
    except Exception:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"hydra.run.dir={run_dir} is a file; give a directory (new, or a run's dir to resume it)")
    if finished_record(run_dir) is None:
        return
    if config_name == "eval":
        raise ConfigError(f"hydra.run.dir={run_dir} holds a finished run; an evaluation writes a dir of its own")
    if cfg.get("resume") != "auto" and not cfg.get("ckpt_path"):
        raise ConfigError(
            f"hydra.run.dir={run_dir} holds a finished run; choose a new dir, or add resume=auto to continue it"
        )
    # Hydra rewrites .hydra/ as the job starts; should this attempt fail before training, nnlab.train puts the
    # finished run's copy back (and drops it once training really continues)
    if (run_dir / ".hydra").is_dir():
        shutil.copytree(run_dir / ".hydra", run_dir / HYDRA_BACKUP, dirs_exist_ok=True)
