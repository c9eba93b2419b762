"""Access to the Hugging Face hub, shared by every DataModule: local files come first, the hub second.

An offline machine must fail in seconds with one line naming where nnlab looked, not retry for minutes:
reachability is checked up front (offline env vars, then one TCP connect with a short timeout).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from nnlab.utils.errors import DataError

HUB_HOST = "huggingface.co"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def hub_offline() -> bool:
    """Whether the user switched the hub off (``HF_HUB_OFFLINE=1`` or ``HF_DATASETS_OFFLINE=1``)."""
    return any(os.environ.get(v, "").strip().lower() not in ("", "0", "false", "no") for v in OFFLINE_VARS)


def hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    """Whether the HF hub can be reached at all; offline mode counts as unreachable."""
    if hub_offline():
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_hub(name: str, hub_id: str, looked: str, config: str | None = None, hint: str = "", **kw: Any):
    """The ``DatasetDict`` of ``hub_id`` (``datasets.load_dataset(hub_id, config, **kw)``).

    Fails with one line when the hub cannot be reached or the download fails, naming ``looked`` (where
    the local files were expected) and ``hint`` (how to provide them).
    """
    hint = hint or "put the files there or set paths.data_dir (DATA_DIR)"
    if not hub_reachable():
        raise DataError(
            f"dataset {name!r}: not found locally ({looked}) and the Hugging Face hub is offline or unreachable; "
            f"{hint}, or go online to fetch {hub_id}"
        )
    import datasets  # deferred: importing it costs about a second

    try:
        return datasets.load_dataset(hub_id, config, **kw)
    except Exception as e:  # noqa: BLE001 - any hub or network failure becomes one actionable line
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DataError(f"dataset {name!r}: loading {hub_id} from the hub failed ({first}); {hint}") from None
