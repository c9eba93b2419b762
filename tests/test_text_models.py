"""Sentence encoders and TextClassifier: padding invariance, learning a separable set, checkpoints."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as L
import torch
from omegaconf import OmegaConf

from conftest import CONF
from nnlab.data import LocalTextDataModule
from nnlab.models.fasttext_sgd import (
    bag_shares,
    fasttext_kernel,
    fasttext_sgd_examples,
    fasttext_sgd_step,
    linear_rates,
)
from nnlab.models.text import TextClassifier, linear_decay
from nnlab.nn.fasttext import fasttext_hash
from nnlab.nn.text import (
    FastTextBag,
    KimCNN,
    RNNEncoder,
    WordDropout,
    build_encoder,
    make_embedding,
    max_norm_,
    pool_time,
)
from nnlab.utils.errors import CheckpointError, ConfigError
from nnlab.vocab import Vocab

REPO = Path(__file__).resolve().parents[1]

ENCODER_CONFIGS = {
    "cnn": dict(encoder="cnn", embed_dim=16, num_filters=8, optimizer=partial(torch.optim.Adam, lr=1e-2)),
    "cnn_ema": dict(encoder="cnn", embed_dim=16, num_filters=8, ema=0.9, optimizer=partial(torch.optim.Adam, lr=1e-2)),
    "cnn_mean": dict(
        encoder="cnn",
        embed_dim=16,
        num_filters=8,
        pool="mean",
        dropout=0.0,
        optimizer=partial(torch.optim.Adam, lr=1e-2),
    ),
    "lstm": dict(
        encoder="rnn",
        embed_dim=16,
        hidden_size=16,
        dropout=0.0,
        max_norm=None,
        optimizer=partial(torch.optim.Adam, lr=1e-2),
    ),
    "gru_max": dict(
        encoder="rnn",
        rnn_type="gru",
        pool="max",
        bidirectional=False,
        embed_dim=16,
        hidden_size=16,
        dropout=0.0,
        max_norm=None,
        optimizer=partial(torch.optim.Adam, lr=1e-2),
    ),
    "fasttext": dict(
        encoder="fasttext",
        embed_dim=8,
        ngrams=2,
        buckets=1000,
        dropout=0.0,
        max_norm=None,
        loss_reduction="sum",
        optimizer=partial(torch.optim.SGD, lr=0.5),
        scheduler=linear_decay,
        scheduler_interval="step",
    ),
    "fasttext_manual": dict(
        encoder="fasttext",
        embed_dim=8,
        ngrams=2,
        buckets=1000,
        dropout=0.0,
        max_norm=None,
        update="fasttext",
        optimizer=partial(torch.optim.SGD, lr=0.5),
        scheduler=linear_decay,
        scheduler_interval="step",
    ),
}


def _separable(path: Path, n: int, seed: int) -> Path:
    """Sentences of filler words with one cue word; the cue decides the label (``good``/``great`` vs
    ``bad``/``awful``), its position varies, so the model must find it anywhere in the sentence."""
    g = torch.Generator().manual_seed(seed)
    filler = [f"w{i}" for i in range(30)]
    cues = {"pos": ["good", "great"], "neg": ["bad", "awful"]}
    lines = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        length = int(torch.randint(2, 12, (1,), generator=g))
        words = [filler[int(j)] for j in torch.randint(0, len(filler), (length,), generator=g)]
        words.insert(int(torch.randint(0, length + 1, (1,), generator=g)), cues[label][i % 4 // 2])
        lines.append(f"{label} {' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    return _separable(d / "train.txt", 160, 0), _separable(d / "test.txt", 40, 1)


def _fit(tiny, cfg, tmp_path, epochs=12):
    torch.manual_seed(0)
    dm = LocalTextDataModule(train=str(tiny[0]), test=str(tiny[1]), batch_size=16, seed=0, tokenizer="whitespace")
    dm.setup("fit")
    model = TextClassifier(**dm.model_kwargs(), **cfg)
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, dm)
    return trainer, model, dm


@pytest.mark.parametrize("name", list(ENCODER_CONFIGS))
def test_each_encoder_learns_a_separable_set(tiny, tmp_path, name):
    trainer, model, dm = _fit(tiny, ENCODER_CONFIGS[name], tmp_path)
    (res,) = trainer.test(model, dm, verbose=False)
    assert res["test/acc"] == 1.0, res
    assert set(res) == {"test/loss", "test/acc", "test/f1"}
    if model.max_norm is not None:
        assert model.fc.weight.norm(dim=1).max() <= model.max_norm + 1e-5


def test_checkpoint_round_trip_with_vocab_weights_only_and_predict_script(tiny, tmp_path, capsys):
    trainer, model, dm = _fit(tiny, ENCODER_CONFIGS["cnn"], tmp_path)
    ckpt = tmp_path / "best.ckpt"
    trainer.save_checkpoint(ckpt)
    raw = torch.load(ckpt, weights_only=True)  # plain hyperparameters only
    assert raw["hyper_parameters"]["vocab"]["tokens"] == dm.vocab.itos
    loaded = TextClassifier.load(ckpt)
    texts = ["w1 w2 good w3", "awful w4", "never seen words bad"]
    torch.testing.assert_close(loaded.predict(texts), model.predict(texts))
    assert loaded.predict(texts).argmax(1).tolist() == [1, 0, 0]
    # predict.py in-process (tests/test_text_cli.py runs it as a subprocess on a train.py checkpoint)
    from nnlab.cli import main as nnlab

    assert nnlab(["predict", f"ckpt_path={ckpt}", *texts[:2]]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert rows[0].split()[0] == "pos" and rows[1].split()[0] == "neg"
    assert "pos=" in rows[0] and "neg=" in rows[0]
    assert nnlab(["predict", f"ckpt_path={tmp_path}/no.ckpt", "x"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no.ckpt" in err


def test_load_rejects_a_non_text_checkpoint(tmp_path):
    p = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"num_classes": 10}}, p)
    with pytest.raises(CheckpointError, match="not a TextClassifier"):
        TextClassifier.load(p)
    (tmp_path / "trunc.ckpt").write_bytes(p.read_bytes()[:20])
    with pytest.raises(CheckpointError):
        TextClassifier.load(tmp_path / "trunc.ckpt")


# ---------------------------------------------------------------------------------- encoder invariants


def _batch_with_padding(extra: int):
    tokens = torch.tensor([[5, 6, 7, 8], [9, 3, 0, 0]])
    lengths = torch.tensor([4, 2])
    return torch.nn.functional.pad(tokens, (0, extra)), lengths


@pytest.mark.parametrize(
    "make",
    [
        lambda e: KimCNN(e, (2, 3), 4, pool="max"),
        lambda e: KimCNN(e, (3, 5), 4, pool="mean"),
        lambda e: RNNEncoder(e, "lstm", 6, 2, True, "last"),
        lambda e: RNNEncoder(e, "gru", 6, 1, True, "max"),
        lambda e: RNNEncoder(e, "rnn", 6, 1, False, "mean"),
        lambda e: FastTextBag(12, 6, ngrams=3, buckets=50),
    ],
)
def test_sentence_vector_does_not_depend_on_batch_padding(make):
    torch.manual_seed(0)
    enc = make(make_embedding(12, 6, 0)).eval()
    base = enc(*_batch_with_padding(0))
    for extra in (1, 5):
        torch.testing.assert_close(enc(*_batch_with_padding(extra)), base)
    alone = enc(torch.tensor([[9, 3]]), torch.tensor([2]))
    torch.testing.assert_close(alone[0], base[1])


def test_cnn_handles_sentences_shorter_than_the_widest_filter():
    enc = KimCNN(make_embedding(12, 6, 0), (3, 4, 5), 4)
    out = enc(torch.tensor([[4]]), torch.tensor([1]))
    assert out.shape == (1, 12) and torch.isfinite(out).all()


def test_pool_time_masks_padding():
    x = torch.tensor([[[1.0, 5.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])
    assert pool_time(x, mask, "max").item() == 5.0
    assert pool_time(x, mask, "mean").item() == 3.0


def test_kmax_pool_uses_the_ops_kernel_or_says_it_is_missing():
    from nnlab import ops

    enc_args = (make_embedding(12, 6, 0), (2,), 3)
    if not hasattr(ops, "kmax_pool1d"):
        with pytest.raises(ConfigError, match="kmax_pool1d"):
            KimCNN(*enc_args, pool="kmax", k=2)(torch.tensor([[1, 2, 3]]), torch.tensor([3]))
    else:
        out = KimCNN(*enc_args, pool="kmax", k=2)(torch.tensor([[1, 2, 3]]), torch.tensor([3]))
        assert out.shape == (1, 6)


def test_fasttext_eos_ends_every_text_and_its_last_ngram():
    """The C++ fastText reads </s> at every line end: one more word per bag, with its own row after the
    vocabulary (buckets follow it), also in the last bigram; padding stays padding."""
    bag = FastTextBag(10, 4, ngrams=2, buckets=7, eos=True)
    assert bag.bag.weight.shape[0] == 10 + 1 + 7 and bag.eos_index == 10
    ids = bag.ngram_ids(torch.tensor([[2, 3, 4], [5, 0, 0]]), torch.tensor([3, 1]))
    assert ids[0, :4].tolist() == [2, 3, 4, 10] and ids[1, :4].tolist() == [5, 10, 0, 0]
    bigrams = ids[:, 4:]
    assert bigrams[0].tolist() == [11 + (a * FastTextBag.HASH_MULT + b) % 7 for a, b in ((2, 3), (3, 4), (4, 10))]
    assert bigrams[1].tolist() == [11 + (5 * FastTextBag.HASH_MULT + 10) % 7, 0, 0]
    # the bag is the mean over the words, </s> and the bigrams: the /|bag| share of the eos row is a scaled bias
    h = bag(torch.tensor([[2, 3, 4]]), torch.tensor([3]))
    assert torch.allclose(h[0], bag.bag.weight[ids[0]].mean(0))


def test_fasttext_ngram_ids_hash_only_valid_windows():
    bag = FastTextBag(10, 4, ngrams=2, buckets=7)
    ids = bag.ngram_ids(torch.tensor([[2, 3, 4], [5, 0, 0]]), torch.tensor([3, 1]))
    assert ids.shape == (2, 5)
    assert ids[0, :3].tolist() == [2, 3, 4] and (ids[0, 3:] >= 10).all()
    assert ids[1].tolist() == [5, 0, 0, 0, 0]  # no bigram for a one-word sentence
    assert ids[0, 3].item() == 10 + (2 * FastTextBag.HASH_MULT + 3) % 7


def test_unknown_encoder_option_is_one_line():
    with pytest.raises(ConfigError, match="model.hiden_size"):
        build_encoder("rnn", 10, 0, 8, hiden_size=3)
    with pytest.raises(ConfigError, match="model.encoder"):
        build_encoder("transformer", 10, 0, 8)


def test_pretrained_vectors_are_loaded(tmp_path):
    vec = tmp_path / "v.txt"
    vec.write_text("2 3\ngood 1 2 3\nbad -1 -2 -3\n")
    vocab = Vocab(["<pad>", "<unk>", "good", "other"]).to_dict()
    m = TextClassifier(vocab, 2, encoder="cnn", embed_dim=3, num_filters=2, pretrained=str(vec))
    assert m.encoder.embedding.weight[2].tolist() == [1.0, 2.0, 3.0]
    assert m.encoder.embedding.weight[0].abs().sum() == 0


def test_max_norm_rescales_only_long_rows():
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    max_norm_(w, 3.0)
    torch.testing.assert_close(w, torch.tensor([[1.8, 2.4], [0.3, 0.4]]))


def test_label_smoothing_is_the_training_target_only():
    """Training loss = (1 - eps) CE + eps * mean_k(-log p_k), written out here; val/test stay plain CE."""
    vocab = Vocab(["<pad>", "<unk>", "good", "bad"]).to_dict()
    m = TextClassifier(vocab, 3, encoder="cnn", embed_dim=4, num_filters=2, label_smoothing=0.3)
    m.log = lambda *a, **k: None
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    y = torch.tensor([0, 1])
    logp = logits.log_softmax(-1)
    nll = -logp[torch.arange(2), y]
    expected = (0.7 * nll + 0.3 * (-logp).mean(-1)).mean()
    torch.testing.assert_close(m._log_stage("train", logits, y), expected)
    torch.testing.assert_close(m._log_stage("val", logits, y), nll.mean())
    with pytest.raises(ConfigError, match=r"model.label_smoothing=1.0 must be in \[0, 1\)"):
        TextClassifier(vocab, 3, encoder="cnn", embed_dim=4, num_filters=2, label_smoothing=1.0)
    with pytest.raises(ConfigError, match="model.update=fasttext takes one-hot targets"):
        TextClassifier(
            vocab,
            3,
            encoder="fasttext",
            embed_dim=4,
            dropout=0.0,
            max_norm=None,
            update="fasttext",
            label_smoothing=0.1,
        )


def _fasttext_pair():
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", *[f"w{i}" for i in range(20)]]).to_dict()
    kw = dict(encoder="fasttext", embed_dim=4, ngrams=2, buckets=13, dropout=0.0, max_norm=None)
    a = TextClassifier(vocab, 3, **kw)
    torch.nn.init.normal_(a.fc.weight)  # non-zero output weights, so the input rows move in step one
    b = TextClassifier(vocab, 3, **kw)
    b.load_state_dict(a.state_dict())
    return a, b


def test_fasttext_step_equals_autograd_sgd_on_summed_loss():
    a, b = _fasttext_pair()
    tokens = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0], [8, 2, 9, 0]])
    lengths, y = torch.tensor([4, 2, 3]), torch.tensor([0, 2, 1])
    ids = a.encoder.ngram_ids(tokens, lengths)
    fasttext_sgd_step(a, ids, bag_shares(ids, 0), torch.nn.functional.one_hot(y, 3).float(), 0.3)
    opt = torch.optim.SGD(b.parameters(), lr=0.3)
    torch.nn.functional.cross_entropy(b(tokens, lengths), y, reduction="sum").backward()
    opt.step()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=name)


@pytest.mark.parametrize("words", [None, [f"w{i}" for i in range(30)]])
@pytest.mark.parametrize("unk", [None, 1])
@pytest.mark.parametrize("eos", [False, True])
@pytest.mark.parametrize("ngrams", [1, 2, 3])
def test_fasttext_bags_are_the_ngram_ids_rows_without_padding(eos, ngrams, unk, words):
    torch.manual_seed(0)
    hashing = "ids" if words is None else "words"
    bag = FastTextBag(30, 4, ngrams=ngrams, buckets=13, eos=eos, unk_idx=unk, words=words, ngram_hash=hashing)
    lengths = torch.tensor([4, 1, 2, 3, 1, 5])
    tokens = torch.randint(1, 4, (6, 5)) * (torch.arange(5)[None, :] < lengths[:, None])  # unk (1) a third
    tokens[1, 0] = 1  # a text of the unknown word only
    padded = bag.ngram_ids(tokens, lengths)
    ids, offsets = bag.bags(tokens[tokens != 0], lengths)
    assert offsets[0] == 0 and offsets[-1] == len(ids)
    for i, row in enumerate(padded):
        assert ids[offsets[i] : offsets[i + 1]].tolist() == row[row != 0].tolist()
    from_padded = bag.bags(tokens, lengths)  # the padded (N, L) tokens give the same bags
    assert torch.equal(from_padded[0], ids) and torch.equal(from_padded[1], offsets)


def test_fasttext_leaves_the_unknown_word_out_of_the_bag_but_in_its_ngrams():
    """As the C++ does with an out-of-vocabulary word; the model gets the vocabulary's unk index."""
    vocab = Vocab(["<pad>", "<unk>", "a", "b"]).to_dict()
    m = TextClassifier(
        vocab, 2, encoder="fasttext", embed_dim=4, ngrams=2, buckets=7, dropout=0.0, max_norm=None, ngram_hash="words"
    )
    ids = m.encoder.ngram_ids(torch.tensor([[2, 1, 3]]), torch.tensor([3]))
    assert ids[0, :3].tolist() == [2, 0, 3]
    assert ids[0, 3:].tolist() == [4 + _cpp_bucket(a, b, 7) for a, b in (("a", "<unk>"), ("<unk>", "b"))]


