"""LightningDataModules, one per dataset family."""

from nnlab.data.corpus import CorpusDataModule  # noqa: F401
