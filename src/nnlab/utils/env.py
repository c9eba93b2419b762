"""The git-ignored ``.env`` (``WANDB_API_KEY=...``, ``DATA_DIR=...``), loaded before anything reads the environment.

python-dotenv's own rules: the nearest ``.env`` from the working directory upwards, then the project root's;
variables already set in the environment win over both. Values are never logged or written anywhere; they only
reach ``os.environ`` (W&B reads its key there, Hydra's ``${oc.env:...}`` its paths).
"""

from __future__ import annotations

import os
from pathlib import Path


def load_env(root: str | os.PathLike | None = None) -> list[Path]:
    """Load ``.env`` files into ``os.environ`` without overriding what is set; returns the files read."""
    from dotenv import find_dotenv, load_dotenv

    candidates = [find_dotenv(usecwd=True)]
    root = root or os.environ.get("PROJECT_ROOT")
    if root:
        candidates.append(str(Path(root) / ".env"))
    loaded: list[Path] = []
    for c in candidates:
        path = Path(c).resolve() if c else None
        if path is not None and path.is_file() and path not in loaded:
            load_dotenv(path, override=False)
            loaded.append(path)
    return loaded