def _cpp_bucket(a: str, b: str, buckets: int) -> int:
    """The C++ fastText's bucket of the bigram (a, b), in Python's unbounded integers: ``uint64_t h = hash(a)``
    (the int32 hash sign-extended), ``h = h * 116049371 + hash(b)`` modulo 2^64, then ``h % bucket``."""
    h = fasttext_hash(a) % 2**64
    h = (h * 116049371 + fasttext_hash(b)) % 2**64
    return h % buckets


def test_fasttext_checkpoints_from_before_the_word_hash_keep_their_buckets():
    """A model saved without ``ngram_hash`` (trained on id hashes) is rebuilt with id hashes; the configs ask for
    the words' hashes."""
    vocab = Vocab(["<pad>", "<unk>", "a", "b"]).to_dict()
    old = TextClassifier(vocab, 2, encoder="fasttext", embed_dim=4, ngrams=2, buckets=7, dropout=0.0, max_norm=None)
    ids = old.encoder.ngram_ids(torch.tensor([[2, 3]]), torch.tensor([2]))
    assert ids[0, 2].item() == 4 + (2 * FastTextBag.HASH_MULT + 3) % 7
    assert OmegaConf.load(CONF / "model" / "fasttext.yaml").ngram_hash == "words"
    with pytest.raises(ConfigError, match="ngram_hash"):
        FastTextBag(4, 4, ngrams=2, buckets=7, ngram_hash="strings")


