"""``nnlab report sweep_dir=DIR``: summarize a sweep of any family.

Writes summary.csv, summary.md, PNG plots and a self-contained report.html into the sweep dir (a Hydra multirun
dir such as logs/train/multiruns/<time>). With ``wandb=true`` and a W&B login it also creates a W&B Report of
the sweep's group and prints its URL.
"""

from __future__ import annotations

from pathlib import Path

from nnlab.cli.args import REQUIRED, Command, Key, existing_dir
from nnlab.utils.errors import NnlabError

COMMAND = Command(
    "report",
    "summarize a sweep dir: summary.md/csv, plots, report.html (and a W&B Report with wandb=true)",
    [
        Key("sweep_dir", REQUIRED, "a multirun dir (logs/train/multiruns/<time>)", Path, check=existing_dir),
        Key("metric", None, "metric to rank settings by (default: the jobs' optimized_metric)"),
        Key("wandb", False, "also create a W&B Report (needs a W&B login)", bool),
        Key("project", "nnlab", "W&B project of the sweep's runs"),
        Key("entity", None, "W&B entity (default: your default entity)"),
    ],
    examples=["nnlab report sweep_dir=logs/train/multiruns/<time>", "nnlab report sweep_dir=<dir> wandb=true"],
)


def build_wandb_report(sweep_dir: Path, metric: str, keys: list[str], project: str, entity: str):
    """The W&B Report (not yet saved) of the runs whose group is this sweep's dir name (train.py's grouping):
    learning curves of the metric and one bar chart of its mean per swept key."""
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError as e:
        raise NnlabError("wandb=true needs the package wandb-workspaces: pip install wandb-workspaces") from e
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


def run(args) -> dict:
    from nnlab.report import write_report
    from nnlab.utils.resolvers import wandb_mode

    out = write_report(args.sweep_dir, args.metric)
    print(f"{out['jobs']} jobs ({out['failed']} failed), ranked by {out['metric']} ({out['mode']})")
    print(out["summary"].read_text())
    print(f"wrote {out['summary']}, {out['html']} and {len(out['images'])} plots")
    if args.wandb:
        if wandb_mode() != "online":
            print("W&B: no login (offline); wrote the local report only. Run `wandb login` to get a W&B Report.")
        else:
            url = wandb_report(args.sweep_dir, out["metric"], out["keys"], args.project, args.entity)
            print(f"W&B report: {url}")
    return out
