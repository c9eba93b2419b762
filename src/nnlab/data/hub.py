"""Access to the Hugging Face hub, shared by every DataModule: local files come first, the hub second.

``datasets.load_dataset`` decides what is reachable, as its docs say: online it downloads (honouring
``HF_ENDPOINT``, proxies and tokens), and under ``HF_HUB_OFFLINE=1``/``HF_DATASETS_OFFLINE=1`` it loads what
it cached before. Every family caches under ``<data_dir>/hf``, so the usual workflow works: fetch once on a
login node, train offline on compute nodes that see the same ``data_dir``. A dataset that is neither local nor
cached fails in one line; offline that takes milliseconds, since ``datasets`` raises without any network call.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from nnlab.utils.errors import DataError

log = logging.getLogger(__name__)

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def hub_offline() -> bool:
    """Whether the user switched the hub off (``HF_HUB_OFFLINE=1`` or ``HF_DATASETS_OFFLINE=1``)."""
    return any(os.environ.get(v, "").strip().lower() not in ("", "0", "false", "no") for v in OFFLINE_VARS)


def hub_cache_dir(data_dir: str | os.PathLike) -> Path:
    """Where nnlab asks ``datasets`` to keep its Arrow cache: ``<data_dir>/hf`` for every family."""
    return Path(data_dir).expanduser() / "hf"


def load_hub(
    name: str,
    hub_id: str,
    looked: str,
    config: str | None = None,
    hint: str = "",
    cache_dir: str | os.PathLike | None = None,
    **kw: Any,
):
    """The ``DatasetDict`` of ``hub_id`` (``datasets.load_dataset(hub_id, config, cache_dir=cache_dir, **kw)``).

    Fails with one line when ``datasets`` can neither download nor find it in ``cache_dir``, naming ``looked``
    (where the local files were expected), the cache and ``hint`` (how to provide them).
    """
    hint = hint or "put the files there or set paths.data_dir (DATA_DIR)"
    import datasets  # deferred: importing it costs about a second

    try:
        return datasets.load_dataset(hub_id, config, cache_dir=str(cache_dir) if cache_dir else None, **kw)
    except Exception as e:  # noqa: BLE001 - any hub, cache or network failure becomes one actionable line
        log.debug("load_dataset(%r, %r) failed", hub_id, config, exc_info=True)
        cache = cache_dir or "the default Hugging Face cache"
        if hub_offline():
            raise DataError(
                f"dataset {name!r}: not found locally ({looked}) nor cached in {cache}, and the Hugging Face hub "
                f"is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE); {hint}, or run once online with the same "
                f"data_dir to cache {hub_id}"
            ) from None
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DataError(
            f"dataset {name!r}: not found locally ({looked}) nor cached in {cache}, and loading {hub_id} from the "
            f"hub failed ({first}); {hint}"
        ) from None
