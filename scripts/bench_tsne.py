"""Benchmark: nnlab's exact t-SNE vs scikit-learn (exact, Barnes-Hut) and openTSNE, side by side in one run.

    nice -n 5 python scripts/bench_tsne.py     # digits + 5,000 Fashion-MNIST: table, JSON, plots
    python scripts/bench_tsne.py datasets=[digits] repeats=3
    python scripts/bench_tsne.py crossover=[2000,5000,10000]   # exact vs openTSNE time, for AUTO_EXACT_MAX_N

All methods get perplexity 30 and their own defaults otherwise (openTSNE with n_jobs=2). Columns: wall time of
the whole fit (affinities included), the KL each library reports, the KL of every embedding re-measured
against the same exact P (perplexity 30, float64) so that the numbers are comparable (openTSNE and
Barnes-Hut report KL against their own sparse kNN P), trustworthiness (n_neighbors=10) and leave-one-out
10-NN accuracy in 2-D. The load average is recorded with every run: the machine is shared, so read
wall times with it. Writes bench_tsne.json and bench_tsne_<dataset>.png in out_dir (default: cwd).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from nnlab.cli.args import Command, Key, at_least, parse_script
from nnlab.data import load_image_arrays
from nnlab.tsne import TSNE, joint_probabilities, kl_gradient, knn_accuracy, trustworthiness
from nnlab.utils.subsets import balanced_subset

PERPLEXITY = 30.0


def load_dataset(name: str, n: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X.astype(np.float64), y
    if name.startswith("fashion"):
        from sklearn.decomposition import PCA

        # local IDX files ($DATA_DIR/fashion_mnist or the Debian package), as ImageDataModule finds them
        images, labels, _, _, _ = load_image_arrays("fashion_mnist", os.environ.get("DATA_DIR", "data"))
        idx = balanced_subset(labels, n or 5000, seed=seed)
        X = images[idx].reshape(len(idx), -1).astype(np.float64) / 255.0
        return PCA(n_components=50, random_state=seed).fit_transform(X), labels[idx]
    raise SystemExit(f"unknown dataset {name!r}; choose digits or fashion")


def run_method(method: str, X: np.ndarray, seed: int) -> tuple[np.ndarray, float, float]:
    """(embedding, wall seconds, KL reported by the library)."""
    t0 = time.perf_counter()
    if method.startswith("nnlab-exact"):
        # nnlab-exact-ee4: early exaggeration 4 (learning rate "auto" follows: N / 4 / 4), which trades a little
        # of the early cluster separation for neighbourhoods as faithful as the kNN-affinity methods'
        ee = 4.0 if method == "nnlab-exact-ee4" else 12.0
        est = TSNE(perplexity=PERPLEXITY, method="exact", random_state=seed, early_exaggeration=ee)
        Y = est.fit_transform(X)
        kl = est.kl_divergence_
    elif method.startswith("sklearn"):
        from sklearn.manifold import TSNE as SkTSNE

        sk = SkTSNE(
            perplexity=PERPLEXITY,
            method="exact" if method == "sklearn-exact" else "barnes_hut",
            random_state=seed,
            n_jobs=2,
        )
        Y = sk.fit_transform(X)
        kl = float(sk.kl_divergence_)
    elif method == "opentsne":
        from openTSNE import TSNE as OpenTSNE

        emb = OpenTSNE(perplexity=PERPLEXITY, n_jobs=2, random_state=seed).fit(X)
        Y, kl = np.asarray(emb), float(emb.kl_divergence)
    else:
        raise SystemExit(f"unknown method {method!r}")
    return np.asarray(Y, dtype=np.float32), time.perf_counter() - t0, kl


def exact_kl(P: torch.Tensor, Y: np.ndarray) -> float:
    _, kl = kl_gradient(P, torch.as_tensor(Y, dtype=torch.float64), with_kl=True)
    return float(kl)


def plot(dataset: str, results: list[dict], embeddings: dict[str, np.ndarray], labels: np.ndarray, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(embeddings)
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.4), squeeze=False)
    for ax, m in zip(axes[0], methods):
        Y = embeddings[m]
        r = next(r for r in results if r["method"] == m)
        ax.scatter(Y[:, 0], Y[:, 1], c=labels, cmap="tab10", s=2, linewidths=0, rasterized=True)
        ax.set_title(f"{m}\n{r['wall_s']:.1f} s, KL {r['kl_exact_p']:.3f}, T {r['trustworthiness']:.4f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"t-SNE of {dataset} (n={len(labels)}, perplexity {PERPLEXITY:g})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench(args: SimpleNamespace) -> dict:
    out: dict = {"perplexity": PERPLEXITY, "machine": machine_info(), "datasets": {}}
    for dataset in args.datasets:
        X, labels = load_dataset(dataset, args.n_fashion, args.seed)
        name = dataset if dataset == "digits" else f"fashion{len(X)}"
        methods = list(args.methods)
        if dataset != "digits" and not args.sklearn_exact_everywhere and "sklearn-exact" in methods:
            methods.remove("sklearn-exact")  # O(n^2) in Python-level numpy: ~10 min at n = 5000
        P = joint_probabilities(torch.as_tensor(X), PERPLEXITY, dtype=torch.float64)
        results, embeddings = [], {}
        for method in methods:
            for rep in range(args.repeats if method in ("nnlab-exact", "nnlab-exact-ee4", "opentsne") else 1):
                load_before = os.getloadavg()[0]
                Y, wall, kl = run_method(method, X, args.seed)
                row = {
                    "dataset": name,
                    "method": method,
                    "repeat": rep,
                    "wall_s": round(wall, 3),
                    "kl_reported": round(kl, 4),
                    "kl_exact_p": round(exact_kl(P, Y), 4),
                    "trustworthiness": round(trustworthiness(X, Y, n_neighbors=10), 4),
                    "knn10_acc": round(knn_accuracy(Y, labels, k=10), 4),
                    "loadavg_1min_before": round(load_before, 2),
                }
                print(json.dumps(row), flush=True)
                results.append(row)
                embeddings.setdefault(method, Y)
        plot_path = Path(args.out_dir) / f"bench_tsne_{name}.png"
        plot(name, results, embeddings, labels, plot_path)
        out["datasets"][name] = {"n": len(X), "dim": X.shape[1], "results": results, "plot": str(plot_path)}
    return out


def crossover(args: SimpleNamespace) -> dict:
    rows = []
    for n in args.crossover:
        X, _ = load_dataset("fashion", n, args.seed)
        for method in ("nnlab-exact", "opentsne"):
            load_before = os.getloadavg()[0]
            _, wall, kl = run_method(method, X, args.seed)
            row = {"n": n, "method": method, "wall_s": round(wall, 2), "kl_reported": round(kl, 4),
                   "loadavg_1min_before": round(load_before, 2)}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    return {"crossover": rows, "machine": machine_info()}


def machine_info() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def print_table(result: dict) -> None:
    cols = ["dataset", "method", "wall_s", "kl_reported", "kl_exact_p", "trustworthiness", "knn10_acc",
            "loadavg_1min_before"]  # fmt: skip
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for d in result["datasets"].values():
        for r in d["results"]:
            print("| " + " | ".join(str(r[c]) for c in cols) + " |")


def main() -> None:
    methods = ("nnlab-exact", "nnlab-exact-ee4", "sklearn-exact", "sklearn-bh", "opentsne")
    args = parse_script(
        Command(
            "bench_tsne", __doc__.splitlines()[0],
            [
                Key("datasets", ["digits", "fashion"], "datasets", list, choices=("digits", "fashion")),
                Key("methods", list(methods), "methods", list, choices=methods),
                Key("n_fashion", 5000, "Fashion-MNIST points", int, check=at_least(10)),
                Key("repeats", 1, "repeats of the fast methods (ours, openTSNE)", int, check=at_least(1)),
                Key("seed", 0, "random seed", int, check=at_least(0)),
                Key("sklearn_exact_everywhere", False, "also run sklearn exact on Fashion", bool),
                Key("crossover", None, "sizes n: time exact vs openTSNE on Fashion-MNIST, e.g. [1000,4000]", list,
                    item=int),
                Key("out_dir", ".", "where the JSON goes"),
            ],
            prog="python scripts/bench_tsne.py",
        )
    )  # fmt: skip
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    if args.crossover:
        result = crossover(args)
        path = Path(args.out_dir) / "bench_tsne_crossover.json"
    else:
        result = bench(args)
        print_table(result)
        path = Path(args.out_dir) / "bench_tsne.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
