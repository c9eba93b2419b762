"""Word-level language model (course §6): an ``RNNLM`` trained with truncated BPTT under Lightning.

- The hidden state is carried from one window to the next and detached (TBPTT), in training and in
  evaluation; it is reset at the start of every training epoch and of every validation/test pass,
  which therefore reads the whole split in stream order.
- Perplexity of a split is ``exp(sum of token NLLs / number of tokens)`` over the whole split
  (docs/lm.md, "Perplexity"), never a mean of per-window perplexities. It is logged as
  ``{val,test}/ppl`` next to ``{val,test}/loss`` (the token-mean NLL in nats).
- Gradients are clipped to ``clip`` in global L2 norm before every step.
- Optimizer/scheduler are Hydra partials; the default is SGD with lr 20 on the per-token mean NLL (Zaremba's
  lr 1 on the NLL summed over the bptt steps, clip 5 -> clip 0.25 here, as in pytorch/examples) with the classic
  "divide the LR by 4 when the validation loss does not improve" (``ReduceLROnPlateau(factor=0.25,
  patience=0)`` on ``val/loss``).
- ``nt_asgd``: non-monotonically triggered averaged SGD (Merity et al. 2017). Once the validation loss is
  worse than the best of the epochs before the last ``nonmono`` ones, the weights are averaged over all
  later steps (Polyak averaging, i.e. ASGD with ``t0`` = trigger, ``lambd`` = 0); validation and the saved
  checkpoints use the average.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as L
import torch
import torch.nn.functional as F
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor, nn
from torchmetrics import SumMetric

from nnlab.models.averaging import by_name, swap_weights
from nnlab.nn.rnnlm import RNNLM, detach_hidden
from nnlab.utils.errors import CheckpointError, TrainingError

STAGES = ("train", "val", "test")


def vocab_mismatch(expected: Sequence[str], found: Sequence[str]) -> str | None:
    """None when the two vocabularies are identical, else one line saying where they first differ."""
    if list(expected) == list(found):
        return None
    if len(expected) != len(found):
        return f"{len(found):,} words instead of {len(expected):,}"
    i = next(i for i, (a, b) in enumerate(zip(expected, found)) if a != b)
    return f"word {i} is {found[i]!r} instead of {expected[i]!r}"


class LanguageModel(L.LightningModule):
    """RNN/LSTM/GRU language model. ``vocab`` comes from the DataModule (``model_kwargs()``)."""

    modality = "tokens"

    def __init__(
        self,
        vocab: Sequence[str],
        cell: str = "lstm",
        emsize: int = 200,
        nhid: int = 200,
        nlayers: int = 2,
        dropout: float = 0.0,
        dropouti: float | None = None,
        dropouth: float | None = None,
        dropoute: float = 0.0,
        wdrop: float = 0.0,
        locked_dropout: bool = False,
        tie_weights: bool = False,
        init_range: float = 0.1,
        clip: float | None = 0.25,
        nt_asgd: bool = False,
        nonmono: int = 5,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/loss",
    ):
        super().__init__()
        # The vocabulary goes into the checkpoint (on_save_checkpoint), not into the logged hyperparameters.
        self.save_hyperparameters(ignore=["vocab", "optimizer", "scheduler"])
        self.vocab = list(vocab)
        self.net = RNNLM(
            len(self.vocab), cell, emsize, nhid, nlayers, dropout, dropouti, dropouth, dropoute, wdrop,
            locked_dropout, tie_weights, init_range,
        )  # fmt: skip
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        # Summed NLL and token counts per stage; SumMetric syncs them across processes.
        # (ModuleDict keys cannot be "train": it would shadow nn.Module.train.)
        self.sums = nn.ModuleDict(
            {f"{s}_{q}": SumMetric().set_dtype(torch.float64) for s in STAGES for q in ("nll", "tokens")}
        )
        self._hidden: dict[str, Any] = dict.fromkeys(STAGES)
        self._resume: dict | None = None
        # NT-ASGD state: validation losses so far, the running average of the weights and its count.
        self._val_history: list[float] = []
        self._avg: list[Tensor] | None = None
        self._avg_n = 0
        self._swapped = False

    def forward(self, x: Tensor, hidden=None):
        return self.net(x, hidden)

    # --- steps

    def _step(self, stage: str, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        logits, hidden = self.net(x, self._hidden[stage])
        self._hidden[stage] = detach_hidden(hidden)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
        self.sums[f"{stage}_nll"].update(nll.detach())
        self.sums[f"{stage}_tokens"].update(float(y.numel()))
        return nll / y.numel()

    def training_step(self, batch, batch_idx):
        loss = self._step("train", batch)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch[1].numel())
        return loss

    def validation_step(self, batch, batch_idx):
        self._step("val", batch)

    def test_step(self, batch, batch_idx):
        self._step("test", batch)

    def _log_split(self, stage: str) -> float:
        nll, count = self.sums[f"{stage}_nll"].compute(), self.sums[f"{stage}_tokens"].compute()
        self._reset_sums(stage)
        loss = (nll / count).item() if count > 0 else float("nan")
        # ppl is logged in float64 (exp amplifies float32 rounding of the mean NLL).
        self.log(f"{stage}/loss", loss, prog_bar=stage != "train")
        self.log(f"{stage}/ppl", math.exp(loss) if math.isfinite(loss) else float("nan"), prog_bar=True)
        return loss

    def _reset_sums(self, stage: str) -> None:
        self.sums[f"{stage}_nll"].reset()
        self.sums[f"{stage}_tokens"].reset()

    # --- hidden state resets: a pass over a split starts from zeros

    def on_train_start(self) -> None:
        # A run resumed mid-epoch continues from the hidden state and the NLL sums it was killed with
        # (Lightning does not call on_train_epoch_start for the epoch it restarts mid-way).
        resume, self._resume = self._resume, None
        if resume is not None and resume["epoch"] == self.current_epoch:
            self._hidden["train"] = resume["hidden"]
            self.sums["train_nll"].update(torch.tensor(resume["nll"], dtype=torch.float64))
            self.sums["train_tokens"].update(torch.tensor(resume["tokens"], dtype=torch.float64))

    def on_train_epoch_start(self) -> None:
        self._hidden["train"] = None

    def on_validation_epoch_start(self) -> None:
        self._hidden["val"] = None
        self._reset_sums("val")
        if self._avg is not None and self.trainer.state.fn == TrainerFn.FITTING:
            self._swap_average()

    def on_test_epoch_start(self) -> None:
        self._hidden["test"] = None
        self._reset_sums("test")

    def on_train_epoch_end(self) -> None:
        loss = self._log_split("train")
        if not math.isfinite(loss):
            raise TrainingError(
                f"training loss is {loss} at epoch {self.current_epoch}; lower model.optimizer.lr or model.clip"
            )

    def on_validation_epoch_end(self) -> None:
        loss = self._log_split("val")
        if self.trainer.sanity_checking or not self.hparams.nt_asgd:
            return
        hist, k = self._val_history, self.hparams.nonmono
        if self._avg is None and len(hist) > k and loss > min(hist[: len(hist) - k]):
            # Trigger: from now on average the weights (they are swapped in after validation ends).
            self._avg = [p.detach().clone() for p in self.parameters()]
            self._avg_n = 1
        hist.append(loss)

    def on_validation_end(self) -> None:
        if self._swapped:
            self._swap_average()

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self._avg is not None:
            self._avg_n += 1
            with torch.no_grad():
                for a, p in zip(self._avg, self.parameters()):
                    a.lerp_(p, 1.0 / self._avg_n)

    def _swap_average(self) -> None:
        swap_weights(self, self._avg)
        self._swapped = not self._swapped

    # --- optimization

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.hparams.clip:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.hparams.clip)

    def configure_optimizers(self):
        params = self.parameters()
        opt = self.optimizer_factory(params) if self.optimizer_factory else torch.optim.SGD(params, lr=20.0)
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(opt)
        return {
            "optimizer": opt,
            "lr_scheduler": {
                "scheduler": sched,
                "monitor": self.hparams.scheduler_monitor,
                "interval": "epoch",
            },
        }

    # --- checkpoints carry their vocabulary and refuse data with another one

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["vocab"] = list(self.vocab)
        checkpoint["nt_asgd"] = {"val_history": list(self._val_history), "avg_n": self._avg_n}
        if self._avg is not None and not self._swapped:
            # ModelCheckpoint saves at the epoch's end, after validation has swapped the raw weights back in:
            # the checkpoint gets the average, which is what validation scored (and what load resumes from).
            checkpoint["state_dict"].update(by_name(self, self._avg))
        checkpoint["lm_train_state"] = {
            "epoch": self.current_epoch,
            "hidden": self._hidden["train"],
            "nll": float(self.sums["train_nll"].compute()) if self.sums["train_nll"].update_count else 0.0,
            "tokens": float(self.sums["train_tokens"].compute()) if self.sums["train_tokens"].update_count else 0.0,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        found = checkpoint.get("vocab")
        if found is None:
            found = checkpoint.get("nnlab", {}).get("model_kwargs", {}).get("vocab")
        if found is not None:
            why = vocab_mismatch(self.vocab, found)
            if why is not None:
                raise CheckpointError(
                    f"the checkpoint's vocabulary does not match the data's ({why}); "
                    "use the dataset (and vocabulary settings) the checkpoint was trained on"
                )
        if self._trainer is not None and self.trainer.state.fn == "fit":
            self._resume = checkpoint.get("lm_train_state")
        state = checkpoint.get("nt_asgd") or {}
        self._val_history = list(state.get("val_history", []))
        # A resumed NT-ASGD run restarts the average from the saved (already averaged) weights.
        self._avg_n = int(state.get("avg_n", 0))
        self._avg = None
        if self._avg_n > 0:
            sd = checkpoint["state_dict"]
            names = [n for n, _ in self.named_parameters()]
            self._avg = [sd[n].detach().clone() for n in names]

    @classmethod
    def from_checkpoint(cls, ckpt_path: str | Path, map_location: str = "cpu") -> LanguageModel:
        """The model of a checkpoint, in eval mode, rebuilt from its hyperparameters and vocabulary.

        Loads with ``weights_only=True``; works for checkpoints of ``train.py`` and of a bare Trainer."""
        path = Path(ckpt_path)
        if not path.is_file():
            raise CheckpointError(f"ckpt_path={path} is not a file; give the checkpoints/best.ckpt of a model=lm run")
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}); truncated?") from None
        family = (ckpt.get("nnlab") or {}).get("family") if isinstance(ckpt, dict) else None
        if family is not None and family != cls.__name__:
            raise CheckpointError(f"{path} is a {family} checkpoint, not a language model's; train one with model=lm")
        vocab = ckpt.get("vocab") or (ckpt.get("nnlab") or {}).get("model_kwargs", {}).get("vocab")
        if vocab is None or "state_dict" not in ckpt:
            raise CheckpointError(f"{path} is not a language-model checkpoint (no vocabulary); train with model=lm")
        hparams = {k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if not k.startswith("_")}
        model = cls(vocab=vocab, **hparams)
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as e:
            lines = str(e).splitlines()
            why = (lines[1] if len(lines) > 1 else lines[0]).strip()
            raise CheckpointError(f"{path}: the weights do not fit the model they claim ({why})") from None
        return model.eval()
