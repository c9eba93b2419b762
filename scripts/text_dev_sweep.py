"""Pick the sentence classifiers' defaults on dev sets, then measure them on the test sets.

    python scripts/text_dev_sweep.py out=logs/text_dev_sweep jobs=14 [models=cnn,rnn] [seeds=1,2] [final=true]
        [grid=full|word_dropout|ema|cnn_widths|rnn_word_dropout|smoke] [deadline_s=0]
        [-- extra train.py overrides, e.g. trainer.accelerator=gpu]

Stage 1 (dev): every configuration of each model's grid below is trained with ``python train.py`` on SST-2,
SST-1 and MR fold 0, one process per run, ``jobs`` at a time. Its score on a dataset is the validation
accuracy of its best epoch (SST's dev sets; MR's validation split, carved from the nine training folds),
averaged over ``seeds``; its overall score is the mean over the three datasets. One configuration per
model wins, for every dataset: "each model's default config". No test number is read in this stage.

Stage 2 (``final=true``): the winner of each model is trained as the issue measures it: SST-2 and SST-1
with seeds 1, 2, 3 (as ``experiment=sentence_models``) and MR's ten folds (as ``experiment=mr_10fold``).
The test accuracies are read only now.

Writes ``out/dev.json`` (every dev run and the ranking), ``out/final.json`` (the test table) and prints both
as tables. ``deadline_s`` stops starting new dev runs after that many seconds (the ranking then uses what
finished; runs are ordered seed-major so the first seed of every configuration comes first).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The spaces searched. Each model's config file holds the defaults; these are the values tried around them.
GRIDS = {
    "full": {
        "cnn": {
            "model.embed_dropout": [0.0, 0.25, 0.5],
            "model.num_filters": [100, 200],
            "model.dropout": [0.5, 0.6],
        },
        "rnn": {
            "model.embed_dropout": [0.0, 0.25, 0.5],
            "model.hidden_size": [150, 300],
            "model.rnn_type": ["lstm", "gru"],
        },
    },
    # a follow-up to "full": word dropout around the defaults it chose (run on a CPU, so it has its own baseline)
    "word_dropout": {
        "cnn": {"model.word_dropout": [0.0, 0.25]},
        "rnn": {"model.word_dropout": [0.0, 0.25]},
    },
    # weight averaging on top of the defaults; their ema=null baseline is the word_dropout grid's default row
    # (same seeds, same CPU), so only the new value is trained
    "ema": {
        "cnn": {"model.ema": [0.99]},
        "rnn": {"model.ema": [0.99]},
    },
    # the cnn's filter widths: a width-2 map added to Kim's 3/4/5 (bigrams lift the C++ fastText on MR by
    # 1.6 points); the baseline is again the word_dropout grid's default row
    "cnn_widths": {"cnn": {"model.filter_widths": ["[2,3,4,5]"]}},
    # further along the direction that won for the rnn (word dropout 0 -> 0.25); baseline as above
    "rnn_word_dropout": {"rnn": {"model.word_dropout": [0.4]}},
    # a two-configuration grid for checking the pipeline end to end
    "smoke": {
        "cnn": {"model.embed_dropout": [0.0, 0.5]},
        "rnn": {"model.embed_dropout": [0.0, 0.5]},
    },
}
DEV_DATA = {"sst2": ["data=sst2"], "sst5": ["data=sst5"], "mr": ["data=mr", "data.fold=0"]}
# epochs as the measured experiments run them: sentence_models sets 10, mr_10fold keeps the trainer's 15
EPOCHS = {"sst2": 10, "sst5": 10, "mr": 15}
COMMON = [
    "logger=none",
    "callbacks=minimal",
    "threads=1",
    "extras.print_config=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def _seeds(v: str) -> list[int]:
    return [int(x) for x in v.split(",")]


def _bool(v: str) -> bool:
    if v not in ("true", "false"):
        raise ValueError
    return v == "true"


# key: (default, converter, what is wrong with a value the converter rejects)
ARGS = {
    "out": ("logs/text_dev_sweep", str, ""),
    "jobs": ("2", int, "is not a number"),
    "models": ("cnn,rnn", lambda v: v.split(","), ""),
    "seeds": ("1,2", _seeds, "must be integers separated by commas, e.g. seeds=1,2"),
    "final": ("false", _bool, "must be true or false"),
    "grid": ("full", str, ""),
    "deadline_s": ("0", float, "is not a number"),
    "epochs_scale": ("1", float, "is not a number"),
}


def parse_args(argv: list[str]) -> tuple[dict, list[str]]:
    """``key=value`` arguments converted to their types, and the train.py overrides after ``--``."""
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    raw = {k: default for k, (default, _, _) in ARGS.items()}
    for a in argv:
        key, sep, value = a.partition("=")
        if not sep or key not in raw:
            sys.exit(f"text_dev_sweep: bad argument {a!r}; expected key=value with key in {', '.join(raw)}")
        raw[key] = value
    args = {}
    for key, (_, convert, want) in ARGS.items():
        try:
            args[key] = convert(raw[key])
        except ValueError:
            sys.exit(f"text_dev_sweep: {key}={raw[key]} {want}")
    if args["jobs"] < 1:
        sys.exit(f"text_dev_sweep: jobs={args['jobs']} must be at least 1")
    if args["grid"] not in GRIDS:
        sys.exit(f"text_dev_sweep: grid={args['grid']} unknown; choose one of {', '.join(GRIDS)}")
    bad = [m for m in args["models"] if m not in GRIDS[args["grid"]]]
    if bad:
        sys.exit(f"text_dev_sweep: models={bad[0]} has no grid; choose from {', '.join(GRIDS[args['grid']])}")
    return args, extra


def configs(grid: dict[str, list]) -> list[dict[str, object]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def run_one(job: dict, extra: list[str]) -> dict:
    """Train one run in its own process; return its metrics.json (or the failure) with the job's fields."""
    out = Path(job["dir"])
    cmd = [sys.executable, str(REPO / "train.py"), *job["overrides"], *COMMON, *extra, f"hydra.run.dir={out}"]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = out / "metrics.json"
    rec = {**job, "wall_s": round(time.time() - t0, 1)}
    if proc.returncode == 0 and metrics.is_file():
        m = json.loads(metrics.read_text())
        rec.update({k: m.get(k) for k in ("val/acc", "test/acc", "epoch", "params", "status")})
    else:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if "HYDRA_FULL_ERROR" not in ln]
        tail = [ln.strip() for ln in lines if ln.strip()][-2:]
        rec.update(status="failed", error=" | ".join(tail))
    for ckpt in out.glob("checkpoints/*.ckpt"):  # hundreds of runs: keep the metrics, not the weights
        ckpt.unlink()
    return rec


