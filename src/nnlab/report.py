"""Sweep reports: one table and a few plots that say at a glance which setting won.

``nnlab report sweep_dir=SWEEP_DIR`` reads every job's ``metrics.json`` (written by train.py, failed jobs
included) and writes into SWEEP_DIR: ``summary.csv``, ``summary.md``, PNG plots and a self-contained
``report.html``. Settings are the swept overrides except ``seed``; seeds of one setting are aggregated as
mean ± std.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from nnlab.utils.errors import DataError

AGG_METRICS = ("val/acc", "test/acc", "test/f1", "val/ppl", "test/ppl", "val/loss", "test/loss", "wall_s")
# shown in the tables besides the optimized metric (losses stay in summary.csv)
SHOWN_METRICS = ("val/acc", "test/acc", "test/f1", "val/ppl", "test/ppl", "wall_s")
MINIMIZED = ("loss", "ppl", "wall_s")


@dataclass
class Job:
    name: str
    dir: Path
    record: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"


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


def load_jobs(sweep_dir: Path) -> list[Job]:
    """Every job of a multirun dir; a job without a readable metrics.json is a failed job, not a missing one."""
    if not sweep_dir.is_dir():
        raise DataError(f"{sweep_dir} is not a directory; pass a multirun dir such as logs/train/multiruns/<time>")
    jobs = []
    for job_dir in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name)):
        if not (job_dir / ".hydra").is_dir() and not (job_dir / "metrics.json").exists():
            continue
        try:
            record = json.loads((job_dir / "metrics.json").read_text())
        except FileNotFoundError:
            record = {"status": "failed", "error": "no metrics.json (the job died before finishing)"}
        except (OSError, json.JSONDecodeError) as e:
            record = {"status": "failed", "error": f"unreadable metrics.json: {e}"}
        jobs.append(Job(job_dir.name, job_dir, record, _overrides(job_dir, record)))
    if not jobs:
        raise DataError(
            f"{sweep_dir} holds no sweep jobs (no <job>/metrics.json or <job>/.hydra); "
            "pass the dir of a multirun, e.g. logs/train/multiruns/<time>"
        )
    return jobs


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs; ``seed`` is what gets averaged over, not a setting."""
    keys = sorted({k for j in jobs for k in j.overrides})
    return [k for k in keys if k != "seed" and len({j.overrides.get(k) for j in jobs}) > 1]


def optimized_metric(jobs: list[Job], metric: str | None) -> tuple[str, str]:
    if metric is None:
        names = [j.record.get("optimized_metric") for j in jobs if j.record.get("optimized_metric")]
        metric = max(set(names), key=names.count) if names else "val/acc"
    modes = [j.record.get("optimize_mode") for j in jobs if j.record.get("optimize_mode")]
    mode = modes[0] if modes else ("min" if metric.endswith(MINIMIZED) else "max")
    return metric, mode


def summarize(jobs: list[Job], metric: str, mode: str) -> pd.DataFrame:
    """One row per setting: runs, failures, mean and std of each metric, sorted best first (failures last)."""
    keys = swept_keys(jobs)
    rows = []
    for j in jobs:
        row = {k: j.overrides.get(k, "") for k in keys}
        row.update(job=j.name, ok=j.ok, error=j.record.get("error", ""))
        for m in AGG_METRICS:
            v = j.record.get(m)
            row[m] = float(v) if j.ok and isinstance(v, int | float) else math.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    by = keys or (lambda _: "all")
    out = []
    for setting, g in df.groupby(by, sort=False, dropna=False):
        values = setting if isinstance(setting, tuple) else (setting,)
        row = dict(zip(keys, values)) if keys else {"setting": "all"}
        row.update(runs=len(g), failed=int((~g.ok).sum()))
        for m in AGG_METRICS:
            vals = g[m].dropna()
            if len(vals):
                row[f"{m} mean"] = vals.mean()
                row[f"{m} std"] = vals.std(ddof=1) if len(vals) > 1 else 0.0
        row["errors"] = "; ".join(sorted({e for e in g.error if e}))
        out.append(row)
    summary = pd.DataFrame(out)
    col = f"{metric} mean"
    if col not in summary:
        summary[col] = math.nan
    # ties on the metric (common for accuracy on small val sets) are broken by the validation loss
    by, ascending = [col], [mode == "min"]
    if col != "val/loss mean" and "val/loss mean" in summary:
        by, ascending = by + ["val/loss mean"], ascending + [True]
    summary = summary.sort_values(by, ascending=ascending, na_position="last", kind="stable")
    return summary.reset_index(drop=True)


