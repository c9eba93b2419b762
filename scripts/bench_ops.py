"""Forward + backward time of nnlab's hand-derived ops against torch's, in the same run.

    PYTHONPATH=src python scripts/bench_ops.py [--threads 2] [--min-run 1.0] [--out bench_ops.json]

CPU, float32, ``torch.utils.benchmark`` (blocked autorange, median). Prints a table with ours / torch
and writes the rows as JSON (default ``bench_ops.json`` in the working directory). Targets (issue 3):
batch norm <= 1.5x, conv <= 2.0x, max/avg pool <= 2.0x.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from nnlab import ops
from nnlab.ops import batchnorm

TARGETS = {"batch_norm": 1.5, "batch_norm[fused]": 1.5, "conv2d": 2.0, "max_pool2d": 2.0, "avg_pool2d": 2.0}


def _case(name: str, shape: tuple[int, ...], make: Callable[[], tuple], ours: Callable, theirs: Callable):
    return {"op": name, "shape": shape, "make": make, "ours": ours, "torch": theirs}


def cases() -> list[dict]:
    g = torch.Generator().manual_seed(0)

    def bn_make(shape):
        def make():
            C = shape[1]
            x = torch.randn(*shape, generator=g).requires_grad_()
            w = torch.rand(C, generator=g).add_(0.5).requires_grad_()
            b = torch.randn(C, generator=g).requires_grad_()
            return x, torch.zeros(C), torch.ones(C), w, b

        return make

    def bn(fn):
        return lambda x, rm, rv, w, b: fn(x, rm, rv, w, b, True)

    def fused(fn):
        # The same op with its math compiled by torch.compile (the first call compiles, in the warm-up).
        def run(*args):
            batchnorm.set_fused(True)
            try:
                return fn(*args)
            finally:
                batchnorm.set_fused(False)

        return run

    def conv_make():
        x = torch.randn(64, 32, 32, 32, generator=g).requires_grad_()
        w = (torch.randn(64, 32, 3, 3, generator=g) * 0.05).requires_grad_()
        b = torch.zeros(64).requires_grad_()
        return x, w, b

    def pool_make():
        return (torch.randn(64, 64, 32, 32, generator=g).requires_grad_(),)

    def pos_pool_make():
        return (torch.rand(64, 64, 32, 32, generator=g).requires_grad_(),)

    out = [
        _case("batch_norm", (256, 512), bn_make((256, 512)), bn(ops.batch_norm), bn(F.batch_norm)),
        _case("batch_norm", (64, 64, 32, 32), bn_make((64, 64, 32, 32)), bn(ops.batch_norm), bn(F.batch_norm)),
        _case("batch_norm[fused]", (256, 512), bn_make((256, 512)), fused(bn(ops.batch_norm)), bn(F.batch_norm)),
        _case(
            "batch_norm[fused]",
            (64, 64, 32, 32),
            bn_make((64, 64, 32, 32)),
            fused(bn(ops.batch_norm)),
            bn(F.batch_norm),
        ),
        _case(
            "conv2d",
            (64, 32, 32, 32),
            conv_make,
            lambda x, w, b: ops.conv2d(x, w, b, padding=1),
            lambda x, w, b: F.conv2d(x, w, b, padding=1),
        ),
        _case("max_pool2d", (64, 64, 32, 32), pool_make, lambda x: ops.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2)),
        _case("avg_pool2d", (64, 64, 32, 32), pool_make, lambda x: ops.avg_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2)),
        _case(
            "lp_pool2d",
            (64, 64, 32, 32),
            pos_pool_make,
            lambda x: ops.lp_pool2d(x, 2.0, 2),
            lambda x: F.lp_pool2d(x, 2.0, 2),
        ),
        # No torch counterpart: timed against torch's max pool, the cheapest 2x2 pool, for scale.
        _case(
            "stochastic_pool2d",
            (64, 64, 32, 32),
            pos_pool_make,
            lambda x: ops.stochastic_pool2d(x, 2, training=True),
            lambda x: F.max_pool2d(x, 2),
        ),
        _case(
            "mixed_pool2d",
            (64, 64, 32, 32),
            pool_make,
            lambda x: ops.mixed_pool2d(x, 0.5, 2),
            lambda x: F.max_pool2d(x, 2),
        ),
    ]
    return out


def fwd_bwd(fn: Callable, args: tuple) -> None:
    y = fn(*args)
    y.backward(torch.ones_like(y))


def time_one(fn: Callable, args: tuple, min_run: float, threads: int) -> float:
    t = benchmark.Timer(
        stmt="fwd_bwd(fn, args)", globals={"fwd_bwd": fwd_bwd, "fn": fn, "args": args}, num_threads=threads
    )
    return t.blocked_autorange(min_run_time=min_run).median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-run", type=float, default=1.0, help="seconds of timing per measurement")
    ap.add_argument("--out", default="bench_ops.json")
    ap.add_argument("--only", default=None, help="comma-separated op names to run")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    print(f"torch {torch.__version__}, {a.threads} threads, float32, forward + backward, median of blocked runs")
    print(f"{'op':<18} {'shape':<18} {'ours ms':>9} {'torch ms':>9} {'ours/torch':>11} {'target':>7}")
    for c in cases():
        if a.only and c["op"] not in a.only.split(","):
            continue
        args = c["make"]()
        for fn in (c["ours"], c["torch"]):  # warm-up (allocator, first-call dispatch, compilation)
            fwd_bwd(fn, args)
            fwd_bwd(fn, args)
        ours = time_one(c["ours"], args, a.min_run, a.threads)
        theirs = time_one(c["torch"], args, a.min_run, a.threads)
        ratio = ours / theirs
        target = TARGETS.get(c["op"])
        row = {
            "op": c["op"],
            "shape": list(c["shape"]),
            "ours_ms": ours * 1e3,
            "torch_ms": theirs * 1e3,
            "ratio": ratio,
            "target": target,
            "meets_target": None if target is None else ratio <= target,
            "baseline": "torch " + ("max_pool2d" if c["op"] in ("stochastic_pool2d", "mixed_pool2d") else c["op"]),
        }
        rows.append(row)
        tgt = "-" if target is None else f"<={target:.1f}"
        print(
            f"{c['op']:<18} {str(tuple(c['shape'])):<18} {ours * 1e3:9.2f} {theirs * 1e3:9.2f} {ratio:10.2f}x {tgt:>7}"
        )
    meta = {
        "torch": torch.__version__,
        "threads": a.threads,
        "dtype": "float32",
        "device": "cpu",
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    with open(a.out, "w") as f:
        json.dump(meta, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
