"""Shared fixtures: offline environment, Hydra composition and a train.py/eval.py runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = Path(os.environ.get("DATA_DIR", ROOT.parent / "shared" / "data")).resolve()

# Offline by construction: W&B and the HF hub fail fast instead of retrying.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["PROJECT_ROOT"] = str(ROOT)
# The test models are tiny: one thread is as fast, and several spin-waiting OpenMP threads on a shared
# 2-core machine are up to 20x slower. Subprocesses inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import nnlab.utils.resolvers  # noqa: E402,F401

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# Quick, quiet settings for runs in tests: no rich widgets, small data, no W&B unless a test asks.
FAST = [
    "trainer.max_epochs=1",
    "callbacks=minimal",
    "logger=csv",
    "extras.print_config=false",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
]


def compose_cfg(
    config_name: str = "train", overrides: list[str] | None = None, output_dir: Path | None = None
) -> DictConfig:
    """Compose a config as train.py would, with ``paths.output_dir`` pointing at ``output_dir``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [])
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


class CLIResult:
    def __init__(self, proc: subprocess.CompletedProcess, run_dir: Path):
        self.rc, self.stdout, self.stderr, self.run_dir = proc.returncode, proc.stdout, proc.stderr, run_dir

    @property
    def metrics(self) -> dict:
        return json.loads((self.run_dir / "metrics.json").read_text())

    def __repr__(self) -> str:
        return f"rc={self.rc}\n--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"


def run_cli(
    script: str,
    *overrides: str,
    run_dir: Path | None = None,
    multirun: bool = False,
    timeout: int = 300,
    env: dict | None = None,
) -> CLIResult:
    """Run ``python <script> overrides...`` in a subprocess, as a user would."""
    args = [sys.executable, str(ROOT / script)]
    if multirun:
        args.append("-m")
    args += list(overrides)
    if run_dir is not None:
        args.append(f"hydra.{'sweep' if multirun else 'run'}.dir={run_dir}")
    env = {**os.environ, **(env or {})}
    # This checkout's src/ first, also where a test sets PYTHONPATH (fault injection) or the venv has
    # another checkout installed: the code under test is the code next to these tests.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return CLIResult(proc, run_dir or Path("."))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set DATA_DIR)")
    return SHARED_DATA


# Fashion-MNIST comes from Debian's dataset-fashion-mnist (CI installs it); a bare machine skips these tests.
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_DIR.is_dir() and not os.environ.get("CI"),
    reason="Fashion-MNIST absent: apt-get install dataset-fashion-mnist",
)


def make_image_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (8, 8), mode: str = "L") -> Path:
    """``root/<class>/<i>.png``: ``classes`` maps a class name to its number of images, each class a brightness."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, (name, n) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            base = 40 + 160 * c / max(1, len(classes) - 1)
            shape = (size[0], size[1]) if mode == "L" else (size[0], size[1], 3)
            pixels = np.clip(base + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode=None).convert(mode).save(root / name / f"{i}.png")
    return root
