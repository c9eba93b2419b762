"""LightningDataModules, one per dataset family."""

from nnlab.data.images import ImageDataModule, load_image_arrays

__all__ = ["ImageDataModule", "load_image_arrays"]
