"""``nnlab report sweep_dir=DIR``: summarize a sweep of any family.

    nnlab report sweep_dir=logs/train/multiruns/<time>                  # settings = the swept keys
    nnlab report sweep_dir=[<sentence_models>,<mr_10fold>] by=[model,data] percent=true throughput=true out=DIR
    nnlab report sweep_dir=<lm_grid> by=[model.emsize,model.nlayers,model.dropout]
    nnlab report sweep_dir=<text_dev_cnn> across=data percent=true      # a dev search: mean over the dev sets

Writes summary.csv, summary.md, summary.json, PNG plots and a self-contained report.html into the sweep dir (or
``out``). With ``wandb=true`` and a W&B login it also creates a W&B Report of the sweep's group and prints its URL.
"""

from __future__ import annotations

from pathlib import Path

from nnlab.cli.args import REQUIRED, Command, Key, at_least, existing_dir
from nnlab.utils.errors import ConfigError

COMMAND = Command(
    "report",
    "summarize sweep dirs of any family: summary.md/csv/json, plots, report.html (and a W&B Report with wandb=true)",
    [
        Key("sweep_dir", REQUIRED, "a multirun dir, a run dir or a dir of multiruns; several: [dir1,dir2]", list),
        Key("by", None, "keys whose values make a setting, e.g. [model,data]; none: the swept keys", list),
        Key("across", None, "rank settings by the mean over this key's values (e.g. data: a dev search)"),
        Key("metric", None, "metric to rank settings by (default: the jobs' optimized_metric)"),
        Key("percent", False, "accuracy and F1 in %", bool),
        Key("throughput", False, "time inference (sentences/s) of each setting's first best.ckpt", bool),
        Key("threads", 1, "torch threads for the inference timing", int, check=at_least(1)),
        Key("data_dir", None, "datasets root for the inference timing; none: the runs' own"),
        Key("out", None, "dir of the report's files; none: the sweep dir (one needed for several)", Path),
        Key("wandb", False, "also create a W&B Report (needs a W&B login)", bool),
        Key("project", None, "W&B project of the Report (default: the one the sweep's jobs logged to)"),
        Key("entity", None, "W&B entity (default: the sweep's, else your default entity)"),
    ],
    examples=[
        "nnlab report sweep_dir=logs/train/multiruns/<time>",
        "nnlab report sweep_dir=[<dir>,<dir>] by=[model,data] percent=true throughput=true out=text_report",
        "nnlab report sweep_dir=<dir> wandb=true",
    ],
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


def sweep_dirs(args) -> list[Path]:
    """The sweep dirs, each an existing directory (one line naming the first that is not)."""
    dirs = [Path(d).expanduser() for d in args.sweep_dir]
    if not dirs:
        raise ConfigError("sweep_dir=[] names no dir; give sweep_dir=<multirun dir> (see `nnlab report --help`)")
    for d in dirs:
        if problem := existing_dir(d):
            raise ConfigError(f"sweep_dir={d} {problem}" if len(dirs) == 1 else f"sweep_dir: {d} {problem}")
    if len(dirs) > 1 and args.out is None:
        raise ConfigError(f"sweep_dir names {len(dirs)} dirs; give out=DIR for the report's files")
    if len(dirs) > 1 and args.wandb:
        raise ConfigError("wandb=true reports one sweep; give a single sweep_dir")
    return dirs


def run(args) -> dict:
    dirs = sweep_dirs(args)
    if args.throughput:
        import torch

        torch.set_num_threads(args.threads)
    from nnlab.report import write_report
    from nnlab.utils.resolvers import wandb_mode

    out = write_report(dirs, args.metric, args.by, args.across, args.percent, args.throughput, args.data_dir, args.out)
    print(f"{out['jobs']} jobs ({out['failed']} failed), ranked by {out['metric']} ({out['mode']})")
    print(out["table"])
    print(f"wrote {out['summary']}, {out['json'].name}, {out['html'].name} and {len(out['images'])} plots")
    if args.wandb:
        if wandb_mode() != "online":
            print("W&B: no login (offline); wrote the local report only. Run `wandb login` to get a W&B Report.")
        else:
            url = wandb_report(dirs[0], out["metric"], out["keys"], args.project, args.entity)
            print(f"W&B report: {url}")
    return out
