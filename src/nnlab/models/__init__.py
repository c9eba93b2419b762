"""LightningModules, one per model family."""

from nnlab.models.text import TextClassifier  # noqa: F401
