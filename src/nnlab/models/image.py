"""Image classification as a LightningModule: any net of ``nnlab.nn`` + cross-entropy + torchmetrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytorch_lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from nnlab.nn.registry import check_conv, check_norm, check_pool


def classification_metrics(num_classes: int) -> MetricCollection:
    """Accuracy (micro: fraction correct) and macro-F1, the metrics every classifier of nnlab reports."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        }
    )


class ImageClassifier(L.LightningModule):
    """Classifies (N, C, H, W) images with the net ``net`` built for the data's shape.

    Args:
        net: a callable (a Hydra ``_partial_``) building the net from ``input_shape``, ``num_classes``,
            ``norm``, ``pool`` and ``conv``; e.g. ``functools.partial(nnlab.nn.ConvNet, channels=[32, 64])``.
        norm, pool, conv: registry names (``model.norm=batch``, ``model.pool=lp``, ``model.conv=torch``).
        optimizer: a callable taking the parameters (a Hydra ``_partial_`` of a torch optimizer).
        scheduler: optional callable taking the optimizer; stepped once per epoch.
        num_classes, input_shape, class_names: what the DataModule tells (``model_kwargs()``).
    """

    modality = "image"

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        num_classes: int,
        input_shape: Sequence[int],
        class_names: Sequence[str] | None = None,
        norm: str = "batch",
        pool: str = "max",
        conv: str = "torch",
        scheduler: Callable[..., object] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        # Plain data only: checkpoints must load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        check_norm(norm), check_pool(pool), check_conv(conv)
        self.net = net(input_shape=list(input_shape), num_classes=num_classes, norm=norm, pool=pool, conv=conv)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.label_smoothing = label_smoothing
        self.class_names = list(class_names or [str(i) for i in range(num_classes)])
        self.train_metrics = classification_metrics(num_classes).clone(prefix="train/")
        self.val_metrics = classification_metrics(num_classes).clone(prefix="val/")
        self.test_metrics = classification_metrics(num_classes).clone(prefix="test/")
        self.test_confmat = MulticlassConfusionMatrix(num_classes)
        # rows: true class, columns: predicted; filled by the last test pass (train.py stores it in metrics.json)
        self.confusion_matrix: list[list[int]] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer representation of ``x``."""
        return self.net.forward_features(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, metrics: MetricCollection) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing if stage == "train" else 0.0)
        metrics.update(logits.detach(), y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", self.train_metrics)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val", self.val_metrics)

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test", self.test_metrics)
        self.test_confmat.update(self(batch[0]).argmax(-1), batch[1])

    def on_test_epoch_end(self) -> None:
        self.confusion_matrix = self.test_confmat.compute().tolist()
        self.test_confmat.reset()

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self(x).softmax(-1)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)},
        }
