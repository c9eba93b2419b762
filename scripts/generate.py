"""`python scripts/generate.py key=value ...` is `nnlab generate key=value ...` (see `nnlab generate --help`)."""

from nnlab.cli import script_main

if __name__ == "__main__":
    script_main("generate")
