"""Evaluate a checkpoint on the test split: `python eval.py ckpt_path=PATH [data=...]`."""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))
# The git-ignored .env first: everything below (and W&B, and ${oc.env:...}) reads the environment.
from nnlab.utils.env import load_env  # noqa: E402

load_env()
# OpenMP threads that spin while waiting turn any other load on a small CPU box into a 4-20x slowdown
# (measured: digits default 161 s spinning vs 37 s passive on a loaded 2-core machine). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import nnlab.utils.resolvers  # noqa: E402,F401  (registers ${pid:} and ${wandb_mode:})
from nnlab.evaluate import main as eval_main  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    return eval_main(cfg)


if __name__ == "__main__":
    main()
