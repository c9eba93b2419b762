"""What a W&B user looks at in a run, logged while it trains: confusion matrix, test table, LM samples.

Everything here is best effort: W&B trouble is a warning in the log, never a failed run, and nothing is
done when no ``WandbLogger`` is attached (``logger=csv``, ``logger=none``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)

#: prompts-free samples: each starts after <eos>, one per seed, so epochs are comparable
SAMPLE_SEEDS = (0, 1, 2)
SAMPLE_WORDS = 30


def wandb_logger(trainer) -> WandbLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)


def confusion_pairs(matrix: list[list[int]]) -> tuple[list[int], list[int]]:
    """The (true, predicted) label lists that give ``matrix`` (rows true, columns predicted), which is what
    ``wandb.plot.confusion_matrix`` takes."""
    y_true: list[int] = []
    preds: list[int] = []
    for t, row in enumerate(matrix):
        for p, n in enumerate(row):
            y_true += [t] * int(n)
            preds += [p] * int(n)
    return y_true, preds


def lm_samples(pl_module, seeds=SAMPLE_SEEDS, words: int = SAMPLE_WORDS) -> list[str]:
    """Samples of the language model at temperature 1, each from its own seeded generator (the global RNG,
    and so a resumed run's randomness, is left alone)."""
    from nnlab.nn.rnnlm import generate

    vocab = pl_module.vocab
    start = torch.tensor([vocab.index("<eos>") if "<eos>" in vocab else 0], device=pl_module.device)
    out = []
    with torch.no_grad():
        for seed in seeds:
            g = torch.Generator(device=pl_module.device).manual_seed(seed)
            ids = generate(pl_module.net, start, words, 1.0, 0, generator=g)
            out.append(" ".join(vocab[i] for i in ids).replace("<eos>", "/"))
    return out


class WandbMedia(Callback):
    """Logs into the W&B run: LM samples after each validation epoch, and after testing the test metrics as
    a table and, for classifiers, the confusion matrix as W&B's own chart."""

    def __init__(self) -> None:
        self.sample_rows: list[list[Any]] = []

    def _log(self, trainer, what: str, make) -> None:
        lg = wandb_logger(trainer)
        if lg is None or trainer.global_rank != 0:
            return
        try:
            lg.experiment.log(make())
        except Exception as e:  # noqa: BLE001 - media are extras; the run goes on without them
            log.warning("W&B: could not log %s: %s", what, e)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        from nnlab.models.lm import LanguageModel

        if trainer.sanity_checking or not isinstance(pl_module, LanguageModel):
            return

        def make() -> dict:
            import wandb

            for seed, text in zip(SAMPLE_SEEDS, lm_samples(pl_module)):
                self.sample_rows.append([trainer.current_epoch, trainer.global_step, seed, text])
            return {"samples": wandb.Table(columns=["epoch", "step", "seed", "text"], data=self.sample_rows)}

        self._log(trainer, "LM samples", make)

    def on_test_end(self, trainer, pl_module) -> None:
        def make() -> dict:
            import wandb

            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
            out: dict[str, Any] = {
                "test/table": wandb.Table(
                    columns=["metric", "value"], data=[[k, v] for k, v in sorted(metrics.items())]
                )
            }
            matrix = getattr(pl_module, "confusion_matrix", None)
            if matrix:
                y_true, preds = confusion_pairs(matrix)
                names = list(getattr(pl_module, "class_names", None) or [str(i) for i in range(len(matrix))])
                out["test/confusion_matrix"] = wandb.plot.confusion_matrix(
                    y_true=y_true, preds=preds, class_names=names, title="test confusion matrix"
                )
            return out

        self._log(trainer, "the test table and confusion matrix", make)
