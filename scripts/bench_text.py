"""Training speed of the sentence encoders, sentence- and phrase-level SST, before and after a change, in one run.

    python scripts/bench_text.py                              # cnn, rnn x sentences, phrases x before, after
    python scripts/bench_text.py encoders=[cnn] steps=100 repeats=3 threads=2

"before" is the model config with the overrides in ``before`` (default: the phrase-level setup issue 17 started
from: Adam's per-tensor loop, ``model.optimizer.fused=false``, and the sentence batch of 50 for the phrases too,
``data.phrase_batch_size=null``), "after" the config as it is (the fused Adam, phrases in the batches of 200
that the dev search chose). Each cell times ``steps`` training steps of the
real model, data loader and optimizer (forward, backward, step; Lightning's loop left out), after ``warmup``
steps, and one full validation pass; s/epoch = the step time x the steps of an epoch + the validation pass.
Variants alternate within each repeat, and the median is reported. Prints a table with the 1-minute load average
and writes ``out`` (JSON). The load this benchmark puts on the machine itself (``threads``) is subtracted: ratios
taken while other processes kept the load above 1.5 are refused unless ``force=true``, since on a loaded 2-core
box torch's threads gain nothing and slow code looks faster than it is.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from nnlab.cli.args import Command, Key, at_least, parse_script

REPO = Path(__file__).resolve().parents[1]

COMMAND = Command(
    "bench_text",
    __doc__.splitlines()[0],
    [
        Key("encoders", ["cnn", "rnn"], "model configs", list, choices=("cnn", "rnn", "fasttext")),
        Key("levels", ["sentences", "phrases"], "SST-2 training sets", list, choices=("sentences", "phrases")),
        Key(
            "before",
            ["model.optimizer.fused=false", "data.phrase_batch_size=null"],
            "overrides of the 'before' variant",
            list,
        ),
        Key("steps", 150, "timed training steps per cell", int, check=at_least(10)),
        Key("warmup", 10, "untimed steps first", int, check=at_least(0)),
        Key("repeats", 2, "repeats (median)", int, check=at_least(1)),
        Key("threads", 1, "torch threads", int, check=at_least(1)),
        Key("data_dir", os.environ.get("DATA_DIR", str(REPO / "data")), "datasets root (needs sst/ with trees/)"),
        Key("force", False, "report ratios even above load 1.5", bool),
        Key("out", "bench_text.json", "result JSON"),
    ],
    prog="python scripts/bench_text.py",
)


def build(encoder: str, level: str, overrides: list[str], data_dir: str):
    from hydra import compose, initialize_config_dir

    import nnlab.utils.resolvers  # noqa: F401
    from nnlab.utils.run import build as instantiate

    phrases = "true" if level == "phrases" else "false"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        base = [f"model={encoder}", "data=sst2", f"data.phrases={phrases}", f"paths.data_dir={data_dir}"]
        cfg = compose(config_name="train", overrides=[*base, "paths.output_dir=.", *overrides])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    model = instantiate(cfg.model, **dm.model_kwargs())
    return dm, model


def time_cell(dm, model, steps: int, warmup: int) -> dict:
    import torch
    import torch.nn.functional as F

    opt = model.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    loader = dm.train_dataloader()
    it = iter(loader)
    model.train()
    t0 = None
    n_examples = 0
    for i in range(warmup + steps):
        if i == warmup:
            t0, n_examples = time.perf_counter(), 0
        try:
            tokens, lengths, y = next(it)
        except StopIteration:
            it = iter(loader)
            tokens, lengths, y = next(it)
        loss = F.cross_entropy(model(tokens, lengths), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.on_train_batch_end(None, None, i) if hasattr(model, "on_train_batch_end") else None
        n_examples += len(y)
    step_s = (time.perf_counter() - t0) / steps
    model.eval()
    t1 = time.perf_counter()
    with torch.no_grad():
        for tokens, lengths, _ in dm.val_dataloader():
            model(tokens, lengths)
    val_s = time.perf_counter() - t1
    return {
        "step_ms": 1000 * step_s,
        "examples_per_s": n_examples / steps / step_s,
        "train_examples": len(dm.datasets["train"]),
        "steps_per_epoch": len(loader),
        "batch_size": dm.batch_size,
        "val_s": val_s,
        "s_per_epoch": step_s * len(loader) + val_s,
    }


def main() -> int:
    args = parse_script(COMMAND)
    import torch

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"load average (1 min) at start: {load:.2f}; torch threads {args.threads}")
    variants = {"before": list(args.before), "after": []}
    rows = []
    for encoder in args.encoders:
        for level in args.levels:
            runs: dict[str, list[dict]] = {v: [] for v in variants}
            built = {v: build(encoder, level, o, args.data_dir) for v, o in variants.items()}
            for r in range(args.repeats):
                for v in variants if r % 2 == 0 else reversed(variants):
                    torch.manual_seed(r)
                    runs[v].append(time_cell(*built[v], args.steps, args.warmup))
            med = {v: {k: statistics.median(x[k] for x in runs[v]) for k in runs[v][0]} for v in variants}
            load = os.getloadavg()[0]
            rows.append({"encoder": encoder, "level": level, "before": med["before"], "after": med["after"],
                         "speedup": med["before"]["s_per_epoch"] / med["after"]["s_per_epoch"],
                         "load": load, "other_load": max(0.0, load - args.threads)})  # fmt: skip
            print(f"{encoder} {level}: before {med['before']['s_per_epoch']:.1f} s/epoch, after "
                  f"{med['after']['s_per_epoch']:.1f} s/epoch (load {rows[-1]['load']:.2f})")  # fmt: skip
    worst = max(r["other_load"] for r in rows)
    print(f"\nbefore: {' '.join(args.before) or '(none)'}; after: the configs as they are; median of {args.repeats}\n")
    cols = ["encoder", "training set", "examples", "batch", "before ex/s", "after ex/s", "before s/epoch",
            "after s/epoch"]  # fmt: skip
    print("| " + " | ".join([*cols, "speedup", "load (others)"]) + " |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        b, a = r["before"], r["after"]
        speed = f"{r['speedup']:.2f}x" if r["other_load"] <= 1.5 or args.force else "(load > 1.5: rerun)"
        batch = f"{int(b['batch_size'])} → {int(a['batch_size'])}"
        cells = [r["encoder"], f"SST-2 {r['level']}", f"{int(a['train_examples']):,}", batch,
                 f"{b['examples_per_s']:,.0f}", f"{a['examples_per_s']:,.0f}", f"{b['s_per_epoch']:.1f}",
                 f"{a['s_per_epoch']:.1f}", speed,
                 f"{r['load']:.2f} ({r['other_load']:.2f})"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    result = {"threads": args.threads, "steps": args.steps, "repeats": args.repeats, "before": args.before,
              "max_other_load": worst, "rows": rows}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")
    if worst > 1.5 and not args.force:
        print("error: other processes kept the load above 1.5 during the run; rerun on a quiet machine (or force=true)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
