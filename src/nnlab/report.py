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
        """A finished job's number ``name`` (``s/epoch``: wall_s over the epochs run), NaN when it has none."""
        if not self.ok:
            return math.nan
        if name == "s/epoch":
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


def _anchor(row: dict[str, Any]) -> tuple[float | None, float | None, str] | None:
    return TEXT_ANCHORS.get((str(row.get("model", "")), str(row.get("data", ""))))


def summarize(jobs: list[Job], metric: str, mode: str, by: list[str] | None = None,
              across: str | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per setting: runs, failures, mean, std and median of each metric, sorted best first (failures
    last). With ``across``, the setting leaves ``across`` out; ``<metric> <value>`` is the mean over the
    setting's runs with that value and ``score`` the mean of those (NaN unless every value is there)."""
    keys = [k for k in (swept_keys(jobs) if by is None else by) if k != across]
    names = list(dict.fromkeys((*AGG_METRICS, metric)))
    rows = []
    for j in jobs:
        row = {k: j.value(k) for k in keys}
        row.update(job=j.name, ok=j.ok, error=j.record.get("error", ""), seed=j.record.get("seed"),
                   family=j.record.get("family") or "")  # fmt: skip
        if across:
            row[across] = j.value(across)
        for m in names:
            row[m] = j.metric(m)
        rows.append(row)
    df = pd.DataFrame(rows)
    values = list(dict.fromkeys(df[across])) if across else []  # in the sweep's order
    out = []
    for setting, g in df.groupby(keys or (lambda _: "all"), sort=False, dropna=False):
        setting = setting if isinstance(setting, tuple) else (setting,)
        row = dict(zip(keys, setting)) if keys else {"setting": "all"}
        row.update(runs=len(g), failed=int((~g.ok).sum()), family="/".join(sorted({f for f in g.family if f})))
        row["seeds"] = sorted({int(s) for s in g.seed.dropna()})
        for m in names:
            vals = g[m].dropna()
            if len(vals):
                row[f"{m} mean"] = vals.mean()
                row[f"{m} std"] = vals.std(ddof=1) if len(vals) > 1 else 0.0
                row[f"{m} median"] = vals.median()
        if across:
            per_value = {v: g[g[across] == v][metric].dropna() for v in values}
            for v, vals in per_value.items():
                row[f"{metric} {v}"] = vals.mean() if len(vals) else math.nan
            means = [row[f"{metric} {v}"] for v in values]
            row["score"] = float(np.mean(means)) if not any(math.isnan(x) for x in means) else math.nan
        anchor = _anchor(row)
        if anchor:
            row["target"], row["published"] = anchor[0], anchor[1]
        row["errors"] = "; ".join(sorted({e for e in g.error if e}))
        out.append(row)
    summary = pd.DataFrame(out)
    col = "score" if across else f"{metric} mean"
    if col not in summary:
        summary[col] = math.nan
    # ties on the metric (common for accuracy on small val sets) are broken by the validation loss
    order, ascending = [col], [mode == "min"]
    if col != "val/loss mean" and "val/loss mean" in summary:
        order, ascending = order + ["val/loss mean"], ascending + [True]
    summary = summary.sort_values(order, ascending=ascending, na_position="last", kind="stable")
    return summary.reset_index(drop=True)


def _fmt(mean: float, std: float, n: int = 2, name: str = "", percent: bool = False) -> str:
    """``mean ± std`` in the metric's own precision; a single run (or a count) has no spread to show."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if name in ("target", "published"):  # anchors are in %
        return f"{mean:.1f}" if percent else f"{mean / 100:.4f}"
    if name in ("params", "sent/s"):
        return f"{mean:,.0f}"
    if name in ("epoch", "s/epoch"):
        return f"{mean:.0f}" if name == "epoch" and float(mean).is_integer() else f"{mean:.1f}"
    scale, digits = 1.0, 4 if abs(mean) < 10 else 2
    if name.endswith(("acc", "f1")) and percent:
        scale, digits = 100.0, 2
    elif name.endswith("ppl"):
        digits = 1
    elif name == "wall_s":
        digits = 0
    mean, std = mean * scale, (std or 0.0) * scale
    return f"{mean:.{digits}f}" if n < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _shown(summary: pd.DataFrame, metric: str) -> list[str]:
    present = [m for m in SHOWN_METRICS if f"{m} mean" in summary and summary[f"{m} mean"].notna().any()]
    return [metric] + [m for m in present if m != metric]


@dataclass
class Column:
    """One column of the table: its header and how a summary row is written in it."""

    header: str
    cell: Any  # (row) -> str


def columns(summary: pd.DataFrame, keys: list[str], metric: str, across: str | None = None,
            percent: bool = False) -> list[Column]:  # fmt: skip
    def stat(m: str, fmt_name: str | None = None) -> Column:
        def cell(r) -> str:
            n = 1 if m in PLAIN else int(r["runs"]) - int(r["failed"])
            mean = r.get(f"{m} median" if m == "s/epoch" else f"{m} mean")
            return _fmt(mean, r.get(f"{m} std", 0.0), n, fmt_name or m, percent)

        unit = " %" if percent and m.endswith(("acc", "f1")) else ""
        header = HEADERS.get(m, m)
        if m == "sent/s" and set(summary.get("family", [])) != {"TextClassifier"}:
            header = "inference examples/s"  # images: examples; sentences are the text family's examples
        return Column(header + unit + (" (mean ± std)" if m not in PLAIN else ""), cell)

    def plain(name: str, header: str, fmt_name: str) -> Column:
        return Column(header, lambda r: _fmt(r.get(name), 0.0, 1, fmt_name, percent))

    cols = [Column(k, lambda r, k=k: str(r.get(k, ""))) for k in keys or ["setting"]]
    cols += [Column("runs", lambda r: str(int(r["runs"]))), Column("failed", lambda r: str(int(r["failed"])))]
    if across:
        values = [c[len(metric) + 1 :] for c in summary.columns if c.startswith(f"{metric} ") and
                  c[len(metric) + 1 :] not in ("mean", "std", "median")]  # fmt: skip
        unit = " %" if percent and metric.endswith(("acc", "f1")) else ""
        cols += [plain(f"{metric} {v}", f"{metric}{unit} {across}={v}", metric) for v in values]
        cols.append(plain("score", f"{metric}{unit} mean over {across}", metric))
    metrics = _shown(summary, metric)
    for m in metrics:
        cols.append(stat(m))
        if m == "test/acc" and "target" in summary and summary["target"].notna().any():
            cols += [plain("target", "target", "target"), plain("published", "published", "published")]
    return cols


def summary_markdown(summary: pd.DataFrame, keys: list[str], metric: str, across: str | None = None,
                     percent: bool = False) -> str:  # fmt: skip
    cols = columns(summary, keys, metric, across, percent)
    lines = ["| " + " | ".join(c.header for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in summary.iterrows():
        lines.append("| " + " | ".join(c.cell(r) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def failed_markdown(failed: list[Job]) -> str:
    lines = [f"- {j.name} ({' '.join(f'{k}={v}' for k, v in j.overrides.items()) or 'no overrides'}): "
             f"{j.record.get('error', 'failed')}" for j in failed]  # fmt: skip
    return "\nFailed jobs:\n\n" + "\n".join(lines) + "\n" if lines else ""


def _plain(v: Any) -> Any:
    """JSON-safe: NaN as null, numpy scalars as Python numbers."""
    if isinstance(v, float | np.floating):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer | np.bool_):
        return v.item()
    return v


def summary_json(summary: pd.DataFrame, jobs: list[Job], keys: list[str], metric: str, mode: str,
                 across: str | None) -> dict[str, Any]:  # fmt: skip
    """Settings (as in summary.csv, with their seeds and anchors) and one row per job (its keys, status, error
    and numbers, the lm_grid.json of docs/results)."""
    settings = []
    for _, r in summary.iterrows():
        row = {k: _plain(v) for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
        anchor = _anchor(row)
        if anchor and anchor[2]:
            row["published_source"] = anchor[2]
        settings.append(row)
    rows = []
    for j in jobs:
        row = {"job": j.name, **{k: j.value(k) for k in keys + ([across] if across else [])}}
        row.update(seed=j.record.get("seed"), status=j.record.get("status"), error=j.record.get("error"))
        # as recorded (params and epochs stay integers); s/epoch is derived
        row.update({m: j.record[m] if m in j.record else _plain(j.metric(m)) for m in AGG_METRICS
                    if not math.isnan(j.metric(m))})  # fmt: skip
        rows.append(row)
    return {"metric": metric, "mode": mode, "by": keys, "across": across, "settings": settings, "jobs": rows}


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


# ----------------------------------------------------------------------------- HTML


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