def _fmt(mean: float, std: float, n: int = 2) -> str:
    """``mean ± std``; a single run has no spread to show."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    digits = 4 if abs(mean) < 10 else 2
    return f"{mean:.{digits}f}" if n < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _shown(summary: pd.DataFrame, metric: str) -> list[str]:
    present = [m for m in SHOWN_METRICS if f"{m} mean" in summary and summary[f"{m} mean"].notna().any()]
    return [metric] + [m for m in present if m != metric]


def summary_markdown(summary: pd.DataFrame, keys: list[str], metric: str) -> str:
    metrics = _shown(summary, metric)
    head = (keys or ["setting"]) + ["runs", "failed"] + [f"{m} (mean ± std)" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summary.iterrows():
        cells = [str(r.get(k, "")) for k in keys or ["setting"]] + [str(int(r["runs"])), str(int(r["failed"]))]
        ok = int(r["runs"]) - int(r["failed"])
        cells += [_fmt(r.get(f"{m} mean"), r.get(f"{m} std", 0.0), ok) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
                         "grid.alpha": 0.3, "font.size": 10})  # fmt: skip
    return plt


def plot_metric_by_value(jobs: list[Job], keys: list[str], metric: str, out: Path) -> list[Path]:
    """Per swept key: the metric of each value as bars with std error bars, grouped by a second swept key."""
    plt = _plt()
    ok = [j for j in jobs if j.ok and isinstance(j.record.get(metric), int | float)]
    paths = []
    for key in keys:
        others = [k for k in keys if k != key]
        group_key = others[0] if others else None
        values = sorted({j.overrides.get(key, "") for j in jobs})
        groups = sorted({j.overrides.get(group_key, "") for j in jobs}) if group_key else [""]
        fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(values) * max(1, len(groups)) ** 0.5 + 2), 3.6))
        width = 0.8 / len(groups)
        for gi, g in enumerate(groups):
            means, stds = [], []
            for v in values:
                vals = [j.record[metric] for j in ok if j.overrides.get(key, "") == v
                        and (group_key is None or j.overrides.get(group_key, "") == g)]  # fmt: skip
                means.append(np.mean(vals) if vals else np.nan)
                stds.append(np.std(vals, ddof=1) if len(vals) > 1 else 0.0)
            xs = np.arange(len(values)) + (gi - (len(groups) - 1) / 2) * width
            label = f"{group_key}={g}" if group_key else None
            ax.bar(xs, means, width, yerr=stds, capsize=3, label=label, alpha=0.9)
        ax.set_xticks(np.arange(len(values)), values)
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        finite = [j.record[metric] for j in ok]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = max(1e-3, (hi - lo) * 0.5)
            ax.set_ylim(max(0.0, lo - pad) if metric.endswith(("acc", "f1")) else lo - pad, hi + pad)
        if group_key:
            ax.legend(fontsize=8, frameon=False, ncol=min(4, len(groups)), loc="upper center",
                      bbox_to_anchor=(0.5, -0.18))  # fmt: skip
        ax.set_title(f"{metric} by {key} (mean ± std over seeds)")
        fig.tight_layout()
        path = out / f"plot_{metric.replace('/', '_')}_by_{key.replace('.', '_')}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_learning_curves(
    jobs: list[Job], summary: pd.DataFrame, keys: list[str], metric: str, out: Path
) -> Path | None:
    """Validation metric per epoch of the best and the worst setting (each seed a thin line, mean thick)."""
    plt = _plt()
    ranked = summary[summary[f"{metric} mean"].notna()]
    if ranked.empty:
        return None
    picks = [("best", ranked.iloc[0])] + ([("worst", ranked.iloc[-1])] if len(ranked) > 1 else [])
    curve_metric = metric if metric.startswith("val/") else "val/" + metric.split("/", 1)[-1]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    drawn = False
    for (label, row), color in zip(picks, ("tab:green", "tab:red")):
        members = [j for j in jobs if j.ok and all(j.overrides.get(k, "") == row.get(k, "") for k in keys)]
        curves = [[(h["epoch"], h[curve_metric]) for h in j.record.get("history", []) if curve_metric in h]
                  for j in members]  # fmt: skip
        curves = [c for c in curves if c]
        if not curves:
            continue
        for c in curves:
            ax.plot(*zip(*c), color=color, alpha=0.25, lw=1)
        n = min(len(c) for c in curves)
        mean = np.mean([[v for _, v in c[:n]] for c in curves], axis=0)
        name = ", ".join(f"{k}={row.get(k)}" for k in keys) or "all"
        ax.plot([e for e, _ in curves[0][:n]], mean, color=color, lw=2.2, label=f"{label}: {name}")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel(curve_metric)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("learning curves: best and worst setting")
    fig.tight_layout()
    path = out / "plot_learning_curves.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_confusion(jobs: list[Job], metric: str, mode: str, out: Path) -> Path | None:
    """Row-normalized test confusion matrix of the best single job that recorded one."""
    plt = _plt()
    cands = [j for j in jobs if j.ok and j.record.get("confusion_matrix") and isinstance(j.record.get(metric), float)]
    if not cands:
        return None
    sign = 1.0 if mode == "max" else -1.0
    # same order as the summary: the metric first, then the lower validation loss
    best = max(cands, key=lambda j: (sign * j.record[metric], -j.record.get("val/loss", 0.0)))
    cm = np.asarray(best.record["confusion_matrix"], dtype=float)
    names = best.record.get("class_names") or [str(i) for i in range(len(cm))]
    norm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    size = max(4.0, 0.45 * len(cm) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.grid(False)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if len(cm) <= 20:
        for i in range(len(cm)):
            for k in range(len(cm)):
                if cm[i, k]:
                    ax.text(k, i, int(cm[i, k]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, k] > 0.5 else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix, best job {best.name} (test)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = out / "plot_confusion_best.png"
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- HTML


def report_html(title: str, table_md: str, summary: pd.DataFrame, keys: list[str], metric: str,
                failed: list[Job], images: list[Path]) -> str:  # fmt: skip
    """One self-contained page: the table and the plots inlined as data URIs, no network needed."""
    metrics = _shown(summary, metric)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in (keys or ["setting"]) + ["runs", "failed"] + metrics)
    body = []
    for i, (_, r) in enumerate(summary.iterrows()):
        cls = "best" if i == 0 and not math.isnan(r.get(f"{metric} mean", math.nan)) else ""
        cls = "failed" if r["failed"] == r["runs"] else cls
        cells = [html.escape(str(r.get(k, ""))) for k in keys or ["setting"]]
        cells += [str(int(r["runs"])), str(int(r["failed"]))]
        ok = int(r["runs"]) - int(r["failed"])
        cells += [html.escape(_fmt(r.get(f"{m} mean"), r.get(f"{m} std", 0.0), ok)) for m in metrics]
        body.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    fails = "".join(
        f"<li><b>{html.escape(j.name)}</b> ({html.escape(' '.join(f'{k}={v}' for k, v in j.overrides.items()))}): "
        f"{html.escape(str(j.record.get('error', 'failed')))}</li>"
        for j in failed
    )
    figs = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(p.stem)}</figcaption></figure>'
        for p in images
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.1rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: right; }}
th {{ background: #f4f4f4; }} td:first-child, th:first-child {{ text-align: left; }}
tr.best {{ background: #e8f6e8; font-weight: 600; }} tr.failed {{ background: #fbeaea; color: #a33; }}
figure {{ display: inline-block; margin: 0.5rem; vertical-align: top; }} img {{ max-width: 520px; }}
figcaption {{ font-size: 0.8rem; color: #666; text-align: center; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Sorted by <b>{html.escape(metric)}</b> (mean over seeds, best first). Settings: {
        html.escape(", ".join(keys) or "one setting")
    }.</p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
{f"<h2>Failed jobs</h2><ul>{fails}</ul>" if fails else ""}
<h2>Plots</h2>{figs or "<p>No plots: no job finished.</p>"}
</body></html>
"""


