"""The report's pictures (bars by swept value, learning curves, the best setting's confusion matrix) and the
self-contained HTML page that inlines them."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from nnlab.report.jobs import Job
from nnlab.report.tables import Column


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
        values = sorted({j.value(key) for j in jobs})
        groups = sorted({j.value(group_key) for j in jobs}) if group_key else [""]
        fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(values) * max(1, len(groups)) ** 0.5 + 2), 3.6))
        width = 0.8 / len(groups)
        for gi, g in enumerate(groups):
            means, stds = [], []
            for v in values:
                vals = [j.record[metric] for j in ok if j.value(key) == v
                        and (group_key is None or j.value(group_key) == g)]  # fmt: skip
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
        members = [j for j in jobs if j.ok and all(j.value(k) == row.get(k, "") for k in keys)]
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


def report_html(title: str, summary: pd.DataFrame, cols: list[Column], metric: str, keys: list[str],
                failed: list[Job], images: list[Path]) -> str:  # fmt: skip
    """One self-contained page: the table and the plots inlined as data URIs, no network needed."""
    head = "".join(f"<th>{html.escape(c.header)}</th>" for c in cols)
    body = []
    ranked = "score" if "score" in summary else f"{metric} mean"
    for i, (_, r) in enumerate(summary.iterrows()):
        cls = "best" if i == 0 and not math.isnan(r.get(ranked, math.nan)) else ""
        cls = "failed" if r["failed"] == r["runs"] else cls
        body.append(f'<tr class="{cls}">' + "".join(f"<td>{html.escape(c.cell(r))}</td>" for c in cols) + "</tr>")
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
