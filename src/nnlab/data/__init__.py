"""LightningDataModules, one per dataset family."""

from nnlab.data.images import ImageDataModule, load_image_arrays

__all__ = ["ImageDataModule", "load_image_arrays"]

from nnlab.data.corpus import CorpusDataModule  # noqa: E402

__all__ += ["CorpusDataModule"]
