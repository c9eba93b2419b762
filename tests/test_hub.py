"""Hugging Face datasets as its docs say: offline loads what ``datasets`` cached, under <data_dir>/hf for every
family, downloads in prepare_data, no network probe of nnlab's own, one line when neither local nor cached."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import nnlab.data.images as images
from nnlab.data import CorpusDataModule, ImageDataModule, MRDataModule, SST2DataModule
from nnlab.data.text import AGNewsDataModule
from nnlab.utils.errors import DataError
from nnlab.utils.run import local_rank

SENTENCES = {
    "train": ["the cat sat on the mat", "a dog ran"],
    "validation": ["the dog sat"],
    "test": ["a cat ran on the mat"],
}


def cache_like_a_download(cache: Path, hub_id: str, columns: dict[str, dict[str, list]]) -> None:
    """Let ``datasets`` itself write its Arrow cache for ``hub_id`` under ``cache``, in the layout a download
    of that (namespace-less) hub id leaves there: ``<cache>/<name>/default/0.0.0/<hash>/``."""
    import datasets

    files = cache.parent / "parquet"
    files.mkdir(parents=True, exist_ok=True)
    for split, cols in columns.items():
        datasets.Dataset.from_dict(cols).to_parquet(str(files / f"{split}.parquet"))
    local = datasets.load_dataset_builder("parquet", data_files={s: str(files / f"{s}.parquet") for s in columns})
    builder = type(local)(
        cache_dir=str(cache), dataset_name=hub_id, config_name="default", config_id="default",
        data_files=local.config.data_files, hash=local.hash,
    )  # fmt: skip
    builder.download_and_prepare()


@pytest.fixture
def no_probe(monkeypatch):
    """Any TCP connection nnlab tries of its own fails the test (the offline path must need none)."""

    def refuse(*a, **k):
        raise AssertionError(f"unexpected network connection {a}")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_a_dataset_datasets_cached_loads_offline(tmp_path, monkeypatch, no_probe) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cache_like_a_download(tmp_path / "hf", "ptb_text_only", {s: {"sentence": v} for s, v in SENTENCES.items()})
    dm = CorpusDataModule("ptb", str(tmp_path), batch_size=1)
    dm.prepare_data()
    dm.setup("fit")
    tokens = dm.stats()["tokens"]
    # each sentence's words plus <eos>
    assert tokens == {"train": 6 + 1 + 3 + 1, "val": 3 + 1, "test": 6 + 1}, tokens


def test_missing_and_not_cached_offline_is_one_fast_line_naming_the_cache(tmp_path, monkeypatch, no_probe) -> None:
    # fast because nothing waits on the network (no_probe fails the test on any connection), not a timed bound:
    # on a loaded machine importing the hub libraries alone takes seconds
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        CorpusDataModule("ptb", str(tmp_path)).prepare_data()
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "hf") in msg and "offline" in msg and "ptb_text_only" in msg


@pytest.mark.parametrize(
    "make",
    [
        lambda d: ImageDataModule("mnist", d),
        lambda d: SST2DataModule(data_dir=d),
        lambda d: MRDataModule(data_dir=d),
        lambda d: AGNewsDataModule(data_dir=d),
        lambda d: CorpusDataModule("wikitext2", d),
    ],
    ids=["images", "sst2", "mr", "ag_news", "corpus"],
)
def test_every_family_caches_under_data_dir_hf_and_fetches_in_prepare_data(make, tmp_path, monkeypatch) -> None:
    import datasets

    seen = []

    def spy(path, name=None, cache_dir=None, **kw):
        seen.append(cache_dir)
        raise FileNotFoundError(f"{path} is not cached")

    monkeypatch.setattr(datasets, "load_dataset", spy)
    dm = make(str(tmp_path))
    with pytest.raises(DataError, match="nor cached in"):
        dm.prepare_data()
    assert seen == [str(tmp_path / "hf")]


def test_prepare_data_keeps_what_it_read_for_setup(monkeypatch) -> None:
    calls = []
    real = images.load_image_arrays
    monkeypatch.setattr(images, "load_image_arrays", lambda *a: calls.append(a) or real(*a))
    dm = ImageDataModule("digits", "/nonexistent")
    dm.prepare_data()
    dm.prepare_data()  # Lightning calls it again inside fit
    dm.setup("fit")
    assert len(calls) == 1 and dm.num_classes == 10


@pytest.mark.parametrize(
    "env, rank", [({}, 0), ({"LOCAL_RANK": "1"}, 1), ({"SLURM_LOCALID": "3"}, 3), ({"LOCAL_RANK": "0"}, 0)]
)
def test_local_rank_follows_the_launchers(env, rank, monkeypatch) -> None:
    for var in ("LOCAL_RANK", "SLURM_LOCALID"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert local_rank() == rank
