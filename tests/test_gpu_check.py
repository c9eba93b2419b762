"""scripts/gpu_check.sh (issue 21's GPU checks) is ready for the day a GPU is lent: its commands are the
required ones, and its CPU dry run (trainer.max_epochs=1, tiny limits) runs every step and writes the JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash")


def _env():
    return {**os.environ, "PYTHON": sys.executable}


def test_commands_are_the_issues(tmp_path):
    out = subprocess.run(
        ["bash", str(SCRIPT), "--print", str(tmp_path)], capture_output=True, text=True, check=True, env=_env()
    ).stdout.splitlines()
    ptb, text, report, bench = out
    assert "experiment=ptb_medium" in ptb and "trainer=gpu" in ptb and "max_epochs" not in ptb
    assert "model=cnn,rnn,fasttext" in text and "trainer=gpu" in text
    assert "scripts/report.py" in report and "by=[model,data]" in report and "throughput=true" in report
    assert "bench_ops.py" in bench and "device=cuda" in bench and str(tmp_path) in bench


def test_needs_a_gpu_without_dry_run(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the real run is not a unit test")
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, env=_env())
    assert r.returncode == 2 and "no CUDA device" in r.stderr


@pytest.mark.slow
def test_cpu_dry_run_writes_every_json(tmp_path):
    """~100 s on 2 cores: three short trainings (PTB medium for 2 batches, three sentence models), the report
    and one bench row."""
    data = os.environ.get("DATA_DIR", str(ROOT / "data"))
    if not (Path(data) / "ptb").exists() or not (Path(data) / "sst").exists():
        pytest.skip(f"PTB / SST not under {data}")
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run", str(tmp_path)], capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "dry" and all(s["rc"] == 0 for s in summary["steps"].values())
    assert summary["ptb_medium"]["test_ppl"] > 0
    for name in ("ptb_medium.json", "text_report/summary.json", "bench_ops_cuda.json", "summary.json"):
        assert (tmp_path / name).is_file(), name