def test_fasttext_ngram_rows_start_at_zero_and_word_rows_uniform():
    """``ngram_init=zero`` (the config's and the default): every bucket row 0, the words' and the end-of-sentence
    rows drawn from U(-1/dim, 1/dim) with the same values as ``uniform`` gives them; ``uniform`` draws the buckets
    too. An unknown choice fails with one line."""
    dim, buckets = 5, 50
    torch.manual_seed(3)
    zero = FastTextBag(20, dim, ngrams=2, buckets=buckets, padding_idx=0, eos=True)
    torch.manual_seed(3)
    uniform = FastTextBag(20, dim, ngrams=2, buckets=buckets, padding_idx=0, eos=True, ngram_init="uniform")
    wz, wu = zero.bag.weight.detach(), uniform.bag.weight.detach()
    assert zero.bucket_offset == 21 and wz.shape == (21 + buckets, dim)
    assert torch.equal(wz[21:], torch.zeros(buckets, dim))
    assert torch.equal(wz[:21], wu[:21])
    words, grams = wz[1:21], wu[21:]
    for rows in (words, grams):
        assert rows.abs().max() <= 1 / dim and (rows != 0).all() and rows.std() > 0.4 / dim
    assert torch.equal(wz[0], torch.zeros(dim))  # padding
    assert OmegaConf.load(CONF / "model" / "fasttext.yaml").ngram_init == "zero"
    with pytest.raises(ConfigError, match="ngram_init"):
        FastTextBag(4, 4, ngrams=2, buckets=7, ngram_init="normal")


