"""scripts/bench_fasttext.py end to end on SST-2 (shared data): the table issue 17's rules are read from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PEER = Path(os.environ.get("FASTTEXT_PYTHON", ROOT / ".venv-peers" / "bin" / "python"))


def _bench(shared_data: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DATA_DIR": str(shared_data)}
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_fasttext.py"), "datasets=[sst2]", "repeats=1", *args]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_bench_fasttext_without_its_peer_says_so_in_one_line(shared_data, tmp_path):
    proc = _bench(shared_data, tmp_path, "ngrams=[1]", f"peer_python={tmp_path / 'no-python'}")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "could not start" in errors[0]


@pytest.mark.slow
@pytest.mark.skipif(not PEER.exists(), reason=f"no C++ fastText peer at {PEER} (make bench-peers, FASTTEXT_PYTHON)")
def test_bench_fasttext_table_has_both_thread_counts_the_load_and_the_rules(shared_data, tmp_path):
    proc = _bench(shared_data, tmp_path, f"peer_python={PEER}", "threads=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "threads: ours 2 (C kernel, Hogwild; torch 1), C++ 2 (Hogwild)" in proc.stdout
    report = json.loads((tmp_path / "bench_fasttext.json").read_text())
    assert report["settings"]["threads"] == 2 and len(report["rows"]) == 2
    for row in report["rows"]:
        assert {"ours_acc", "theirs_acc", "acc_diff", "time_ratio", "load", "rules_met"} <= set(row)
        assert row["ours_acc"] > 70 and row["theirs_acc"] > 70  # both learned SST-2
