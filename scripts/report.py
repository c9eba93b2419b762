"""Summarize a sweep: `python scripts/report.py SWEEP_DIR [--metric val/acc] [--wandb]`.

Writes summary.csv, summary.md, PNG plots and a self-contained report.html into SWEEP_DIR (a Hydra multirun
dir such as logs/train/multiruns/<time>). With --wandb and a W&B login it also creates a W&B Report of the
sweep's group and prints its URL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nnlab.report import write_report  # noqa: E402
from nnlab.utils.errors import NnlabError  # noqa: E402
from nnlab.utils.resolvers import wandb_mode  # noqa: E402


def build_wandb_report(sweep_dir: Path, metric: str, keys: list[str], project: str, entity: str):
    """The W&B Report (not yet saved) of the runs whose group is this sweep's dir name (train.py's grouping):
    learning curves of the metric and one bar chart of its mean per swept key."""
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError as e:
        raise NnlabError("--wandb needs the package wandb-workspaces: pip install wandb-workspaces") from e
    runset = wr.Runset(entity=entity, project=project, name=sweep_dir.name,
                       filters=f"Group == '{sweep_dir.name}'")  # fmt: skip
    panels = [wr.LinePlot(x="epoch", y=[metric], title=f"{metric} per epoch")]
    panels += [wr.ScalarChart(metric=metric, groupby_aggfunc="mean", title=f"{metric} by {k}") for k in keys[:4]]
    return wr.Report(
        entity=entity, project=project, title=f"nnlab sweep {sweep_dir.name}",
        description=f"{metric} over the sweep's settings ({', '.join(keys) or 'one setting'}).",
        blocks=[wr.H1(f"Sweep {sweep_dir.name}"), wr.PanelGrid(runsets=[runset], panels=panels)],
    )  # fmt: skip


def wandb_report(sweep_dir: Path, metric: str, keys: list[str], project: str, entity: str | None) -> str:
    """Save the sweep's W&B Report (needs a login); returns its URL."""
    import wandb

    report = build_wandb_report(sweep_dir, metric, keys, project, entity or wandb.Api().default_entity)
    report.save()
    return report.url


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--metric", default=None, help="metric to rank settings by (default: the jobs' optimized_metric)")
    p.add_argument("--wandb", action="store_true", help="also create a W&B Report (needs a W&B login)")
    p.add_argument("--project", default="nnlab")
    p.add_argument("--entity", default=None)
    args = p.parse_args(argv)
    try:
        out = write_report(args.sweep_dir, args.metric)
        print(f"{out['jobs']} jobs ({out['failed']} failed), ranked by {out['metric']} ({out['mode']})")
        print(out["summary"].read_text())
        print(f"wrote {out['summary']}, {out['html']} and {len(out['images'])} plots")
        if args.wandb:
            if wandb_mode() != "online":
                print("W&B: no login (offline); wrote the local report only. Run `wandb login` to get a W&B Report.")
            else:
                print(
                    f"W&B report: {wandb_report(args.sweep_dir, out['metric'], out['keys'], args.project, args.entity)}"
                )
    except NnlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