def write_report(sweep_dir: Path, metric: str | None = None) -> dict[str, Any]:
    """Write summary.csv, summary.md, the plots and report.html into ``sweep_dir``; return what was written."""
    sweep_dir = Path(sweep_dir)
    jobs = load_jobs(sweep_dir)
    metric, mode = optimized_metric(jobs, metric)
    keys = swept_keys(jobs)
    summary = summarize(jobs, metric, mode)
    summary.to_csv(sweep_dir / "summary.csv", index=False)
    table = summary_markdown(summary, keys, metric)
    failed = [j for j in jobs if not j.ok]
    md = f"# Sweep {sweep_dir.name}\n\n{len(jobs)} jobs, {len(failed)} failed; sorted by {metric} ({mode}).\n\n{table}"
    (sweep_dir / "summary.md").write_text(md)
    images = plot_metric_by_value(jobs, keys, metric, sweep_dir)
    images += [p for p in (plot_learning_curves(jobs, summary, keys, metric, sweep_dir),
                           plot_confusion(jobs, metric, mode, sweep_dir)) if p is not None]  # fmt: skip
    title = f"nnlab sweep {sweep_dir.name}: {len(jobs)} jobs, {len(failed)} failed"
    (sweep_dir / "report.html").write_text(report_html(title, table, summary, keys, metric, failed, images))
    return {"jobs": len(jobs), "failed": len(failed), "metric": metric, "mode": mode, "keys": keys,
            "summary": sweep_dir / "summary.md", "html": sweep_dir / "report.html", "images": images}  # fmt: skip
