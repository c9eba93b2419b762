"""``nnlab train`` and ``nnlab eval`` (and ``python train.py`` / ``python eval.py``): the Hydra apps.

Hydra composes ``conf/<train|eval>.yaml`` with the command line. Where Hydra itself refuses an override (a
key that is not in the config, an option a group does not have, a line it cannot parse), nnlab answers in
its own form: one ``error:`` line naming the nearest valid key or the group's options, exit code 2.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from nnlab.cli.args import nearest
from nnlab.utils.errors import ConfigError


def conf_dir() -> Path:
    """The ``conf/`` of this checkout (nnlab is installed from a clone: ``pip install -e .``)."""
    candidates = [Path(os.environ["PROJECT_ROOT"]) / "conf"] if os.environ.get("PROJECT_ROOT") else []
    candidates.append(Path(__file__).resolve().parents[3] / "conf")
    for c in candidates:
        if (c / "train.yaml").is_file():
            return c
    raise ConfigError(
        f"nnlab's configs were not found (looked in {', '.join(map(str, candidates))}); install nnlab from a clone "
        "with `pip install -e .`, or set PROJECT_ROOT to the clone"
    )


def prepare_environment(root: Path) -> None:
    """Process-wide settings that must exist before torch is imported."""
    os.environ.setdefault("PROJECT_ROOT", str(root))
    # The git-ignored .env first: W&B, Hydra's ${oc.env:...} and everything below read the environment.
    from nnlab.utils.env import load_env

    load_env()
    # OpenMP threads that spin while waiting turn any other load on a small CPU box into a 4-20x slowdown
    # (measured: digits default 161 s spinning vs 37 s passive on a loaded 2-core machine).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "logs" / ".inductor"))


def _train_task(cfg):
    from nnlab.cli.schema import validate
    from nnlab.train import main

    return main(cfg, lambda c: validate(c, "train"))


def _eval_task(cfg):
    from nnlab.cli.schema import validate
    from nnlab.evaluate import main

    return main(cfg, lambda c: validate(c, "eval"))


# Hydra's flags that only print or inspect (no run, nothing to validate); -m/--multirun and -r/--run do run.
_RUN_FLAGS = {"-m", "--multirun", "-r", "--run"}


TASKS = {"train": _train_task, "eval": _eval_task}


def _config_keys(config_name: str, overrides: Sequence[str]) -> list[str]:
    """Every dotted key of the config composed with the group choices among ``overrides`` (what a key
    override may name), without resolving interpolations."""
    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig, ListConfig

    groups = [o for o in overrides if "=" in o and "." not in o.split("=", 1)[0].lstrip("+~")]
    for attempt in (groups, []):
        try:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
                cfg = compose(config_name=config_name, overrides=[g for g in attempt if "," not in g])
            break
        except Exception:  # a bad group choice among them: fall back to the defaults
            cfg = None
    if cfg is None:
        return []
    keys: list[str] = []

    def walk(node, prefix: str) -> None:
        for k in node.keys() if isinstance(node, DictConfig) else []:
            path = f"{prefix}{k}"
            keys.append(path)
            child = node._get_node(k)
            if isinstance(child, DictConfig) and not isinstance(child, ListConfig):
                walk(child, f"{path}.")

    walk(cfg, "")
    return keys


def _options(group: str) -> list[str]:
    d = conf_dir() / group
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def explain(exc: BaseException, config_name: str, overrides: Sequence[str]) -> str | None:
    """One line for an override Hydra refused, or None when ``exc`` is not such a refusal."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    text = str(exc)
    cmd = f"nnlab {config_name}"
    if isinstance(exc, MissingConfigException) or "Could not find '" in text:
        m = re.search(r"Could not (?:find|load) '([^']+)/([^'/]+)'", text)
        if m:
            group, value = m.group(1), m.group(2)
            if group == "family" and not any(o.split("=", 1)[0].lstrip("+~") == "family" for o in overrides):
                # chosen by `family: ${model}` in train.yaml, not by the user
                return (
                    f"model={value} has no conf/family/{value}.yaml, which names the data and trainer settings it "
                    f"trains with; add one (e.g. `defaults: [text]`, see conf/family/), or give family=image|text|lm"
                )
            options = _options(group)
            guess = nearest(value, options)
            hint = f"did you mean {group}={guess}? " if guess else ""
            return f"{group}={value} is not an option of {group}; {hint}choose one of: {', '.join(options)}"
        return text.strip().splitlines()[0]
    if isinstance(exc, OverrideParseException):
        return f"cannot parse the override: {text.strip().splitlines()[0]} (write key=value, see `{cmd} --help`)"
    if isinstance(exc, ConfigCompositionException):
        m = re.search(r"Could not (?:override|append to|delete from) '([^']+)'", text)
        if m:
            key = m.group(1).lstrip("+~")
            valid = _config_keys(config_name, overrides)
            groups = [p.name for p in conf_dir().iterdir() if p.is_dir()]
            if key in groups and key not in valid:
                # a group another command composes (eval's model comes with its checkpoint): no near miss
                why = " (the checkpoint brings its model)" if (config_name, key) == ("eval", "model") else ""
                return f"{key} is not a setting of {cmd}{why}; `{cmd} --cfg job` prints every key"
            guess = nearest(key, [*valid, *groups])
            hint = f"did you mean {guess}?" if guess else f"`{cmd} --cfg job` prints every key"
            return f"{key} is not a config key; {hint} (add a new key with +{key}=...)"
        return text.strip().splitlines()[0]
    return None


def run_app(config_name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> object:
    """Run Hydra app ``config_name`` (``train`` or ``eval``) on ``argv`` (default ``sys.argv[1:]``)."""
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    root = conf_dir().parent
    prepare_environment(root)
    import nnlab.utils.resolvers  # noqa: F401  (registers ${pid:} and ${wandb_mode:} before composing)

    flags = [a for a in argv if a.startswith("-")]
    if all(f in _RUN_FLAGS for f in flags):
        from nnlab.cli.schema import precheck

        try:
            precheck(config_name, [a for a in argv if not a.startswith("-")], multirun=bool(flags and flags != ["-r"]))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=config_name)(TASKS[config_name])
    saved_argv, saved_full = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    # Hydra prints its own (multi-line) report and exits 1 unless HYDRA_FULL_ERROR lets the exception through;
    # the user still gets Hydra's full trace when they asked for it themselves.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    sys.argv = [prog or f"nnlab {config_name}", *argv]
    try:
        return app()
    except Exception as e:
        line = None if saved_full else explain(e, config_name, [a for a in argv if not a.startswith("-")])
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    finally:
        sys.argv = saved_argv
        if saved_full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full
