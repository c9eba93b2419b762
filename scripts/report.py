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
from nnlab.wandb_report import build_wandb_report  # noqa: E402,F401  (also this script's API)


def wandb_report(sweep_dir: Path, metric: str, keys: list[str], project: str | None, entity: str | None) -> str:
    """Save the sweep's W&B Report (needs a login) in the project/entity the sweep logged to, unless given;
    returns its URL."""
    import wandb

    from nnlab.wandb_report import sweep_wandb_target

    p, e = sweep_wandb_target(sweep_dir)
    report = build_wandb_report(sweep_dir, metric, keys, project or p, entity or e or wandb.Api().default_entity)
    report.save()
    return report.url


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--metric", default=None, help="metric to rank settings by (default: the jobs' optimized_metric)")
    p.add_argument("--wandb", action="store_true", help="also create a W&B Report (needs a W&B login)")
    p.add_argument("--project", default=None, help="default: the project the sweep's jobs logged to")
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
