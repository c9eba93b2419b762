"""LanguageModel: perplexity over a whole split, TBPTT state, regularizers, generation, checkpoints."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as L
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint

from nnlab.data.corpus import CorpusDataModule
from nnlab.models.lm import LanguageModel, vocab_mismatch
from nnlab.nn.rnnlm import RNNLM, embedding_dropout, generate, locked_dropout
from nnlab.utils.errors import CheckpointError, ConfigError

WORDS = "the cat dog sat on a mat and ran far away".split()


def corpus(tmp_path: Path, seed: int = 0, words=WORDS, lines: int = 60) -> CorpusDataModule:
    g = torch.Generator().manual_seed(seed)
    paths = {}
    for split, n in (("train", lines), ("val", lines // 3), ("test", lines // 3)):
        text = "\n".join(
            " ".join(
                words[i] for i in torch.randint(len(words), (int(torch.randint(2, 9, (1,), generator=g)),), generator=g)
            )
            for _ in range(n)
        )
        p = tmp_path / f"{seed}_{split}.txt"
        p.write_text(text + "\n", encoding="utf-8")
        paths[split] = str(p)
    dm = CorpusDataModule("local_corpus", **paths, batch_size=3, eval_batch_size=2, bptt=4)
    dm.setup("fit")
    return dm


def trainer(**kw) -> L.Trainer:
    defaults = dict(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", num_sanity_val_steps=0,
    )  # fmt: skip
    return L.Trainer(**{**defaults, **kw})


def tiny(dm, **kw) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(dm.model_kwargs()["vocab"], emsize=8, nhid=8, nlayers=2, **kw)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_ppl_is_exp_of_total_nll_over_the_split(tmp_path, cell):
    dm = corpus(tmp_path)
    model = tiny(dm, cell=cell, tie_weights=cell == "lstm")
    res = trainer().validate(model, dm, verbose=False)[0]
    # By hand: the whole (T, B) val stream in one call from a zero state; this equals carrying the state
    # over the bptt windows, so it also checks the carry-over in evaluation.
    data = dm.windows["val"].data
    model.eval()
    with torch.no_grad():
        logits, _ = model.net(data[:-1])
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), data[1:].reshape(-1), reduction="sum")
    expected = math.exp(nll.item() / data[1:].numel())
    assert res["val/ppl"] == pytest.approx(expected, rel=1e-5)
    assert res["val/loss"] == pytest.approx(math.log(expected), rel=1e-5)
    # A second pass starts again from a zero state: the same number.
    assert trainer().validate(model, dm, verbose=False)[0]["val/ppl"] == pytest.approx(res["val/ppl"], rel=1e-6)


def test_training_carries_detached_state_and_resets_each_epoch(tmp_path):
    dm = corpus(tmp_path)
    model = tiny(dm)
    model.on_train_epoch_start()
    (x1, y1), (x2, y2) = list(dm.train_dataloader())[:2]
    model.training_step((x1, y1), 0)
    h1 = model._hidden["train"]
    assert all(t.grad_fn is None and t.abs().sum() > 0 for t in h1[0])
    loss2 = model.training_step((x2, y2), 1)
    torch.manual_seed(0)
    logits, _ = model.net(x2, h1)
    assert loss2.item() == pytest.approx(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y2.reshape(-1)).item())
    # The graph stops at the window boundary: gradients reach this window's parameters only once.
    loss2.backward()
    assert model.net.encoder.weight.grad is not None
    model.on_train_epoch_start()
    assert model._hidden["train"] is None


def test_learns_a_repetitive_corpus(tmp_path):
    words = ["a", "b", "c", "d", "e"]
    paths = {}
    for split in ("train", "val", "test"):
        p = tmp_path / f"{split}.txt"
        p.write_text("a b c d e\n" * (80 if split == "train" else 10), encoding="utf-8")
        paths[split] = str(p)
    dm = CorpusDataModule("local_corpus", **paths, batch_size=4, bptt=6)
    dm.setup("fit")
    model = LanguageModel(dm.model_kwargs()["vocab"], emsize=16, nhid=16, nlayers=1,
                          optimizer=partial(torch.optim.Adam, lr=0.02))  # fmt: skip
    assert len(words) + 2 == len(dm.vocab)
    tr = trainer(max_epochs=6)
    tr.fit(model, dm)
    assert tr.callback_metrics["val/ppl"] < 1.3  # a deterministic cycle: near-perfect prediction
    assert tr.callback_metrics["train/ppl"] < 2.0
    assert tr.test(model, dm, verbose=False)[0]["test/ppl"] < 1.3


def test_clip_bounds_the_global_grad_norm(tmp_path):
    model = tiny(corpus(tmp_path), clip=0.5)
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    model.on_before_optimizer_step(None)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm.item() == pytest.approx(0.5, rel=1e-4)


def test_default_optimizer_and_plateau_schedule(tmp_path):
    dm = corpus(tmp_path)
    model = tiny(
        dm,
        optimizer=partial(torch.optim.SGD, lr=1.0),
        scheduler=partial(torch.optim.lr_scheduler.ReduceLROnPlateau, factor=0.25, patience=0),
    )
    cfg = model.configure_optimizers()
    sched = cfg["lr_scheduler"]["scheduler"]
    assert cfg["lr_scheduler"]["monitor"] == "val/loss"
    sched.step(5.0)
    sched.step(5.0)  # no improvement: LR / 4
    assert cfg["optimizer"].param_groups[0]["lr"] == pytest.approx(0.25)
    assert isinstance(tiny(dm).configure_optimizers(), torch.optim.SGD)


def test_locked_and_embedding_dropout_masks():
    torch.manual_seed(0)
    x = torch.ones(7, 3, 50)
    y = locked_dropout(x, 0.5)
    assert torch.equal(y, y[:1].expand_as(y))  # one mask per sequence, shared over time
    assert set(y.unique().tolist()) <= {0.0, 2.0} and (y == 0).any()
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)
    w = torch.randn(100, 6)
    d = embedding_dropout(w, 0.3)
    dropped = (d == 0).all(dim=1)
    assert dropped.any() and not dropped.all()
    torch.testing.assert_close(d[~dropped], w[~dropped] / 0.7)


def test_weight_drop_masks_recurrent_weights_in_training_only():
    torch.manual_seed(0)
    net = RNNLM(30, "lstm", 8, 8, 2, wdrop=0.5)
    x = torch.randint(30, (5, 2))
    a, b = net(x)[0], net(x)[0]
    assert not torch.allclose(a, b)
    net.eval()
    torch.testing.assert_close(net(x)[0], net(x)[0])
    net.train()
    net(x)[0].sum().backward()
    raw = net.rnns[0].parametrizations.weight_hh_l0.original
    assert raw.grad is not None and (raw.grad == 0).any() and (raw.grad != 0).any()


def test_bad_config_values():
    with pytest.raises(ConfigError, match="model.cell"):
        RNNLM(10, cell="transformer")
    with pytest.raises(ConfigError, match="dropout"):
        RNNLM(10, dropout=1.0)


def test_tied_weights_share_the_matrix():
    net = RNNLM(40, "gru", emsize=6, nhid=10, nlayers=2, tie_weights=True)
    assert net.decoder.weight is net.encoder.weight
    assert net.rnns[-1].hidden_size == 6


def test_nt_asgd_averages_the_weights_seen_since_the_trigger(tmp_path):
    model = tiny(corpus(tmp_path), nt_asgd=True)
    params = list(model.parameters())
    snapshots = [[p.detach().clone() for p in params]]
    model._avg, model._avg_n = [p.detach().clone() for p in params], 1
    for _ in range(3):
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn_like(p))
        snapshots.append([p.detach().clone() for p in params])
        model.on_train_batch_end(None, None, 0)
    for i, a in enumerate(model._avg):
        torch.testing.assert_close(a, torch.stack([s[i] for s in snapshots]).mean(0))
    current = [p.detach().clone() for p in params]
    model._swap_average()
    torch.testing.assert_close(params[0].detach(), torch.stack([s[0] for s in snapshots]).mean(0))
    model._swap_average()
    torch.testing.assert_close(params[0].detach(), current[0])


def test_nt_asgd_checkpoint_holds_the_average_validation_scored(tmp_path):
    dm = corpus(tmp_path)
    model = tiny(dm, nt_asgd=True)
    t = trainer(max_epochs=1, default_root_dir=tmp_path)
    t.fit(model, dm)
    with torch.no_grad():
        model._avg = [p.detach() + 1.0 for p in model.parameters()]
    model._avg_n = 5
    raw = [p.detach().clone() for p in model.parameters()]
    # as ModelCheckpoint at an epoch's end: after validation, with the raw weights back in place
    t.save_checkpoint(tmp_path / "avg.ckpt")
    saved = torch.load(tmp_path / "avg.ckpt", weights_only=True)["state_dict"]
    for (n, p), a, r in zip(model.named_parameters(), model._avg, raw, strict=True):
        torch.testing.assert_close(saved[n], a)
        torch.testing.assert_close(p.detach(), r)
    loaded = LanguageModel.from_checkpoint(tmp_path / "avg.ckpt")
    torch.testing.assert_close(loaded.net.decoder.weight, saved["net.decoder.weight"])


def test_generation_is_reproducible_for_a_seed():
    torch.manual_seed(0)
    net = RNNLM(50, "lstm", 8, 8, 1, init_range=1.0)
    prompt = torch.tensor([1, 2, 3])

    def sample(seed, **kw):
        return generate(net, prompt, 30, generator=torch.Generator().manual_seed(seed), **kw)

    assert sample(0) == sample(0)
    assert sample(0) != sample(1)
    assert sample(0, temperature=0.0) == sample(5, top_k=1) == sample(6, top_k=1)
    top3 = set(sample(2, top_k=3, temperature=2.0))
    assert len(top3) > 1
    assert net.training  # generate restores the mode


def test_checkpoint_with_another_vocabulary_fails_with_one_line(tmp_path):
    dm = corpus(tmp_path)
    model = tiny(dm)
    ck = ModelCheckpoint(dirpath=tmp_path / "ck", filename="last")
    tr = trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, enable_checkpointing=True, callbacks=[ck])
    tr.fit(model, dm)
    path = tmp_path / "ck" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["vocab"] == dm.model_kwargs()["vocab"]
    # Same vocabulary: loads and evaluates.
    trainer().validate(tiny(dm), dm, ckpt_path=str(path), verbose=False)
    other = corpus(tmp_path, seed=1, words=WORDS[:-1] + ["zebra"])
    with pytest.raises(CheckpointError) as e:
        trainer().validate(tiny(other), other, ckpt_path=str(path), verbose=False)
    assert "\n" not in str(e.value) and "vocabulary" in str(e.value)


def test_vocab_mismatch_says_where():
    assert vocab_mismatch(["a", "b"], ["a", "b"]) is None
    assert "3 words instead of 2" in vocab_mismatch(["a", "b"], ["a", "b", "c"])
    assert "word 1 is 'c' instead of 'b'" in vocab_mismatch(["a", "b"], ["a", "c"])
