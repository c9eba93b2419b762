"""The report's table: one row per setting (mean ± std over its runs), the columns a family needs, markdown and
JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nnlab.report.jobs import AGG_METRICS, HEADERS, PLAIN, SHOWN_METRICS, TEXT_ANCHORS, Job, swept_keys


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
