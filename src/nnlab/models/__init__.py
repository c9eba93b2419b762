"""LightningModules, one per model family."""

from nnlab.models.image import ImageClassifier

__all__ = ["ImageClassifier"]

from nnlab.models.lm import LanguageModel  # noqa: E402

__all__ += ["LanguageModel"]
