"""LightningDataModules, one per dataset family."""

from nnlab.data.text import (  # noqa: F401
    AGNewsDataModule,
    LocalTextDataModule,
    MRDataModule,
    SST2DataModule,
    SST5DataModule,
    TextDataModule,
    YelpPolarityDataModule,
)
