"""LightningModules, one per model family."""

from nnlab.models.image import ImageClassifier

__all__ = ["ImageClassifier"]
