"""Train a model: `python train.py [group=option ...] [key=value ...]`, the same as `nnlab train ...`."""

from nnlab.cli.hydra_app import run_app

if __name__ == "__main__":
    run_app("train")
