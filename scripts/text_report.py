"""The sentence-model comparison table from finished runs (``experiment=sentence_models`` or single runs).

    python scripts/text_report.py paths=[logs/train/multiruns/2026-11-25_18-00-00]   # any dirs holding metrics.json
    python scripts/text_report.py paths=[RUN_DIR,RUN_DIR] out=text_report.json

Groups runs by (model, data) and prints test accuracy mean ± std over seeds, parameters, training seconds per
epoch (``wall_s`` of fit / epochs run; validation included) and inference sentences per second (the best
checkpoint of the group's first run, the test split of its dataset, batches of 500, one thread unless
``threads``). Writes the rows as JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from nnlab.cli.args import REQUIRED, Command, Key, at_least, parse_script

REPO = Path(__file__).resolve().parents[1]


def find_runs(paths: list[str]) -> list[Path]:
    runs = []
    for p in map(Path, paths):
        runs += [
            m.parent for m in ([p / "metrics.json"] if (p / "metrics.json").is_file() else p.rglob("metrics.json"))
        ]
    return sorted(set(runs))


def throughput(run: Path, data_dir: str | None, repeats: int = 3) -> float:
    """Sentences per second of the run's best checkpoint on its dataset's test split."""
    import torch
    from hydra.utils import instantiate

    from nnlab.models.text import TextClassifier

    ckpt = run / "checkpoints" / "best.ckpt"
    model = TextClassifier.load(ckpt)
    data_cfg = dict(torch.load(ckpt, weights_only=True)["nnlab"]["config"]["data"])
    if data_dir:
        data_cfg["data_dir"] = data_dir
    dm = instantiate(data_cfg)
    dm.setup("test")
    loader = dm.test_dataloader()
    batches = list(loader)
    n = sum(b[0].shape[0] for b in batches)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            t = time.perf_counter()
            for tokens, lengths, _ in batches:
                model(tokens, lengths)
            best = min(best, time.perf_counter() - t)
    return n / best


def main() -> int:
    args = parse_script(
        Command(
            "text_report", __doc__.splitlines()[0],
            [
                Key("paths", REQUIRED, "run or sweep dirs holding metrics.json, e.g. [dir1,dir2]", list),
                Key("data_dir", None, "override the runs' data_dir (e.g. ../shared/data)"),
                Key("threads", 1, "torch threads for the inference timing", int, check=at_least(1)),
                Key("out", "text_report.json", "result JSON"),
            ],
            prog="python scripts/text_report.py",
        )
    )  # fmt: skip
    import torch

    torch.set_num_threads(args.threads)
    groups: dict[tuple[str, str], list[tuple[Path, dict]]] = defaultdict(list)
    for run in find_runs(args.paths):
        m = json.loads((run / "metrics.json").read_text())
        if m.get("status") != "ok" or m.get("family") != "TextClassifier":
            continue
        groups[(m["choices"]["model"], m["choices"]["data"])].append((run, m))
    rows = []
    for (model, data), runs in sorted(groups.items()):
        accs = [100 * m["test/acc"] for _, m in runs]
        per_epoch = [m["wall_s"] / max(1, m["epoch"]) for _, m in runs]
        rows.append(
            {
                "model": model,
                "data": data,
                "runs": len(runs),
                "seeds": sorted(m.get("seed") for _, m in runs),
                "test_acc_mean": statistics.mean(accs),
                "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "val_acc_mean": statistics.mean(100 * m["val/acc"] for _, m in runs),
                "params": runs[0][1]["params"],
                "s_per_epoch": statistics.median(per_epoch),
                "infer_sent_per_s": throughput(runs[0][0], args.data_dir),
            }
        )
    print("| model | data | runs | test acc (mean ± std) | val acc | params | train s/epoch | inference sent/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['data']} | {r['runs']} | {r['test_acc_mean']:.2f} ± {r['test_acc_std']:.2f} | "
            f"{r['val_acc_mean']:.2f} | {r['params']:,} | {r['s_per_epoch']:.1f} | {r['infer_sent_per_s']:,.0f} |"
        )
    Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