def run_all(jobs: list[dict], extra: list[str], n: int, deadline: float | None) -> list[dict]:
    def guarded(job):
        if deadline is not None and time.time() > deadline:
            return {**job, "status": "skipped"}
        rec = run_one(job, extra)
        state = f"val {rec['val/acc']:.4f}" if rec.get("val/acc") is not None else rec.get("error", rec["status"])
        print(f"[{time.strftime('%H:%M:%S')}] {rec['wall_s']:6.1f}s {' '.join(job['overrides'])}: {state}", flush=True)
        return rec

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(guarded, jobs))


def rank(records: list[dict], model: str, cfgs: list[dict]) -> list[dict]:
    rows = []
    for i, cfg in enumerate(cfgs):
        per_data = {}
        for data in DEV_DATA:
            accs = [
                r["val/acc"]
                for r in records
                if r["model"] == model and r["cfg"] == i and r["data"] == data and r.get("val/acc") is not None
            ]
            if accs:
                per_data[data] = statistics.mean(accs)
        complete = len(per_data) == len(DEV_DATA)
        score = statistics.mean(per_data.values()) if complete else None
        rows.append({"model": model, "cfg": i, "params": cfg, "dev": per_data, "score": score})
    return sorted(rows, key=lambda r: -1 if r["score"] is None else r["score"], reverse=True)


def job(model: str, data: str, overrides: list[str], out: Path, **fields) -> dict:
    return {"model": model, "data": data, **fields, "overrides": [f"model={model}", *overrides], "dir": str(out)}


def dev_jobs(grids: dict[str, list[dict]], seeds: list[int], epochs, out: Path) -> list[dict]:
    """Seed-major, so a deadline leaves whole seeds of every configuration rather than some configurations."""
    jobs = []
    for seed in seeds:
        for model, cfgs in grids.items():
            for i, cfg in enumerate(cfgs):
                for data, data_over in DEV_DATA.items():
                    # test=false: the dev stage never evaluates on a test set
                    over = [*data_over, f"seed={seed}", f"trainer.max_epochs={epochs(data)}", "test=false"]
                    over += [f"{k}={v}" for k, v in cfg.items()]
                    name = f"{model}_c{i}_{data}_s{seed}"
                    jobs.append(job(model, data, over, out / "dev" / name, cfg=i, seed=seed))
    return jobs