def test_fasttext_hash_is_the_cpp_word_hash():
    # FNV-1a 32-bit test vectors for ASCII; "xé" (a byte >= 0x80, sign-extended as the C++ does) gave subword
    # id 300063 modulo 1000003 in the C++ fastText 0.9.3 (get_subwords of a model with minn = maxn = 2)
    assert [fasttext_hash(w) % 2**32 for w in ("", "a", "foobar")] == [0x811C9DC5, 0xE40C292C, 0xBF9CF968]
    assert (fasttext_hash("xé") % 2**32) % 1000003 == 300063
    assert fasttext_hash("foobar") < 0  # kept as the int32 the C++ stores, sign-extended when hashed on


@pytest.mark.parametrize("buckets", [7, 2_000_000])
def test_fasttext_bigram_buckets_are_the_cpp_ones(buckets):
    """Word bigrams land in the C++ model's bucket, including the hashes whose 64-bit value has the top bit set
    (the int64 arithmetic wraps to the same bits; ``_bucket`` reads them unsigned)."""
    words = ["<pad>", "<unk>", "the", "movie", "é", "n't", "good", *[f"w{i}" for i in range(40)]]
    bag = FastTextBag(len(words), 4, ngrams=2, buckets=buckets, eos=True, unk_idx=1, words=words, ngram_hash="words")
    tokens = torch.arange(2, len(words)).view(1, -1)
    ids = bag.ngram_ids(tokens, torch.tensor([tokens.shape[1]]))
    names = [words[t] for t in tokens[0].tolist()] + ["</s>"]
    expected = [bag.bucket_offset + _cpp_bucket(a, b, buckets) for a, b in zip(names, names[1:])]
    assert ids[0, len(names) :].tolist() == expected
    signs = {
        (fasttext_hash(a) % 2**64 * 116049371 + fasttext_hash(b)) % 2**64 >= 2**63 for a, b in zip(names, names[1:])
    }
    assert signs == {True, False}  # both halves of the unsigned range are exercised


def test_linear_rates_decay_with_the_work_done_before_each_step():
    torch.testing.assert_close(linear_rates(0.4, 0.2, 4), torch.tensor([0.4, 0.35, 0.3, 0.25], dtype=torch.float64))
    # the C++ decays with the tokens read: a long line takes more of the schedule than a short one
    by_work = linear_rates(1.0, 0.0, torch.tensor([1, 3, 4]))
    torch.testing.assert_close(by_work, torch.tensor([1.0, 0.875, 0.5], dtype=torch.float64))


