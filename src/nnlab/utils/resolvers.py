"""OmegaConf resolvers used by conf/: registered once, on import, before Hydra composes anything."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from omegaconf import OmegaConf

from nnlab.utils.env import load_env

# Scripts that import this (report.py) see the .env's W&B key too; train.py and eval.py loaded it already.
load_env()


def wandb_mode() -> str:
    """``offline`` unless a W&B login exists; ``WANDB_MODE`` in the environment wins.

    Checking for credentials up front is what keeps W&B from ever prompting or blocking a run.
    """
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        rc = netrc.netrc(os.environ.get("NETRC", Path.home() / ".netrc"))
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
        if rc.authenticators(host):
            return "online"
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


def register() -> None:
    OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("wandb_mode", wandb_mode, replace=True)


register()
