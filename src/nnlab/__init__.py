"""nnlab: a Hydra-configured PyTorch Lightning lab for the classic pieces of a deep-learning course."""

__version__ = "0.1.0"