_TOKENS = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0], [8, 2, 9, 0], [2, 2, 3, 0]])  # a repeated word too
_LENGTHS, _LABELS = torch.tensor([4, 2, 3, 3]), torch.tensor([0, 2, 1, 1])


def _per_example_steps(model, order, rates):
    """The reference: fasttext_sgd_step on one padded row at a time, in ``order``, at ``rates``."""
    ids = model.encoder.ngram_ids(_TOKENS, _LENGTHS)
    share = bag_shares(ids, 0)
    onehot = torch.nn.functional.one_hot(_LABELS, 3).float()
    steps = [
        fasttext_sgd_step(model, ids[i : i + 1], share[i : i + 1], onehot[i : i + 1], float(r))
        for i, r in zip(order, rates)
    ]
    return torch.cat(steps)


def _ragged_steps(model, order, rates, threads=1):
    ids, offsets = model.encoder.bags(_TOKENS[_TOKENS != 0], _LENGTHS)
    return fasttext_sgd_examples(model, ids, offsets, _LABELS, rates, order=order, threads=threads)


def _assert_same_model(a, b):
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=name)


@pytest.mark.skipif(fasttext_kernel() is None, reason="no C compiler")
def test_fasttext_kernel_equals_one_step_per_example_in_the_given_order_and_rates():
    a, b = _fasttext_pair()
    order, rates = torch.tensor([2, 0, 3, 1]), linear_rates(0.4, 0.2, _LENGTHS[[2, 0, 3, 1]] + 2)
    torch.testing.assert_close(_ragged_steps(a, order, rates), _per_example_steps(b, order, rates))
    _assert_same_model(a, b)


@pytest.mark.skipif(fasttext_kernel() is None, reason="no C compiler")
def test_fasttext_kernel_trains_the_bias_only_when_it_is_not_frozen():
    """A fastText model holds its output bias at zero, as the C++ has none; a trainable one moves as in torch."""
    a, b = _fasttext_pair()
    order, rates = torch.tensor([2, 0, 3, 1]), linear_rates(0.4, 0.2, 4)
    _ragged_steps(a, order, rates)
    assert not a.fc.bias.requires_grad and a.fc.bias.abs().sum() == 0
    a, b = _fasttext_pair()
    for m in (a, b):
        m.fc.bias.requires_grad_(True)
    torch.testing.assert_close(_ragged_steps(a, order, rates), _per_example_steps(b, order, rates))
    _assert_same_model(a, b)
    assert a.fc.bias.abs().sum() > 0


def test_fasttext_without_the_kernel_runs_the_same_per_example_update(monkeypatch):
    """No compiler (or NNLAB_FASTTEXT_KERNEL=torch): the same algorithm as the kernel, never a minibatch step."""
    import nnlab.models.fasttext_sgd as fasttext_sgd

    a, b = _fasttext_pair()
    order, rates = torch.tensor([3, 1, 0, 2]), linear_rates(0.4, 0.2, 4)
    monkeypatch.setattr(fasttext_sgd, "fasttext_kernel", lambda: None)
    torch.testing.assert_close(_ragged_steps(a, order, rates, threads=2), _per_example_steps(b, order, rates))
    _assert_same_model(a, b)


@pytest.mark.skipif(fasttext_kernel() is None, reason="no C compiler")
def test_fasttext_hogwild_threads_take_every_step_once():
    """Two threads: lock-free, so not bit-equal to one thread; but every step runs (its logits are written)
    and the two learn the same tiny set."""
    a, b = _fasttext_pair()
    order, rates = torch.arange(4).repeat(50), linear_rates(0.2, 0.0, 200)
    logits = _ragged_steps(a, order, rates, threads=2)
    one = _ragged_steps(b, order, rates, threads=1)
    assert torch.isfinite(logits).all() and logits.shape == one.shape
    assert (logits[-4:].argmax(1) == _LABELS).all() and (one[-4:].argmax(1) == _LABELS).all()


def test_fit_fasttext_takes_flat_or_padded_texts_and_one_thread_is_deterministic():
    from nnlab.models.fasttext_sgd import fit_fasttext

    a, b = _fasttext_pair()
    fit_fasttext(a, _TOKENS, _LENGTHS, _LABELS, epochs=3, lr=0.3, seed=4, threads=1)
    fit_fasttext(b, _TOKENS[_TOKENS != 0], _LENGTHS, _LABELS, epochs=3, lr=0.3, seed=4, threads=1)
    _assert_same_model(a, b)
    with pytest.raises(ConfigError, match="threads=0"):
        fit_fasttext(a, _TOKENS, _LENGTHS, _LABELS, threads=0)


@pytest.mark.parametrize("name", ["cnn", "rnn"])
def test_embed_dropout_drops_word_vector_coordinates_in_training_only(name):
    torch.manual_seed(0)
    p = 0.5
    enc = build_encoder(name, 12, 0, 200, embed_dropout=p)
    tokens, lengths = torch.tensor([[3, 4, 5, 6]]), torch.tensor([4])
    seen = []
    enc.embedding.register_forward_hook(lambda m, i, o: seen.append(o))
    enc.embed_dropout.register_forward_hook(lambda m, i, o: seen.append(o))
    enc.train()(tokens, lengths)
    emb, dropped = seen
    kept = dropped != 0
    # inverted dropout: survivors are scaled by 1/(1-p), so the expectation is the undropped vector
    torch.testing.assert_close(dropped[kept], emb[kept] / (1 - p))
    assert 0.4 < 1 - kept.float().mean().item() < 0.6
    seen.clear()
    plain = build_encoder(name, 12, 0, 200)
    plain.load_state_dict(enc.state_dict())
    torch.testing.assert_close(enc.eval()(tokens, lengths), plain.eval()(tokens, lengths))


