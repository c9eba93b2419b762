"""Hydra callbacks: the end-of-multirun summary that turns failed jobs into a non-zero exit, and dropping a
job's checkpoints once it has finished."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class MultirunSummary(Callback):
    """After a multirun, count the jobs whose metrics.json says ``failed`` and exit 1 if there are any."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        records = []
        for path in sorted(sweep_dir.glob("*/metrics.json")):
            try:
                records.append((path.parent.name, json.loads(path.read_text())))
            except (OSError, json.JSONDecodeError):
                records.append((path.parent.name, {"status": "failed", "error": "unreadable metrics.json"}))
        failed = [(job, r) for job, r in records if r.get("status") != "ok"]
        print(
            f"multirun: {len(records) - len(failed)} of {len(records)} jobs ok in {sweep_dir}",
            file=sys.stderr,
        )
        for job, r in failed:
            print(
                f"  job {job} failed: {r.get('error', '?')} ({' '.join(r.get('overrides', []))})",
                file=sys.stderr,
            )
        if failed:
            sys.exit(1)


class DropCheckpoints(Callback):
    """After each job, delete its ``checkpoints/*.ckpt``: a dev search of hundreds of runs keeps the metrics
    (metrics.json holds the best epoch's validation scores), not the weights (``experiment=text_dev``)."""

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        out = Path(config.hydra.runtime.output_dir)
        for ckpt in (out / "checkpoints").glob("*.ckpt"):
            ckpt.unlink()
