"""Build, cache and call the fused CPU gradient kernel (``_kernel.c``).

Why a kernel at all: the exact gradient is a sum over all n^2 pairs, and in eager torch every intermediate
(distances, w, p*w, w^2, ...) is an n x n tensor written to and read back from memory, so one iteration at
n = 5000 costs ~0.3 s. The fused pass reads P once and keeps everything else in registers (~7 ms). It is plain
C built by ``nnlab.utils.ckernel`` (compiled on first use, cached) and called through ctypes from a few Python
threads (ctypes releases the GIL) on disjoint row ranges. Without a compiler, or with ``NNLAB_TSNE_KERNEL=torch``,
:func:`load` returns ``None`` and the chunked torch path is used instead.
"""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from nnlab.utils import ckernel

_SOURCE = Path(__file__).with_name("_kernel.c")
_ARGS = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 5 + [ctypes.c_void_p]
_pool: ThreadPoolExecutor | None = None


def load() -> ctypes.CDLL | None:
    """The compiled kernel, or ``None`` when it is disabled (``NNLAB_TSNE_KERNEL=torch``) or cannot be built."""
    return ckernel.load(_SOURCE, "NNLAB_TSNE_KERNEL", {"tsne_rows_f32": _ARGS, "tsne_rows_f64": _ARGS})


def rows(P: torch.Tensor, Yt: torch.Tensor, with_kl: bool) -> torch.Tensor:
    """Run the kernel over all rows; returns the (n, 2d + 2) table of per-row sums described in _kernel.c."""
    global _pool
    lib = load()
    assert lib is not None and P.is_contiguous() and Yt.is_contiguous() and P.dtype == Yt.dtype
    d, n = Yt.shape
    out = torch.empty(n, 2 * d + 2, dtype=P.dtype)
    fn = lib.tsne_rows_f32 if P.dtype == torch.float32 else lib.tsne_rows_f64
    args = (P.data_ptr(), Yt.data_ptr(), n, d)
    threads = max(1, min(torch.get_num_threads(), n // 256))
    if threads == 1:
        fn(*args, 0, n, int(with_kl), out.data_ptr())
        return out
    if _pool is None or _pool._max_workers < threads:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nnlab-tsne")
    bounds = [n * t // threads for t in range(threads + 1)]
    futures = [_pool.submit(fn, *args, bounds[t], bounds[t + 1], int(with_kl), out.data_ptr()) for t in range(threads)]
    for f in futures:
        f.result()
    return out
