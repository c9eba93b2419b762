"""Sweep reports of every family: one table and a few plots that say at a glance which setting won.

``nnlab report sweep_dir=DIR`` reads every job's ``metrics.json`` (written by train.py, failed jobs included)
and writes ``summary.csv``, ``summary.md``, ``summary.json``, PNG plots and a self-contained ``report.html``
(into DIR, or ``out``). DIR is a multirun dir, a run dir, or a dir of multirun dirs; several may be given
(``sweep_dir=[A,B]``). Settings are the swept overrides except ``seed`` (or the keys of ``by``: overrides,
Hydra group choices such as ``model`` and ``data``, or top-level record keys); the runs of one setting (seeds,
folds) are aggregated as mean ± std.

Columns appear where the jobs recorded them: accuracy and F1 (classifiers), perplexity (language models),
parameters, epochs, seconds per epoch (``wall_s`` / epochs, validation included; the median over runs, as the
machine's load moves it), wall time, and with ``throughput=true`` inference examples (sentences) per second
of each setting's first best checkpoint. Text settings of a known (model, data) pair get the course's target
and the published number (``TEXT_ANCHORS``). ``across=KEY`` ranks settings by the mean over KEY's values of
the per-value means (a dev search: ``across=data`` scores each configuration on every dev set, as
``experiment=text_dev_cnn`` is read); a setting missing one of KEY's values gets no score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nnlab.report.jobs import TEXT_ANCHORS, Job, check_keys, load_jobs, optimized_metric, swept_keys
from nnlab.report.plots import plot_confusion, plot_learning_curves, plot_metric_by_value, report_html
from nnlab.report.tables import columns, failed_markdown, summarize, summary_json, summary_markdown
from nnlab.utils.errors import ConfigError

__all__ = ["TEXT_ANCHORS", "Job", "load_jobs", "measure_throughput", "summarize", "write_report"]


def measure_throughput(jobs: list[Job], keys: list[str], data_dir: str | None = None) -> dict[str, float]:
    """Inference examples (sentences) per second of each setting's first finished job with a best checkpoint,
    recorded in that job's record as ``sent/s`` (in memory); returns job name -> value."""
    from nnlab.inference import examples_per_second

    measured: dict[str, float] = {}
    seen: set[tuple[str, ...]] = set()
    for j in jobs:
        setting = tuple(j.value(k) for k in keys)
        ckpt = j.dir / "checkpoints" / "best.ckpt"
        if not j.ok or setting in seen or not ckpt.is_file():
            continue
        seen.add(setting)
        j.record["sent/s"] = measured[j.name] = examples_per_second(ckpt, data_dir)
    return measured


def write_report(sweep_dir: Path | list[Path], metric: str | None = None, by: list[str] | None = None,
                 across: str | None = None, percent: bool = False, throughput: bool = False,
                 data_dir: str | None = None, out: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Write summary.csv, summary.md, summary.json, the plots and report.html into ``out`` (default: the one
    sweep dir); return what was written."""
    dirs = [Path(sweep_dir)] if isinstance(sweep_dir, str | Path) else [Path(d) for d in sweep_dir]
    if out is None and len(dirs) > 1:
        raise ConfigError(f"{len(dirs)} sweep dirs: give out=DIR for the report's files")
    out = Path(out or dirs[0])
    jobs = load_jobs(dirs)
    check_keys(jobs, by, across)
    metric, mode = optimized_metric(jobs, metric)
    keys = [k for k in (swept_keys(jobs) if by is None else by) if k != across]
    if throughput:
        measure_throughput(jobs, keys, data_dir)
    summary = summarize(jobs, metric, mode, keys, across)
    out.mkdir(parents=True, exist_ok=True)
    summary.drop(columns=["seeds"]).to_csv(out / "summary.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary_json(summary, jobs, keys, metric, mode, across), indent=1))
    table = summary_markdown(summary, keys, metric, across, percent)
    failed = [j for j in jobs if not j.ok]
    ranked = f"the mean of {metric} over {across}" if across else metric
    name = dirs[0].name if len(dirs) == 1 else ", ".join(d.name for d in dirs)
    md = f"# Sweep {name}\n\n{len(jobs)} jobs, {len(failed)} failed; sorted by {ranked} ({mode}).\n\n{table}"
    (out / "summary.md").write_text(md + failed_markdown(failed))
    plot_keys = keys + ([across] if across else [])
    images = plot_metric_by_value(jobs, plot_keys, metric, out)
    images += [p for p in (plot_learning_curves(jobs, summary, keys, metric, out),
                           plot_confusion(jobs, metric, mode, out)) if p is not None]  # fmt: skip
    title = f"nnlab sweep {name}: {len(jobs)} jobs, {len(failed)} failed"
    cols = columns(summary, keys, metric, across, percent)
    (out / "report.html").write_text(report_html(title, summary, cols, metric, keys, failed, images))
    return {"jobs": len(jobs), "failed": len(failed), "metric": metric, "mode": mode, "keys": keys,
            "summary": out / "summary.md", "json": out / "summary.json", "html": out / "report.html",
            "images": images, "table": md + failed_markdown(failed)}  # fmt: skip
