"""model=lm through train.py and the LM scripts: configs, metrics.json, checkpoints, generation, embeddings."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as L
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from conftest import FAST, ROOT, compose_cfg, run_cli
from nnlab.cli import run_command
from nnlab.data.corpus import CorpusDataModule
from nnlab.models.lm import LanguageModel
from nnlab.utils.errors import ConfigError

WORDS = "the market rose as investors bought shares of the bank and sold bonds".split()


def write_corpus(folder: Path, seed: int, words=WORDS) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for split, n in (("train", 300), ("val", 60), ("test", 60)):
        lines = [" ".join(words[i] for i in torch.randint(len(words), (8,), generator=g)) for _ in range(n)]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        out.append(f"data.{split}={folder / f'{split}.txt'}")
    return out


TINY = ["model=lm", "data=local_corpus", "model.emsize=16", "model.nhid=16", "data.bptt=8", "data.batch_size=4"]


@pytest.mark.parametrize("experiment", ["ptb_small", "ptb_medium", "lm_grid"])
def test_experiments_compose(experiment):
    cfg = compose_cfg(overrides=[f"experiment={experiment}"])
    assert get_class(cfg.model._target_).modality == get_class(cfg.data._target_).modality == "tokens"
    assert cfg.optimized_metric == "val/ppl" and cfg.optimize_mode == "min"
    assert cfg.data.name == "ptb" and cfg.model.cell == "lstm"
    if experiment == "lm_grid":
        assert cfg.model.nhid == cfg.model.emsize
        sweep = OmegaConf.load(ROOT / "conf" / "experiment" / "lm_grid.yaml").hydra.sweeper.params
        assert set(sweep) == {"model.emsize", "model.nlayers", "model.dropout"}


def test_model_lm_defaults_to_ptb_and_data_wins():
    assert compose_cfg(overrides=["model=lm"]).data.name == "ptb"
    assert compose_cfg(overrides=["model=lm", "data=wikitext2"]).data.name == "wikitext2"


def test_generate_and_embeddings_scripts_in_process(tmp_path, capsys):
    data = write_corpus(tmp_path / "a", 0)
    dm = CorpusDataModule("local_corpus", **{a.split("=")[0][5:]: a.split("=")[1] for a in data}, batch_size=4)
    dm.setup("fit")
    torch.manual_seed(0)
    model = LanguageModel(dm.model_kwargs()["vocab"], emsize=16, nhid=16, nlayers=1)
    ck = ModelCheckpoint(dirpath=tmp_path / "ck", filename="best")
    L.Trainer(
        max_epochs=1, limit_train_batches=3, limit_val_batches=2, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[ck], num_sanity_val_steps=0,
    ).fit(model, dm)  # fmt: skip
    ckpt = f"ckpt_path={tmp_path / 'ck' / 'best.ckpt'}"
    a = run_command("generate", [ckpt, "prompt=the market zzz", "words=12", "seed=3"])
    assert a == run_command("generate", [ckpt, "prompt=the market zzz", "words=12", "seed=3"])
    assert a != run_command("generate", [ckpt, "prompt=the market zzz", "words=12", "seed=4"])
    assert a.startswith("the market zzz") and len(a.split()) + a.count("\n") == 15  # <eos> is a line break
    assert "zzz" in capsys.readouterr().err  # reported as <unk>
    run_command("embeddings", [ckpt, f"out={tmp_path / 'emb.npz'}", "top=5", "words=[bank,shares,zebra]"])
    z = np.load(tmp_path / "emb.npz")
    assert z["vectors"].shape == (len(dm.vocab), 16) and int(z["top"]) == 5
    assert list(z["vocab"]) == dm.vocab.itos
    assert [z["vocab"][i] for i in z["chosen"]] == ["bank", "shares"]
    torch.testing.assert_close(
        torch.from_numpy(z["vectors"]), LanguageModel.from_checkpoint(ckpt[10:]).net.encoder.weight
    )
    with pytest.raises(ConfigError, match="ckpt_path"):
        run_command("generate", [])
    with pytest.raises(ConfigError, match="missing.ckpt does not exist"):
        run_command("embeddings", [f"ckpt_path={tmp_path / 'missing.ckpt'}"])


@pytest.mark.slow
def test_train_then_generate_embeddings_and_vocab_mismatch(tmp_path):
    run_dir = tmp_path / "run"
    data_a = write_corpus(tmp_path / "a", 0)
    # lr 20 is tuned for PTB-sized models; on 13 words and 16 units it overshoots
    res = run_cli("train.py", *FAST, *TINY, *data_a, "trainer.max_epochs=3", "model.optimizer.lr=2.0", run_dir=run_dir,
                  timeout=900)  # fmt: skip
    assert res.rc == 0, res
    m = res.metrics
    assert m["status"] == "ok" and m["optimized_metric"] == "val/ppl"
    assert math.isclose(m["test/ppl"], math.exp(m["test/loss"]), rel_tol=1e-5)
    assert m["val/ppl"] < len(WORDS) + 2  # better than uniform over the vocabulary
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    assert torch.load(ckpt, weights_only=True)["nnlab"]["model_kwargs"]["vocab"][0] == "the"

    def script(name, *args):
        return subprocess.run(
            [sys.executable, str(ROOT / "scripts" / name), f"ckpt_path={ckpt}", *args],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip

    a = script("generate.py", "prompt=the market", "words=12", "seed=3")
    b = script("generate.py", "prompt=the market", "words=12", "seed=3")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.startswith("the market")
    text = a.stdout.rstrip("\n")
    assert len(text.split()) + text.count("\n") == 14  # <eos> is printed as a line break
    emb = script("embeddings.py", "out=emb.npz", "top=5", "words=[bank,shares,zebra]")
    assert emb.returncode == 0, emb.stderr
    assert "zebra" in emb.stderr
    z = np.load(tmp_path / "emb.npz")
    assert z["vectors"].shape == (len(z["vocab"]), 16) and int(z["top"]) == 5
    assert [z["vocab"][i] for i in z["chosen"]] == ["bank", "shares"]

    # The same checkpoint on a corpus with another vocabulary: one clear line, exit 2.
    data_b = write_corpus(tmp_path / "b", 1, words=WORDS[:-1] + ["zebra"])
    bad = run_cli(
        "train.py", *FAST, *TINY, *data_b, "train=false", f"ckpt_path={ckpt}", run_dir=tmp_path / "bad", timeout=600
    )
    assert bad.rc == 2, bad
    line = bad.stderr.strip().splitlines()[-1]
    assert "trained with another vocab" in line and "first difference at" in line, line


def test_report_of_an_lm_grid_is_the_grid_table(tmp_path, capsys):
    """``nnlab report by=[model.emsize,model.nlayers,model.dropout]`` on an ``experiment=lm_grid`` sweep: the
    grid table of docs/results.md, best val ppl first, failed jobs listed, every job in summary.json."""
    for i, (size, ppl) in enumerate([(50, 180.0), (200, 120.0)]):
        job = tmp_path / "sweep" / str(i)
        job.mkdir(parents=True)
        over = [f"model.emsize={size}", "model.nlayers=2", "model.dropout=0.3"]
        rec = {"overrides": over, "status": "ok", "params": 1000 * size, "val/ppl": ppl, "test/ppl": ppl - 5}
        (job / "metrics.json").write_text(json.dumps({**rec, "epoch": 3, "wall_s": 10.0}))
    (tmp_path / "sweep" / "2").mkdir()
    (tmp_path / "sweep" / "2" / "metrics.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    run_command("report", [f"sweep_dir={tmp_path / 'sweep'}", "by=[model.emsize,model.nlayers,model.dropout]"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    assert rows[0].startswith("| model.emsize | model.nlayers | model.dropout | runs | failed | val/ppl")
    assert "| params | epochs | train s/epoch | wall s" in rows[0]
    # best val ppl first
    assert rows[1].startswith("| 200 | 2 | 0.3 | 1 | 0 | 120.0 | 115.0 | 200,000 | 3 | 3.3 | 10 |")
    assert rows[2].startswith("| 50 |") and rows[3].startswith("|  |  |  | 1 | 1 | — |")
    assert any("boom" in line for line in lines[lines.index(rows[3]) + 1 :])
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["ok", "ok", "failed"]
    assert summary["jobs"][1] | {"model.emsize": "200", "val/ppl": 120.0, "params": 200000} == summary["jobs"][1]


_PAGE_FAULTS = """
import resource, sys, torch
from nnlab.utils.malloc import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.set_num_threads(1)
# 64 MiB is above glibc's largest dynamic mmap threshold (32 MiB on 64-bit), so by default every such buffer
# is a fresh mmap whose 16,384 pages fault in again when touched, whatever else the machine is doing; the
# LM's logits (28 MB) sit just under it, where glibc's choice depends on the history of frees.
def step():
    buf = torch.empty(16 * 2**20)
    buf.fill_(1.0)
    return float(buf[-1])