def final_jobs(winners: dict[str, dict], epochs, out: Path) -> list[dict]:
    """As the README measures: SST-2 and SST-1 with seeds 1-3 (sentence_models), MR's ten folds (mr_10fold)."""
    jobs = []
    for m, row in winners.items():
        cfg = [f"{k}={v}" for k, v in row["params"].items()]
        for data in ("sst2", "sst5"):
            for seed in (1, 2, 3):
                over = [f"data={data}", f"seed={seed}", f"trainer.max_epochs={epochs(data)}", *cfg]
                jobs.append(job(m, data, over, out / "final" / f"{m}_{data}_s{seed}", seed=seed))
        for fold in range(10):
            over = ["data=mr", f"data.fold={fold}", f"trainer.max_epochs={epochs('mr')}", *cfg]
            jobs.append(job(m, "mr", over, out / "final" / f"{m}_mr_f{fold}", fold=fold))
    return jobs


def final_table(winners: dict[str, dict], runs: list[dict]) -> list[dict]:
    table = []
    for m, row in winners.items():
        for data in ("sst2", "sst5", "mr"):
            accs = [100 * r["test/acc"] for r in runs if (r["model"], r["data"]) == (m, data) and r.get("test/acc")]
            table.append(
                {
                    "model": m,
                    "data": data,
                    "config": row["params"],
                    "n": len(accs),
                    "mean": round(statistics.mean(accs), 2) if accs else None,
                    "std": round(statistics.stdev(accs), 2) if len(accs) > 1 else None,
                    "runs": accs,
                }
            )
    return table


def print_ranking(ranking: dict[str, list[dict]]) -> None:
    def pct(x):
        return f"{100 * x:6.2f}" if x is not None else "     -"

    print(f"{'model':6} {'configuration':60} {'sst2':>6} {'sst5':>6} {'mr0':>6} {'mean':>6}")
    for m, rows in ranking.items():
        for row in rows:
            cells = " ".join(pct(row["dev"].get(d)) for d in DEV_DATA)
            params = " ".join(f"{k.removeprefix('model.')}={v}" for k, v in row["params"].items())
            print(f"{m:6} {params:60} {cells} {pct(row['score'])}")


def main(argv: list[str]) -> int:
    args, extra = parse_args(argv)
    out = Path(args["out"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    models, n = args["models"], args["jobs"]
    grids = {m: configs(GRIDS[args["grid"]][m]) for m in models}
    t0 = time.time()
    deadline = t0 + args["deadline_s"] if args["deadline_s"] > 0 else None

    def epochs(data: str) -> int:
        return max(1, round(EPOCHS[data] * args["epochs_scale"]))

    jobs = dev_jobs(grids, args["seeds"], epochs, out)
    print(f"stage 1: {len(jobs)} dev runs, {n} at a time", flush=True)
    records = run_all(jobs, extra, n, deadline)
    ranking = {m: rank(records, m, grids[m]) for m in models}
    dev = {"args": args, "extra": extra, "runs": records, "ranking": ranking}
    (out / "dev.json").write_text(json.dumps(dev, indent=1))
    print(f"\nstage 1 done in {time.time() - t0:.0f} s; mean best-epoch validation accuracy (%)")
    print_ranking(ranking)
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        print(f"{len(failed)} dev runs failed; the first: {' '.join(failed[0]['overrides'])}: {failed[0]['error']}")
    if not args["final"]:
        return 0

    winners = {m: ranking[m][0] for m in models if ranking[m][0]["score"] is not None}
    if not winners:
        print("no configuration finished on all three dev sets; nothing to test", file=sys.stderr)
        return 1
    jobs = final_jobs(winners, epochs, out)
    print(f"\nstage 2: {len(jobs)} test runs with the winners", flush=True)
    runs = run_all(jobs, extra, n, None)
    table = final_table(winners, runs)
    (out / "final.json").write_text(json.dumps({"args": args, "extra": extra, "table": table, "runs": runs}, indent=1))
    print(f"\nstage 2 done; test accuracy (%) of the dev winners, {time.time() - t0:.0f} s in all")
    for t in table:
        std = f" ± {t['std']:.2f}" if t["std"] is not None else ""
        mean = f"{t['mean']:.2f}" if t["mean"] is not None else "-"
        print(f"{t['model']:6} {t['data']:5} n={t['n']:2}  {mean}{std}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
