"""`python scripts/tsne.py key=value ...` is `nnlab tsne key=value ...` (see `nnlab tsne --help`)."""

from nnlab.cli import script_main

if __name__ == "__main__":
    script_main("tsne")
