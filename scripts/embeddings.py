"""`python scripts/embeddings.py key=value ...` is `nnlab embeddings key=value ...` (see `nnlab embeddings --help`)."""

from nnlab.cli import script_main

if __name__ == "__main__":
    script_main("embeddings")
