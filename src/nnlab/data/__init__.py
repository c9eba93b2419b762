"""LightningDataModules, one per dataset family: images, labeled sentences, token streams."""

from nnlab.data.corpus import CorpusDataModule
from nnlab.data.images import ImageDataModule, load_image_arrays
from nnlab.data.mr import MRDataModule
from nnlab.data.sst import SST2DataModule, SST5DataModule
from nnlab.data.text import AGNewsDataModule, LocalTextDataModule, TextDataModule, YelpPolarityDataModule

__all__ = [
    "AGNewsDataModule",
    "CorpusDataModule",
    "ImageDataModule",
    "LocalTextDataModule",
    "MRDataModule",
    "SST2DataModule",
    "SST5DataModule",
    "TextDataModule",
    "YelpPolarityDataModule",
    "load_image_arrays",
]
