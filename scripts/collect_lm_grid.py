"""The README table of an `experiment=lm_grid` multirun: one row per job, from its metrics.json.

    python scripts/collect_lm_grid.py sweep_dir=logs/train/multiruns/<time>  [sort=val/ppl]

Prints a Markdown table (size = emsize = nhid, layers, dropout, params, val/test perplexity, epochs, wall
time) and writes lm_grid.json next to where it is run. Failed jobs are listed with their error.
"""

from __future__ import annotations

import json
from pathlib import Path

from nnlab.cli.args import REQUIRED, Command, Key, existing_dir, parse_script


def job_row(metrics: dict) -> dict:
    over = dict(o.split("=", 1) for o in metrics.get("overrides", []) if "=" in o)
    return {
        "size": over.get("model.emsize", "?"),
        "nlayers": over.get("model.nlayers", "?"),
        "dropout": over.get("model.dropout", "?"),
        "params": metrics.get("params"),
        "val/ppl": metrics.get("val/ppl"),
        "test/ppl": metrics.get("test/ppl"),
        "epoch": metrics.get("epoch"),
        "wall_s": metrics.get("wall_s"),
        "status": metrics.get("status"),
        "error": metrics.get("error"),
    }


def main() -> None:
    args = parse_script(
        Command(
            "collect_lm_grid", __doc__.splitlines()[0],
            [
                Key("sweep_dir", REQUIRED, "the lm_grid multirun dir", Path, check=existing_dir),
                Key("sort", "val/ppl", "column to sort by", choices=("val/ppl", "test/ppl", "params", "wall_s")),
            ],
            prog="python scripts/collect_lm_grid.py",
        )
    )  # fmt: skip
    rows = [job_row(json.loads(p.read_text())) for p in sorted(args.sweep_dir.glob("*/metrics.json"))]
    if not rows:
        raise SystemExit(f"error: no */metrics.json under {args.sweep_dir}; give the multirun's sweep dir")
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r[args.sort] or float("inf"))
    print("| emsize = nhid | layers | dropout | params | val ppl | test ppl | epochs | wall (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in ok:
        print(
            f"| {r['size']} | {r['nlayers']} | {r['dropout']} | {r['params']:,} | {r['val/ppl']:.1f} "
            f"| {r['test/ppl']:.1f} | {r['epoch']} | {r['wall_s']:.0f} |"
        )
    for r in rows:
        if r["status"] != "ok":
            print(f"failed: size={r['size']} layers={r['nlayers']} dropout={r['dropout']}: {r['error']}")
    Path("lm_grid.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
