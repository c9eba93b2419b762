"""LightningDataModules, one per dataset family."""

from nnlab.data.images import ImageDataModule, load_image_arrays

__all__ = ["ImageDataModule", "load_image_arrays"]

from nnlab.data.text import (  # noqa: E402
    AGNewsDataModule,
    LocalTextDataModule,
    MRDataModule,
    SST2DataModule,
    SST5DataModule,
    TextDataModule,
    YelpPolarityDataModule,
)

__all__ += [
    "AGNewsDataModule",
    "LocalTextDataModule",
    "MRDataModule",
    "SST2DataModule",
    "SST5DataModule",
    "TextDataModule",
    "YelpPolarityDataModule",
]
