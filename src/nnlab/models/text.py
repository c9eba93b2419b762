"""``TextClassifier``: a sentence encoder (``model.encoder``: cnn / rnn / fasttext), dropout, a linear layer.

``p(y | x) = softmax(W dropout(enc(x)) + b)``, trained with cross-entropy. The vocabulary arrives from the
DataModule (``model_kwargs``) as plain data and is saved in the checkpoint's hyperparameters, so a checkpoint
alone classifies new text (``TextClassifier.load(path)``, ``predict``; ``scripts/predict.py``).
Metrics: ``{train,val,test}/{loss,acc,f1}`` (f1 is macro-averaged over classes). Formulas: docs/text.md.
fastText's hand-written SGD (``model.update=fasttext``) and its C loop: ``nnlab.models.fasttext_sgd``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from pytorch_lightning.trainer.states import TrainerFn
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from nnlab.models.averaging import by_name, swap_weights
from nnlab.models.fasttext_sgd import fasttext_sgd_examples, linear_rates
from nnlab.nn.text import ENCODERS, build_encoder, max_norm_
from nnlab.utils.errors import CheckpointError, ConfigError, check_rate, choice_error
from nnlab.vocab import UNK, Vocab, pad_batch

log = logging.getLogger(__name__)


def _plain(x):
    """Config containers (OmegaConf's included, by duck typing) -> dicts/lists, so hparams stay plain data."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, Sequence) and not isinstance(x, str | bytes):
        return [_plain(v) for v in x]
    return x


def linear_decay(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """fastText's schedule: ``lr_t = lr_0 (1 - t / T)`` over the ``T`` optimizer steps of the whole run."""
    total = max(1, int(total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: max(0.0, 1.0 - t / total))


def check_label_groups(
    groups: list[list[int]] | None, num_classes: int, train_classes: int | None
) -> tuple[list[list[int]] | None, int]:
    """``(model.label_groups as plain lists of ints, the number of training classes)``, or a ConfigError: one
    group per scored class, each a non-empty list of training-class indices below ``train_classes`` (default:
    the largest index + 1), no index in two groups. A training class in no group is trained on, never scored."""
    if groups is None:
        if train_classes is not None and train_classes != num_classes:
            raise ConfigError(f"model.train_classes={train_classes} needs model.label_groups (or must be null)")
        return None, num_classes
    if not isinstance(groups, list) or len(groups) != num_classes:
        raise ConfigError(
            f"model.label_groups={groups!r} must be a list of {num_classes} groups (one per scored class) or null"
        )
    flat = [i for g in groups for i in (g if isinstance(g, list) else [None])]
    if any(not isinstance(g, list) or not g for g in groups) or any(
        isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in flat
    ):
        raise ConfigError(f"model.label_groups={groups!r}: each group must be a non-empty list of class indices >= 0")
    if len(set(flat)) != len(flat):
        raise ConfigError(f"model.label_groups={groups!r}: a training class is in two groups")
    n = 1 + max(flat) if train_classes is None else int(train_classes)
    if max(flat) >= n:
        raise ConfigError(f"model.label_groups={groups!r}: class {max(flat)} >= model.train_classes={n}")
    return [[int(i) for i in g] for g in groups], n


class TextClassifier(LightningModule):
    """Sentence classifier over one of the ``nnlab.nn.text`` encoders.

    Args:
        vocab, num_classes, class_names, pad_index: from ``dm.model_kwargs()``.
        encoder: ``cnn`` (Kim 2014), ``rnn`` or ``fasttext`` (Joulin et al. 2016).
        embed_dim: word-vector size. pretrained: a word2vec/GloVe text file (its dimension must be embed_dim).
        dropout: before the output layer (Kim: 0.5). max_norm: rows of the output weight are rescaled to L2
            norm <= max_norm after every step (Kim: 3), null disables.
        loss_reduction: ``mean`` over the batch, or ``sum``: fastText takes one SGD step per example with
            learning rate ``lr``; summing a minibatch's losses keeps ``lr`` meaning that.
        optimizer / scheduler: partials from the config; a scheduler whose signature has ``total_steps``
            gets the run's number of optimizer steps (``linear_decay``). scheduler_interval: step/epoch.
        update: ``autograd`` (backward + ``optimizer.step``) or ``fasttext``: the hand-written SGD step of
            ``nnlab.models.fasttext_sgd``, one example at a time as the C++ does (same math as autograd + SGD,
            no autograd; the fastText config's default, much faster per step).
        ema: decay ``d`` of an exponential moving average of the weights, or null (off). After every step
            ``w_ema <- d_t w_ema + (1 - d_t) w`` with ``d_t = min(d, (1 + t) / (10 + t))`` (a short warm-up, so
            the average is not held at the random init). Validation and test run on the averaged weights, so
            the best checkpoint stores them; training goes on from the raw ones (docs/text.md).
        label_groups: the classes the model is scored on, each a list of the finer classes it trains on (e.g.
            ``[[0, 1], [3, 4]]``: SST-2's negative / positive over SST's five grades), or null: it trains on the
            classes it is scored on. train_classes: how many training classes (default: the largest index in a
            group + 1); one in no group (SST's neutral) is trained on, never scored. The output layer has one
            row per training class, and a scored class's logit is ``logsumexp`` over its group, so its
            probability is the group's mass renormalized over the groups,
            ``p(k) = sum_{j in G_k} p_j / sum_{j in any G} p_j``. Training targets are training-class
            indices; validation, test, ``forward`` and ``predict`` are in the scored classes (docs/text.md,
            "Fine-grained training targets").
        label_smoothing: ``eps`` of the training loss ``(1 - eps) CE(p, y) + eps * mean_k(-log p_k)`` (Szegedy
            et al. 2016; ``F.cross_entropy``'s ``label_smoothing``); validation and test losses are plain CE.
        **encoder_kwargs: the encoder's own options (filter_widths, num_filters, pool, k, embed_dropout,
            word_dropout; rnn_type, hidden_size, num_layers, bidirectional, rnn_dropout, embed_dropout,
            word_dropout; ngrams, buckets, sparse).
    """

    modality = "text"

    def __init__(
        self,
        vocab: dict,
        num_classes: int,
        class_names: list[str] | None = None,
        pad_index: int = 0,
        encoder: str = "cnn",
        embed_dim: int = 300,
        dropout: float = 0.5,
        max_norm: float | None = 3.0,
        pretrained: str | None = None,
        freeze_embeddings: bool = False,
        loss_reduction: str = "mean",
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        scheduler_interval: str = "epoch",
        update: str = "autograd",
        ema: float | None = None,
        label_smoothing: float = 0.0,
        label_groups: list[list[int]] | None = None,
        train_classes: int | None = None,
        **encoder_kwargs,
    ):
        super().__init__()
        if encoder not in ENCODERS:
            raise choice_error("model.encoder", encoder, ENCODERS)
        if loss_reduction not in ("mean", "sum"):
            raise choice_error("model.loss_reduction", loss_reduction, ("mean", "sum"))
        if scheduler_interval not in ("step", "epoch"):
            raise choice_error("model.scheduler_interval", scheduler_interval, ("step", "epoch"))
        if update not in ("autograd", "fasttext"):
            raise choice_error("model.update", update, ("autograd", "fasttext"))
        if update == "fasttext" and (encoder != "fasttext" or dropout or max_norm is not None):
            raise ConfigError("model.update=fasttext needs model.encoder=fasttext, dropout 0 and max_norm null")
        check_rate("model.dropout", dropout)
        check_rate("model.label_smoothing", label_smoothing)
        if update == "fasttext" and label_smoothing:
            raise ConfigError("model.update=fasttext takes one-hot targets: set model.label_smoothing=0")
        if ema is not None and not 0.0 < ema < 1.0:
            raise ConfigError(f"model.ema={ema}: the averaging decay must be in (0, 1), e.g. 0.99, or null for none")
        if num_classes < 2:
            raise ConfigError(f"num_classes={num_classes}: a classifier needs at least 2 classes")
        label_groups, train_classes = check_label_groups(_plain(label_groups), num_classes, train_classes)
        vocab = _plain(vocab)
        encoder_kwargs = _plain(encoder_kwargs)
        self.save_hyperparameters(
            {
                "vocab": vocab,
                "num_classes": int(num_classes),
                "class_names": _plain(class_names) or [str(i) for i in range(num_classes)],
                "pad_index": int(pad_index),
                "encoder": encoder,
                "embed_dim": int(embed_dim),
                "dropout": float(dropout),
                "max_norm": None if max_norm is None else float(max_norm),
                "pretrained": pretrained,
                "freeze_embeddings": bool(freeze_embeddings),
                "loss_reduction": loss_reduction,
                "scheduler_interval": scheduler_interval,
                "update": update,
                "ema": None if ema is None else float(ema),
                "label_smoothing": float(label_smoothing),
                "label_groups": label_groups,
                "train_classes": None if label_groups is None else train_classes,
                **encoder_kwargs,
            }
        )
        self.vocab = Vocab.from_dict(vocab)
        self.class_names = list(self.hparams.class_names)
        self.encoder = build_encoder(
            encoder,
            len(self.vocab),
            pad_index,
            embed_dim,
            itos=self.vocab.itos,
            unk_index=self.vocab.stoi[UNK],
            pretrained=pretrained,
            freeze_embeddings=freeze_embeddings,
            **encoder_kwargs,
        )
        self.dropout = nn.Dropout(dropout)
        self.label_groups = label_groups
        self.fc = nn.Linear(self.encoder.output_dim, train_classes)
        if label_groups is not None:
            # the scored class of each training class (-1: none): maps training targets for the training metrics
            group_of = torch.full((train_classes,), -1, dtype=torch.long)
            for k, g in enumerate(label_groups):
                group_of[g] = k
            self.register_buffer("group_of", group_of, persistent=False)
        if encoder == "fasttext":
            # fastText starts its output matrix at zero, and has no output bias: the bias stays at zero (frozen,
            # so a checkpoint from before, with a trained one, still loads and predicts as it was trained).
            # Its end-of-sentence word is the bias it has, scaled by 1/|bag|: on SST-1 sentences the learned
            # constant bias cost 0.4 points against the C++ (bigrams, median of 15 seeds; docs/text.md).
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)
            self.fc.bias.requires_grad_(False)
        self.max_norm = max_norm
        self.label_smoothing = float(label_smoothing)
        # update=fasttext: the hand-written SGD of nnlab.models.fasttext_sgd instead of autograd + optimizer.step
        self.automatic_optimization = update == "autograd"
        self.loss_reduction = loss_reduction
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # The weights' moving average (model.ema), made at the first step; while _swapped it holds the raw weights.
        self._ema: list[torch.Tensor] | None = None
        self._ema_steps = 0
        self._swapped = False
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": metric
                for stage in ("train", "val", "test")
                for name, metric in (
                    ("acc", MulticlassAccuracy(num_classes, average="micro")),
                    ("f1", MulticlassF1Score(num_classes, average="macro")),
                )
            }
        )

        # rows: true class, columns: predicted; filled by the last test pass (metrics.json, the W&B run)
        self.test_confmat = MulticlassConfusionMatrix(num_classes)
        self.confusion_matrix: list[list[int]] | None = None

    # ------------------------------------------------------------------ forward / steps
    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of the classes the model is scored on."""
        return self.scored_logits(self.train_logits(tokens, lengths))

    def train_logits(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of the training classes (the output layer's rows; = ``forward`` without label_groups)."""
        return self.fc(self.dropout(self.encoder(tokens, lengths)))

    def scored_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Training-class logits -> scored-class logits: ``logsumexp`` over each of ``label_groups``."""
        if self.label_groups is None:
            return logits
        return torch.stack([logits[:, g].logsumexp(dim=1) for g in self.label_groups], dim=1)

    def _step(self, batch, stage: str) -> torch.Tensor:
        tokens, lengths, y = batch
        logits = self.train_logits(tokens, lengths) if stage == "train" else self(tokens, lengths)
        loss = self._log_stage(stage, logits, y)
        return loss * y.shape[0] if self.loss_reduction == "sum" else loss

    def training_step(self, batch, batch_idx):
        if self.automatic_optimization:
            return self._step(batch, "train")
        tokens, lengths, y = batch
        opt = self.optimizers()
        group = opt.param_groups[0]
        if not isinstance(opt.optimizer, torch.optim.SGD) or group.get("momentum") or group.get("weight_decay"):
            raise ConfigError("model.update=fasttext takes plain SGD (no momentum, no weight decay) as optimizer")
        ids, offsets = self.encoder.bags(tokens, lengths)
        # one thread: a Lightning run stays reproducible (fit_fasttext is the Hogwild one)
        rates = linear_rates(group["lr"], group["lr"], len(y))
        logits = fasttext_sgd_examples(self, ids, offsets, y, rates)
        # The update is done; stepping the (gradient-free) optimizer is a no-op on the weights but advances
        # trainer.global_step and keeps the scheduler's step-order bookkeeping right.
        opt.step()
        sched = self.lr_schedulers()
        if sched is not None and self.hparams.scheduler_interval == "step":
            sched.step()
        elif sched is not None and self.trainer.is_last_batch:
            sched.step()
        self._log_stage("train", logits, y)

    def _log_stage(self, stage: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # smoothing is a training target only: val/loss stays the plain cross-entropy that checkpoints compare
        eps = self.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits, y, label_smoothing=eps)
        n = y.shape[0]
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=n)
        if stage == "train" and self.label_groups is not None:
            # training targets are the finer classes; its acc and f1 are in the scored ones, as val's and test's
            scored = self.group_of[y]
            keep = scored >= 0
            logits, y, n = self.scored_logits(logits)[keep], scored[keep], int(keep.sum())
            if not n:
                return loss
        for name in ("acc", "f1"):
            metric = self.metrics[f"{stage}_{name}"]
            metric(logits.detach(), y)
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "acc", batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        tokens, lengths, y = batch
        logits = self(tokens, lengths)
        self._log_stage("test", logits, y)
        self.test_confmat.update(logits.argmax(-1), y)

    def on_test_epoch_end(self) -> None:
        self.confusion_matrix = self.test_confmat.compute().tolist()
        self.test_confmat.reset()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.max_norm is not None:
            max_norm_(self.fc.weight, self.max_norm)
        if self.hparams.get("ema") is not None:
            self._update_ema()

    # ------------------------------------------------------------------ weight averaging (model.ema)
    @torch.no_grad()
    def _update_ema(self) -> None:
        params = [p.detach() for p in self.parameters()]
        if self._ema is None:
            self._ema = [p.clone() for p in params]
            return
        self._ema_steps += 1
        t = self._ema_steps
        decay = min(self.hparams.ema, (1 + t) / (10 + t))
        for a, p in zip(self._ema, params, strict=True):
            a.lerp_(p, 1.0 - decay)

    def _swap_ema(self) -> None:
        swap_weights(self, self._ema)
        self._swapped = not self._swapped

    def _ema_in(self) -> None:
        if self._ema is not None and not self._swapped:
            self._swap_ema()

    def _ema_out(self) -> None:
        if self._swapped:
            self._swap_ema()

    def on_validation_epoch_start(self) -> None:
        self._ema_in()

    def on_validation_end(self) -> None:
        self._ema_out()

    def on_test_epoch_start(self) -> None:
        self._ema_in()

    def on_test_end(self) -> None:
        self._ema_out()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # ModelCheckpoint saves after validation has swapped back, so the live weights may be the raw ones:
        # a checkpoint's state_dict always gets the average (what validation scored, what test and predict
        # use) and keeps the raw weights aside for a resumed fit.
        if self._ema is None:
            return
        live = list(self.parameters())
        avg, raw = (live, self._ema) if self._swapped else (self._ema, live)
        checkpoint["state_dict"].update(by_name(self, avg))
        checkpoint["ema"] = {"raw": by_name(self, raw), "steps": self._ema_steps}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Evaluating a checkpoint uses its weights (the average) as stored. Resuming a fit trains on from the
        # raw weights and carries on averaging; a checkpoint from before model.ema starts a new average.
        self._ema, self._ema_steps, self._swapped = None, 0, False
        stored = checkpoint.get("ema")
        if stored is None or self._trainer is None or self.trainer.state.fn != TrainerFn.FITTING:
            return
        state = checkpoint["state_dict"]
        names = [n for n, _ in self.named_parameters()]
        device = next(self.parameters()).device
        self._ema = [state[n].detach().to(device, copy=True) for n in names]
        state.update(stored["raw"])
        self._ema_steps = int(stored["steps"])

    # ------------------------------------------------------------------ optimization
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = self.optimizer_factory(params) if self.optimizer_factory else torch.optim.Adam(params, lr=1e-3)
        if self.scheduler_factory is None:
            return opt
        fn = getattr(self.scheduler_factory, "func", self.scheduler_factory)
        kw = {}
        if "total_steps" in inspect.signature(fn).parameters:
            kw["total_steps"] = int(self.trainer.estimated_stepping_batches)
        sched = self.scheduler_factory(opt, **kw)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "interval": self.hparams.scheduler_interval},
        }

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Class probabilities (len(texts), num_classes) for raw sentences, tokenized as at training time."""
        was_training = self.training
        self.eval()
        self._ema_in()
        out = []
        device = next(self.parameters()).device
        for i in range(0, len(texts), batch_size):
            ids = [torch.tensor(self.vocab.encode_text(t) or [self.vocab.unk_index]) for t in texts[i : i + batch_size]]
            tokens, lengths, _ = pad_batch([(s, 0) for s in ids], self.hparams.pad_index)
            out.append(self(tokens.to(device), lengths).softmax(dim=1).cpu())
        self._ema_out()
        self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, self.hparams.num_classes)

    @classmethod
    def load(cls, path: str | Path, map_location: str = "cpu") -> TextClassifier:
        """A model from a Lightning checkpoint, loaded with ``weights_only=True`` (plain hyperparameters)."""
        path = Path(path)
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such checkpoint") from None
        except Exception as e:  # noqa: BLE001 - truncated/tampered files raise many kinds of errors
            raise CheckpointError(f"{path}: not a loadable checkpoint ({type(e).__name__}: {e})") from None
        hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
        if not hp or hp.get("encoder") not in ENCODERS or "vocab" not in hp:
            raise CheckpointError(f"{path}: not a TextClassifier checkpoint (no text hyperparameters)")
        hp = dict(hp)
        hp.pop("pretrained", None)  # the vectors are in the state dict; the file may be gone
        model = cls(**hp)
        try:
            model.load_state_dict(ckpt["state_dict"])
        except (KeyError, RuntimeError) as e:
            raise CheckpointError(f"{path}: weights do not fit the stored model ({str(e).splitlines()[0]})") from None
        return model.eval()
