"""A sweep's jobs as the report reads them: each job's ``metrics.json``, its overrides and Hydra choices, and
the checks of what a user asked to group by."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nnlab.utils.errors import ConfigError, DataError

AGG_METRICS = ("val/acc", "test/acc", "test/f1", "val/ppl", "test/ppl", "val/loss", "test/loss", "wall_s",
               "params", "epoch", "s/epoch", "sent/s")  # fmt: skip
# shown in the tables besides the optimized metric (losses stay in summary.csv), where any job recorded them
SHOWN_METRICS = ("val/acc", "test/acc", "test/f1", "val/ppl", "test/ppl", "params", "epoch", "s/epoch", "sent/s",
                 "wall_s")  # fmt: skip
MINIMIZED = ("loss", "ppl", "wall_s", "params", "s/epoch")
# counts and speeds: the mean without a spread (s/epoch: the median over runs)
PLAIN = ("params", "epoch", "s/epoch", "sent/s")
HEADERS = {"epoch": "epochs", "s/epoch": "train s/epoch", "sent/s": "inference sent/s", "wall_s": "wall s"}
# The sentence models' anchors, in % test accuracy: (the course's target, the published number and its source).
# Published: Kim (2014) CNN-rand; Tai et al. (2015) LSTM (no MR number). fastText's reference is the C++
# model at the same settings (scripts/bench_fasttext.py), not a number of the paper.
TEXT_ANCHORS: dict[tuple[str, str], tuple[float | None, float | None, str]] = {
    ("cnn", "sst2"): (84.0, 82.7, "Kim 2014, CNN-rand"),
    ("cnn", "sst5"): (46.0, 45.0, "Kim 2014, CNN-rand"),
    ("cnn", "mr"): (77.0, 76.1, "Kim 2014, CNN-rand"),
    ("rnn", "sst2"): (85.0, 84.9, "Tai et al. 2015, LSTM"),
    ("rnn", "sst5"): (46.5, 46.4, "Tai et al. 2015, LSTM"),
    ("rnn", "mr"): (77.0, None, ""),
}


@dataclass
class Job:
    name: str
    dir: Path
    record: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"

    def value(self, key: str) -> str:
        """The job's value of ``key``: its override, else its Hydra group choice, else a top-level record
        value (``family``, ``seed``); "" when it has none."""
        if key in self.overrides:
            return self.overrides[key]
        choice = (self.record.get("choices") or {}).get(key)
        if choice is not None:
            return str(choice)
        v = self.record.get(key)
        return "" if v is None or isinstance(v, dict | list) else str(v)

    def metric(self, name: str) -> float:
        """A finished job's number ``name``, NaN when it has none. ``s/epoch`` is the median of the epochs' own
        times (training and validation, kept across resumes) where the history has them, else wall_s over the
        epochs run (which counts only the last attempt of a resumed run, and the test)."""
        if not self.ok:
            return math.nan
        if name == "s/epoch":
            times = [
                r["epoch_s"] for r in self.record.get("history") or [] if isinstance(r.get("epoch_s"), int | float)
            ]
            if times:
                return float(np.median(times))
            wall, epochs = self.record.get("wall_s"), self.record.get("epoch")
            ok = isinstance(wall, int | float) and isinstance(epochs, int | float)
            return float(wall) / max(1, epochs) if ok else math.nan
        v = self.record.get(name)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def _overrides(job_dir: Path, record: dict[str, Any]) -> dict[str, str]:
    items = record.get("overrides")
    if items is None:
        path = job_dir / ".hydra" / "overrides.yaml"
        items = yaml.safe_load(path.read_text()) if path.exists() else []
    out = {}
    for item in items or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _is_job(d: Path) -> bool:
    return (d / ".hydra").is_dir() or (d / "metrics.json").exists()


def _job_dirs(root: Path) -> list[Path]:
    """The run dir itself, else its job dirs, else the job dirs of its sub-dirs (a dir of multiruns)."""
    if _is_job(root):
        return [root]

    def children(d: Path) -> list[Path]:
        subs = [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(subs, key=lambda p: (len(p.name), p.name))

    found = []
    for child in children(root):
        found += [child] if _is_job(child) else [g for g in children(child) if _is_job(g)]
    return found


def load_jobs(sweep_dirs: Path | list[Path]) -> list[Job]:
    """Every job of the sweep dirs; a job without a readable metrics.json is a failed job, not a missing one."""
    roots = [Path(sweep_dirs)] if isinstance(sweep_dirs, str | Path) else [Path(d) for d in sweep_dirs]
    jobs = []
    for root in roots:
        if not root.is_dir():
            raise DataError(f"{root} is not a directory; pass a multirun dir such as logs/train/multiruns/<time>")
        for job_dir in _job_dirs(root):
            try:
                record = json.loads((job_dir / "metrics.json").read_text())
            except FileNotFoundError:
                record = {"status": "failed", "error": "no metrics.json (the job died before finishing)"}
            except (OSError, json.JSONDecodeError) as e:
                record = {"status": "failed", "error": f"unreadable metrics.json: {e}"}
            name = job_dir.name if job_dir == root else str(job_dir.relative_to(root))
            jobs.append(Job(f"{root.name}/{name}" if len(roots) > 1 else name, job_dir, record,
                            _overrides(job_dir, record)))  # fmt: skip
    if not jobs:
        where = ", ".join(map(str, roots))
        raise DataError(
            f"{where} holds no sweep jobs (no <job>/metrics.json or <job>/.hydra); "
            "pass the dir of a multirun, e.g. logs/train/multiruns/<time>"
        )
    return jobs


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs; ``seed`` is what gets averaged over, not a setting."""
    keys = sorted({k for j in jobs for k in j.overrides})
    return [k for k in keys if k != "seed" and len({j.value(k) for j in jobs}) > 1]


def check_keys(jobs: list[Job], by: list[str] | None, across: str | None) -> None:
    """Refuse, in one line, a ``by`` or ``across`` key that no job has."""
    known = sorted({k for j in jobs for k in j.overrides} | {k for j in jobs for k in j.record.get("choices") or {}})
    for name, key in [("by", k) for k in by or []] + ([("across", across)] if across else []):
        if not any(j.value(key) for j in jobs):
            hint = ", ".join(k for k in known if k != "seed" and not k.startswith("hydra/")) or "none"
            raise ConfigError(f"{name}={key}: no job has {key} (swept keys and config groups here: {hint})")


def optimized_metric(jobs: list[Job], metric: str | None) -> tuple[str, str]:
    """The metric to rank by (default: what the jobs optimized) and whether higher or lower is better."""
    names = [j.record.get("optimized_metric") for j in jobs if j.record.get("optimized_metric")]
    recorded = max(set(names), key=names.count) if names else None
    if metric is None:
        present = [m for m in ("val/acc", "val/ppl", "val/loss") if any(m in j.record for j in jobs)]
        metric = recorded or (present[0] if present else "val/acc")
    modes = [j.record.get("optimize_mode") for j in jobs if j.record.get("optimize_mode")]
    if metric == recorded and modes:
        return metric, modes[0]
    return metric, "min" if metric.endswith(MINIMIZED) else "max"