for _ in range(8):  # kept, the heap still grows over the first few (3-6 here)
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow  # ~10 s (two fresh interpreters importing torch): `make test-slow`, run by CI
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_stops_refaulting_large_buffers():
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _PAGE_FAULTS, mode], capture_output=True, text=True, check=True)
        applied, n = out.stdout.split()
        return applied, int(n)

    applied, kept = faults("keep")
    assert applied == "True"
    _, default = faults("default")
    pages = 20 * 16 * 2**20 * 4 // 4096
    assert default >= 0.9 * pages  # each of the 20 steps faulted its 64 MiB in again
    assert kept < 0.1 * pages  # reused from the heap: no new pages once the heap has grown


@pytest.mark.slow  # long (15-60 s): `make test-slow`, run by CI
@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "ptb").is_dir(), reason="shared PTB not present")
def test_bench_lm_runs_both_loops_and_writes_json(tmp_path):
    args = ["batches=2", "warmup=1", "repeats=2", "emsize=16", "nhid=16", "nlayers=1", "threads=1"]
    env = {**os.environ, "DATA_DIR": str(ROOT.parent / "shared" / "data")}
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_lm.py"), *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ratio lightning / plain" in out.stdout
    result = json.loads((tmp_path / "bench_lm.json").read_text())
    assert result["malloc_keep_freed_memory"] is True
    assert len(result["tokens_per_s"]["plain"]) == len(result["tokens_per_s"]["lightning"]) == 2
    assert all(v > 0 for v in result["median_tokens_per_s"].values())
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_lm.py"), "malloc=jemalloc"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode != 0 and "malloc=jemalloc is not one of keep, default" in bad.stderr