def test_embed_dropout_out_of_range_or_on_fasttext_is_one_line():
    with pytest.raises(ConfigError, match=r"model.embed_dropout=1.0 must be in \[0, 1\)"):
        build_encoder("cnn", 10, 0, 8, embed_dropout=1.0)
    with pytest.raises(ConfigError, match="model.embed_dropout is not an option of model.encoder=fasttext"):
        build_encoder("fasttext", 10, 0, 8, embed_dropout=0.2)


def test_word_dropout_replaces_whole_words_by_unk_in_training_only():
    torch.manual_seed(0)
    p, pad, unk = 0.3, 0, 1
    wd = WordDropout(p, pad, unk)
    tokens = torch.randint(2, 50, (400, 30))
    tokens[:, 20:] = pad  # batch padding
    out = wd.train()(tokens)
    changed = out != tokens
    # a dropped word becomes <unk>, never anything else, and padding is never touched
    assert (out[changed] == unk).all()
    assert not changed[:, 20:].any()
    rate = changed[:, :20].float().mean().item()
    assert abs(rate - p) < 0.02, rate  # 8,000 words: the rate's standard error is 0.005
    # a different mask on the next call, the same tokens in eval mode
    assert not torch.equal(wd(tokens), out)
    assert torch.equal(wd.eval()(tokens), tokens)
    assert torch.equal(WordDropout(0.0, pad, unk).train()(tokens), tokens)


@pytest.mark.parametrize("name", ["cnn", "rnn"])
def test_encoders_feed_word_dropped_tokens_to_the_embedding(name):
    torch.manual_seed(0)
    enc = build_encoder(name, 12, 0, 16, unk_index=1, word_dropout=0.5)
    tokens, lengths = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10, 0, 0]] * 8), torch.tensor([8] * 8)
    seen = []
    enc.embedding.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    enc.train()(tokens, lengths)
    (fed,) = seen
    assert (fed != tokens).any() and ((fed == tokens) | (fed == 1)).all()
    assert (fed[:, 8:] == 0).all()
    plain = build_encoder(name, 12, 0, 16)
    plain.load_state_dict(enc.state_dict())  # word dropout adds no parameters: old checkpoints still load
    torch.testing.assert_close(enc.eval()(tokens, lengths), plain.eval()(tokens, lengths))


def test_text_classifier_gives_word_dropout_the_vocabulary_unk_index(tiny):
    dm = LocalTextDataModule(train=str(tiny[0]), test=str(tiny[1]), batch_size=16, seed=0, tokenizer="whitespace")
    dm.setup("fit")
    model = TextClassifier(**dm.model_kwargs(), encoder="cnn", embed_dim=8, num_filters=4, word_dropout=0.2)
    assert model.encoder.word_dropout.unk_idx == dm.vocab.stoi["<unk>"]
    assert model.encoder.word_dropout.padding_idx == dm.vocab.stoi["<pad>"]
    assert model.hparams.word_dropout == 0.2


def test_word_dropout_out_of_range_or_on_fasttext_is_one_line():
    with pytest.raises(ConfigError, match=r"model.word_dropout=-0.1 must be in \[0, 1\)"):
        build_encoder("rnn", 10, 0, 8, word_dropout=-0.1)
    with pytest.raises(ConfigError, match="model.word_dropout is not an option of model.encoder=fasttext"):
        build_encoder("fasttext", 10, 0, 8, word_dropout=0.2)
    with pytest.raises(ConfigError, match="model.unk_idx is not an option of model.encoder=cnn"):
        build_encoder("cnn", 10, 0, 8, unk_idx=3)


# ---------------------------------------------------------------------------------- weight averaging (model.ema)


def test_ema_follows_its_formula_and_predict_uses_it_without_losing_the_raw_weights(tiny):
    dm = LocalTextDataModule(train=str(tiny[0]), test=str(tiny[1]), batch_size=16, seed=0, tokenizer="whitespace")
    dm.setup("fit")
    model = TextClassifier(**dm.model_kwargs(), encoder="cnn", embed_dim=8, num_filters=4, ema=0.6)
    w = model.fc.weight
    steps = [torch.randn_like(w) for _ in range(5)]
    expect = None
    for t, value in enumerate(steps):
        with torch.no_grad():
            w.copy_(value)
        model._update_ema()
        # the first step starts the average; step t then mixes in with weight 1 - min(d, (1 + t) / (10 + t))
        expect = (
            value.clone()
            if t == 0
            else expect * min(0.6, (1 + t) / (10 + t)) + value * (1 - min(0.6, (1 + t) / (10 + t)))
        )
    index = [n for n, _ in model.named_parameters()].index("fc.weight")
    torch.testing.assert_close(model._ema[index], expect)
    assert min(0.6, 2 / 11) == 2 / 11 and min(0.6, 5 / 14) < 0.6  # the warm-up is active at these t

    texts = ["w1 good", "bad w2 w3"]
    probs = model.predict(texts)
    torch.testing.assert_close(w, steps[-1])  # predict swapped the average in and back out
    plain = TextClassifier(**dm.model_kwargs(), encoder="cnn", embed_dim=8, num_filters=4)
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        plain.fc.weight.copy_(expect)
    torch.testing.assert_close(probs, plain.predict(texts))


