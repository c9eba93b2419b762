"""LightningModules, one per model family."""

from nnlab.models.image import ImageClassifier
from nnlab.models.lm import LanguageModel
from nnlab.models.text import TextClassifier

__all__ = ["ImageClassifier", "LanguageModel", "TextClassifier"]
