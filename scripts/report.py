"""`python scripts/report.py key=value ...` is `nnlab report key=value ...` (see `nnlab report --help`)."""

from nnlab.cli import script_main

if __name__ == "__main__":
    script_main("report")