def test_ema_validates_on_the_average_and_the_checkpoint_stores_it(tiny, tmp_path):
    torch.manual_seed(0)
    dm = LocalTextDataModule(train=str(tiny[0]), test=str(tiny[1]), batch_size=16, seed=0, tokenizer="whitespace")
    cfg = dict(ENCODER_CONFIGS["cnn"], ema=0.9)
    model = TextClassifier(**dm_kwargs(dm), **cfg)
    # as conf/callbacks/default.yaml: best.ckpt by val/acc, last.ckpt after every epoch
    best_cb = L.callbacks.ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val/acc", mode="max")
    last_cb = L.callbacks.ModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None)
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[best_cb, last_cb],
        num_sanity_val_steps=0,
    )
    trainer.fit(model, dm)
    assert best_cb.best_model_path
    raw = {n: p.detach().clone() for n, p in model.named_parameters()}
    avg = dict(zip(raw, model._ema, strict=True))
    assert not model._swapped and any(not torch.equal(raw[n], avg[n]) for n in raw)
    # last.ckpt was written at the last epoch's end, after validation had swapped the raw weights back in:
    # its state_dict still holds the average (what val/acc scored); the raw weights ride along for resuming
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    for n in raw:
        torch.testing.assert_close(saved["state_dict"][n], avg[n])
        torch.testing.assert_close(saved["ema"]["raw"][n], raw[n])
    (val_mem,) = trainer.validate(model, dm, verbose=False)  # in memory: swapped to the average
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, raw[n])  # and back
    on_avg = TextClassifier(**dm_kwargs(dm), **cfg)
    on_avg.load_state_dict({**model.state_dict(), **avg})
    quiet = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    quiet["default_root_dir"] = tmp_path
    (val_avg,) = L.Trainer(**quiet).validate(on_avg, dm, verbose=False)
    assert val_mem["val/loss"] == pytest.approx(val_avg["val/loss"], rel=1e-5)
    on_raw = TextClassifier(**dm_kwargs(dm), **cfg)
    on_raw.load_state_dict(model.state_dict())
    (val_raw,) = L.Trainer(**quiet).validate(on_raw, dm, verbose=False)
    assert val_raw["val/loss"] != pytest.approx(val_avg["val/loss"], rel=1e-4)
    # evaluating a checkpoint uses its weights as stored; TextClassifier.load (predict.py) gets the average
    fresh = TextClassifier(**dm_kwargs(dm), **cfg)
    (val_ckpt,) = L.Trainer(**quiet).validate(fresh, dm, ckpt_path=tmp_path / "last.ckpt", verbose=False)
    assert fresh._ema is None and val_ckpt["val/loss"] == pytest.approx(val_avg["val/loss"], rel=1e-5)
    torch.testing.assert_close(TextClassifier.load(tmp_path / "last.ckpt").fc.weight, avg["fc.weight"])
    # resuming a fit trains on from the raw weights and keeps the average
    resumed = TextClassifier(**dm_kwargs(dm), **cfg)
    L.Trainer(max_epochs=3, **quiet).fit(resumed, dm, ckpt_path=tmp_path / "last.ckpt")
    for (n, p), a in zip(resumed.named_parameters(), resumed._ema, strict=True):
        torch.testing.assert_close(p, raw[n])
        torch.testing.assert_close(a, avg[n])


def dm_kwargs(dm):
    dm.setup("fit")
    return dm.model_kwargs()


def test_ema_out_of_range_is_one_line(tiny):
    dm = LocalTextDataModule(train=str(tiny[0]), test=str(tiny[1]), batch_size=16, seed=0, tokenizer="whitespace")
    with pytest.raises(ConfigError, match=r"model.ema=1.0: the averaging decay must be in \(0, 1\)"):
        TextClassifier(**dm_kwargs(dm), encoder="cnn", embed_dim=8, num_filters=4, ema=1.0)


def test_hash_uniform_gives_the_same_bits_on_any_thread_count_and_without_the_kernel(monkeypatch):
    from nnlab.nn import hash_init

    tables = []
    for threads in (1, 3):
        torch.manual_seed(5)
        tables.append(hash_init.hash_uniform_(torch.empty(1001, 10), 0.1, threads=threads))
    monkeypatch.setattr(hash_init, "_kernel", lambda: None)
    torch.manual_seed(5)
    tables.append(hash_init.hash_uniform_(torch.empty(1001, 10), 0.1))
    assert torch.equal(tables[0], tables[1]) and torch.equal(tables[0], tables[2])
    t = tables[0]
    assert -0.1 <= t.min() and t.max() < 0.1 and abs(t.mean()) < 0.005 and abs(t.std() - 0.1 / 3**0.5) < 0.005
    torch.manual_seed(6)
    assert not torch.equal(hash_init.hash_uniform_(torch.empty(1001, 10), 0.1), t)  # the seed comes from torch


