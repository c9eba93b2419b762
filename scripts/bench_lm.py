"""Training throughput of model=lm under Lightning against a minimal plain-PyTorch loop, in one process.

    python scripts/bench_lm.py [batches=60] [warmup=5] [repeats=3] [data_dir=../shared/data]
        [dataset=ptb] [cell=lstm] [emsize=200] [nhid=200] [nlayers=2] [dropout=0.0] [tie_weights=true]
        [batch_size=20] [bptt=35] [threads=0 (torch's default)] [malloc=keep|default]

Both train the same RNNLM (same init, data windows, SGD lr 20, clip 0.25, TBPTT with detached state) on the
first ``warmup + batches`` training windows; only the last ``batches`` are timed. The two are run in turn
``repeats`` times (alternating which goes first) and the medians compared, so a change of load on a shared
machine hits both alike.
``malloc=keep`` (the default, as in ``train.py``'s ``extras.keep_freed_memory``) makes glibc reuse freed
memory for both loops (``nnlab.utils.malloc``); ``malloc=default`` leaves the allocator alone, where each step
re-faults its large buffers and the loop that frees them earlier (Lightning's) pays more page faults.
Prints a table and writes bench_lm.json in the working directory.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import pytorch_lightning as L
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from nnlab.data.corpus import CorpusDataModule
from nnlab.models.lm import LanguageModel
from nnlab.nn.rnnlm import RNNLM, detach_hidden
from nnlab.utils.malloc import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {
    "batches": 60, "warmup": 5, "repeats": 3, "dataset": "ptb",
    "data_dir": os.environ.get("DATA_DIR", str(ROOT.parent / "shared" / "data")),
    "cell": "lstm", "emsize": 200, "nhid": 200, "nlayers": 2, "dropout": 0.0, "tie_weights": True,
    "batch_size": 20, "bptt": 35, "lr": 20.0, "clip": 0.25, "seed": 0, "threads": 0, "malloc": "keep",
}  # fmt: skip
NET_KEYS = ("cell", "emsize", "nhid", "nlayers", "dropout", "tie_weights")


def plain_loop(cfg, windows: list) -> float:
    """Tokens/s of the textbook loop: forward, mean token NLL, backward, clip, SGD step, detach."""
    torch.manual_seed(cfg.seed)
    net = RNNLM(cfg.ntoken, **{k: cfg[k] for k in NET_KEYS})
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    hidden, tokens, start = None, 0, 0.0
    for i, (x, y) in enumerate(windows):
        if i == cfg.warmup:
            start, tokens = time.perf_counter(), 0
        logits, hidden = net(x, hidden)
        hidden = detach_hidden(hidden)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
        opt.step()
        tokens += y.numel()
    return tokens / (time.perf_counter() - start)


class _Timer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.tokens, self.start, self.end = warmup, 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.tokens += batch[1].numel()
            self.end = time.perf_counter()


def lightning_loop(cfg, dm: CorpusDataModule) -> float:
    """Tokens/s of LanguageModel.fit on the same windows (no validation, logger or checkpoints)."""
    torch.manual_seed(cfg.seed)
    model = LanguageModel(
        dm.model_kwargs()["vocab"], **{k: cfg[k] for k in NET_KEYS}, clip=cfg.clip,
        optimizer=partial(torch.optim.SGD, lr=cfg.lr), scheduler=None,
    )  # fmt: skip
    timer = _Timer(cfg.warmup)
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=cfg.warmup + cfg.batches, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        callbacks=[timer], num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, dm)
    return timer.tokens / (timer.end - timer.start)


def main(argv: list[str]) -> dict:
    cfg = OmegaConf.merge(DEFAULTS, OmegaConf.from_dotlist(argv))
    if cfg.threads > 0:
        # On an oversubscribed machine one thread per process avoids OpenMP spin-waiting (often 3x faster).
        torch.set_num_threads(cfg.threads)
    if cfg.malloc not in ("keep", "default"):
        raise SystemExit(f"error: malloc={cfg.malloc} is not one of keep, default")
    kept = cfg.malloc == "keep" and keep_freed_memory()
    dm = CorpusDataModule(cfg.dataset, cfg.data_dir, batch_size=cfg.batch_size, bptt=cfg.bptt, seed=cfg.seed)
    dm.setup("fit")
    cfg.ntoken = len(dm.vocab)
    windows = list(dm.windows["train"])[: cfg.warmup + cfg.batches]
    runs = {"plain": [], "lightning": []}
    for i in range(cfg.repeats):
        # Alternate which loop goes first, so a drift of the machine's load favours neither.
        order = ("plain", "lightning") if i % 2 == 0 else ("lightning", "plain")
        for name in order:
            runs[name].append(plain_loop(cfg, windows) if name == "plain" else lightning_loop(cfg, dm))
        print(f"repeat {i + 1}: plain {runs['plain'][-1]:,.0f} tok/s, lightning {runs['lightning'][-1]:,.0f} tok/s")
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "config": OmegaConf.to_container(cfg),
        "tokens_per_s": runs,
        "median_tokens_per_s": med,
        "ratio_lightning_over_plain": med["lightning"] / med["plain"],
        "threads": torch.get_num_threads(),
        "malloc_keep_freed_memory": kept,
        "torch": torch.__version__,
    }
    print(f"malloc: {'freed memory kept' if kept else 'glibc default'}, threads: {torch.get_num_threads()}")
    print(f"{'loop':<10} {'median tok/s':>13}   runs")
    for k, v in runs.items():
        print(f"{k:<10} {med[k]:>13,.0f}   " + ", ".join(f"{x:,.0f}" for x in v))
    print(f"ratio lightning / plain: {result['ratio_lightning_over_plain']:.3f}")
    Path("bench_lm.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
