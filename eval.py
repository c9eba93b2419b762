"""Evaluate a checkpoint on the test split: `python eval.py ckpt_path=PATH [data=...]`."""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import nnlab.utils.resolvers  # noqa: E402,F401  (registers ${pid:} and ${wandb_mode:})
from nnlab.evaluate import main as eval_main  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    return eval_main(cfg)


if __name__ == "__main__":
    main()