def test_label_groups_score_each_groups_renormalized_mass_and_train_on_the_fine_classes(tmp_path):
    """p(k) = sum_{j in G_k} p_j / sum_{j in any G} p_j (written out here); training is CE on the fine targets."""
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", "good", "bad", "dull"]).to_dict()
    groups = [[0, 1], [2, 3]]
    m = TextClassifier(vocab, 2, encoder="cnn", embed_dim=4, num_filters=2, label_groups=groups).eval()
    assert m.fc.out_features == 4  # one output row per training class
    tokens, lengths = torch.tensor([[2, 3, 4], [4, 2, 0]]), torch.tensor([3, 2])
    fine = m.train_logits(tokens, lengths)
    p = fine.softmax(-1)
    expected = torch.stack([p[:, [0, 1]].sum(1), p[:, [2, 3]].sum(1)], 1)
    torch.testing.assert_close(m(tokens, lengths).softmax(-1), expected / expected.sum(1, keepdim=True))
    # training: the loss is the fine cross-entropy; its accuracy is in the scored classes, as val's
    logged = {}
    m.log = lambda name, value, **k: logged.setdefault(name, value)
    y_fine = torch.tensor([3, 0])
    loss = m._step((tokens, lengths, y_fine), "train")
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(fine, y_fine))
    assert m.metrics["train_acc"].compute() == (m(tokens, lengths).argmax(1) == torch.tensor([1, 0])).float().mean()
    # three scored classes from five training ones, one group of a single class: still the renormalized mass
    m3 = TextClassifier(vocab, 3, encoder="rnn", embed_dim=4, hidden_size=3, label_groups=[[4], [0, 2], [1, 3]])
    p = m3.eval().train_logits(tokens, lengths).softmax(-1)
    mass = torch.stack([p[:, 4], p[:, [0, 2]].sum(1), p[:, [1, 3]].sum(1)], 1)
    torch.testing.assert_close(m3(tokens, lengths).softmax(-1), mass)
    # a checkpoint keeps the groups: load + predict give the scored classes
    ckpt = tmp_path / "m.ckpt"
    torch.save({"hyper_parameters": dict(m.hparams), "state_dict": m.state_dict()}, ckpt)
    loaded = TextClassifier.load(ckpt)
    assert loaded.hparams.label_groups == groups and loaded.predict(["good bad dull"]).shape == (1, 2)
    torch.testing.assert_close(
        loaded.predict(["good bad dull", "dull good"]), m.predict(["good bad dull", "dull good"])
    )


def test_label_groups_on_the_fasttext_update_step_the_fine_rows():
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", *[f"w{i}" for i in range(8)]]).to_dict()
    kw = dict(encoder="fasttext", embed_dim=4, ngrams=1, buckets=5, dropout=0.0, max_norm=None)
    a = TextClassifier(vocab, 2, label_groups=[[0, 1], [2, 3]], **kw)
    torch.nn.init.normal_(a.fc.weight)
    b = TextClassifier(vocab, 2, label_groups=[[0, 1], [2, 3]], **kw)
    b.load_state_dict(a.state_dict())
    tokens, lengths, y = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2]), torch.tensor([3, 1])
    ids, offsets = a.encoder.bags(tokens, lengths)
    fasttext_sgd_examples(a, ids, offsets, y, torch.full((2,), 0.2))
    for i in range(2):  # autograd + SGD, one example at a time, on the fine classes
        opt = torch.optim.SGD(b.parameters(), lr=0.2)
        torch.nn.functional.cross_entropy(
            b.train_logits(tokens[i : i + 1], lengths[i : i + 1]), y[i : i + 1]
        ).backward()
        opt.step()
        opt.zero_grad()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=name)


@pytest.mark.parametrize(
    ("groups", "train_classes"),
    [([[0, 1]], None), ([[0], []], None), ([[0, 1], [1, 2]], None), ([[0], ["1"]], None), ([[0], [True]], None),
     ("01", None), ([[0], [2]], 2), (None, 3)],
)  # fmt: skip
def test_label_groups_malformed_is_one_line(groups, train_classes):
    vocab = Vocab(["<pad>", "<unk>", "good"]).to_dict()
    with pytest.raises(ConfigError, match="model.label_groups|model.train_classes") as e:
        TextClassifier(
            vocab, 2, encoder="cnn", embed_dim=4, num_filters=2, label_groups=groups, train_classes=train_classes
        )
    assert "\n" not in str(e.value)


def test_a_training_class_in_no_group_is_trained_on_and_never_scored():
    """SST-2 with neutral phrases: five training classes, neutral (2) in no group."""
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", "good", "bad", "dull"]).to_dict()
    m = TextClassifier(vocab, 2, encoder="cnn", embed_dim=4, num_filters=2, label_groups=[[0, 1], [3, 4]])
    assert m.fc.out_features == 5 and m.hparams.train_classes == 5
    assert TextClassifier(vocab, 2, encoder="cnn", label_groups=[[0], [1]], train_classes=3).fc.out_features == 3
    tokens, lengths = torch.tensor([[2, 3, 4], [4, 2, 0], [3, 3, 0]]), torch.tensor([3, 2, 2])
    m.eval()
    p = m.train_logits(tokens, lengths).softmax(-1)
    mass = torch.stack([p[:, [0, 1]].sum(1), p[:, [3, 4]].sum(1)], 1)
    torch.testing.assert_close(m(tokens, lengths).softmax(-1), mass / mass.sum(1, keepdim=True))
    m.log = lambda *a, **k: None
    y = torch.tensor([2, 4, 0])  # the neutral example counts in the loss, not in the scored accuracy
    loss = m._step((tokens, lengths, y), "train")
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(m.train_logits(tokens, lengths), y))
    hits = (m(tokens, lengths)[1:].argmax(1) == torch.tensor([1, 0])).float().mean()
    assert m.metrics["train_acc"].compute() == hits
    m.metrics["train_acc"].reset()
    m._step((tokens[:1], lengths[:1], y[:1]), "train")  # a batch of neutral phrases only: nothing to score
    assert m.metrics["train_acc"].update_count == 0
