"""Evaluate a checkpoint on the test split: `python eval.py ckpt_path=PATH [data=...]` (= `nnlab eval ...`)."""

from nnlab.cli.hydra_app import run_app

if __name__ == "__main__":
    run_app("eval")
