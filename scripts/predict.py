"""`python scripts/predict.py key=value ...` is `nnlab predict key=value ...` (see `nnlab predict --help`)."""

from nnlab.cli import script_main

if __name__ == "__main__":
    script_main("predict")
