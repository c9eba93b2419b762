"""``nnlab report sweep_dir=DIR``: summarize a sweep of any family.

Writes summary.csv, summary.md, PNG plots and a self-contained report.html into the sweep dir (a Hydra multirun
dir such as logs/train/multiruns/<time>). With ``wandb=true`` and a W&B login it also creates a W&B Report of
the sweep's group and prints its URL.
"""

from __future__ import annotations

from pathlib import Path

from nnlab.cli.args import REQUIRED, Command, Key, existing_dir

COMMAND = Command(
    "report",
    "summarize a sweep dir: summary.md/csv, plots, report.html (and a W&B Report with wandb=true)",
    [
        Key("sweep_dir", REQUIRED, "a multirun dir (logs/train/multiruns/<time>)", Path, check=existing_dir),
        Key("metric", None, "metric to rank settings by (default: the jobs' optimized_metric)"),
        Key("wandb", False, "also create a W&B Report (needs a W&B login)", bool),
        Key("project", None, "W&B project of the Report (default: the one the sweep's jobs logged to)"),
        Key("entity", None, "W&B entity (default: the sweep's, else your default entity)"),
    ],
    examples=["nnlab report sweep_dir=logs/train/multiruns/<time>", "nnlab report sweep_dir=<dir> wandb=true"],
)


def wandb_report(sweep_dir: Path, metric: str, keys: list[str], project: str | None, entity: str | None) -> str:
    """Save the sweep's W&B Report (needs a login) in the project/entity the sweep logged to, unless given;
    returns its URL."""
    import wandb

    from nnlab.wandb_report import build_wandb_report, sweep_wandb_target

    p, e = sweep_wandb_target(sweep_dir)
    report = build_wandb_report(sweep_dir, metric, keys, project or p, entity or e or wandb.Api().default_entity)
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
