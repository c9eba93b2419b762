"""The ``nnlab`` command: ``nnlab <command> key=value ...``, one convention for every command.

    nnlab train model=rnn data=sst2 seed=1        # Hydra app: conf/train.yaml (also `python train.py ...`)
    nnlab eval ckpt_path=.../best.ckpt             # Hydra app: conf/eval.yaml (also `python eval.py ...`)
    nnlab predict ckpt_path=... "a gripping film"  # and generate, embeddings, tsne, report
    nnlab <command> --help                         # the command's keys

Commands load lazily, so ``nnlab --help`` and a refused argument answer before torch is imported.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from nnlab.utils.errors import NnlabError

# command -> (module with COMMAND and run(args), one-line summary); train/eval are Hydra apps
COMMANDS: dict[str, tuple[str | None, str]] = {
    "train": (None, "train a model (Hydra: group=option key=value ..., -m for sweeps)"),
    "eval": (None, "evaluate a checkpoint on a test split (Hydra: ckpt_path=... [data=...])"),
    "predict": ("nnlab.cli.predict", "classify sentences with a text checkpoint"),
    "generate": ("nnlab.cli.generate", "sample text from a language-model checkpoint"),
    "embeddings": ("nnlab.cli.embeddings", "export a language model's word embeddings (npz, tsv)"),
    "tsne": ("nnlab.cli.tsne", "t-SNE plot of a dataset's inputs or a checkpoint's learned features"),
    "report": ("nnlab.cli.report", "summarize a sweep: table, plots, report.html, W&B Report"),
}


def usage() -> str:
    width = max(map(len, COMMANDS)) + 2
    rows = "\n".join(f"  {name:<{width}}{summary}" for name, (_, summary) in COMMANDS.items())
    return (
        "usage: nnlab <command> key=value ...\n\ncommands:\n"
        f"{rows}\n\n`nnlab <command> --help` lists a command's keys (train/eval: Hydra's groups and config)."
    )


def run_command(name: str, argv: Sequence[str]) -> object:
    """Parse ``argv`` for command ``name`` and run it; NnlabError propagates (one line)."""
    from nnlab.cli.args import parse

    module = importlib.import_module(COMMANDS[name][0])
    return module.run(parse(module.COMMAND, argv))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from nnlab.cli.args import nearest

        guess = nearest(name, list(COMMANDS))
        hint = f"did you mean `nnlab {guess}`? " if guess else ""
        print(f"error: {name!r} is not an nnlab command; {hint}choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if COMMANDS[name][0] is None:
        from nnlab.cli.hydra_app import run_app

        run_app(name, rest)
        return 0
    if any(a in ("-h", "--help") for a in rest):
        print(importlib.import_module(COMMANDS[name][0]).COMMAND.usage())
        return 0
    try:
        run_command(name, rest)
    except NnlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


def script_main(name: str) -> None:
    """``scripts/<name>.py``: the same command as ``nnlab <name>``."""
    sys.exit(main([name, *sys.argv[1:]]))
