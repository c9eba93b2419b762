"""Build, cache and call the fused CPU gradient kernel (``_kernel.c``).

Why a kernel at all: the exact gradient is a sum over all n^2 pairs, and in eager torch every intermediate
(distances, w, p*w, w^2, ...) is an n x n tensor written to and read back from memory, so one iteration at
n = 5000 costs ~0.3 s. The fused pass reads P once and keeps everything else in registers (~7 ms). It is plain
C compiled on first use with the system compiler (the same requirement ``torch.compile`` has on CPU), cached
under ``$NNLAB_CACHE_DIR`` (default ``~/.cache/nnlab``), and called through ctypes from a few Python threads
(ctypes releases the GIL) on disjoint row ranges. Without a compiler, or with ``NNLAB_TSNE_KERNEL=torch``,
:func:`load` returns ``None`` and the chunked torch path is used instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

_SOURCE = Path(__file__).with_name("_kernel.c")
# -ffast-math is avoided on purpose: linking a shared library with it can switch the whole process to
# flush-denormals-to-zero. These flags are the subset needed for the reductions to vectorise.
_FLAGS = [
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fno-trapping-math",
    "-freciprocal-math",
    "-fopenmp-simd",
    "-shared",
    "-fPIC",
]
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
_pool: ThreadPoolExecutor | None = None


def _cpu_signature() -> str:
    # -march=native binaries must not be shared between different CPUs through a shared cache directory.
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def _compile(cc: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        subprocess.run([cc, *_FLAGS, str(_SOURCE), "-o", tmp, "-lm"], check=True, capture_output=True, timeout=120)
        os.replace(tmp, out)  # atomic: concurrent processes never load a half-written library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load() -> ctypes.CDLL | None:
    """The compiled kernel, or ``None`` when it is disabled or cannot be built (then torch is used)."""
    global _lib, _tried
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("NNLAB_TSNE_KERNEL", "auto") == "torch" or sys.platform == "win32":
            return None
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            return None
        source = _SOURCE.read_bytes()
        key = hashlib.sha256(source + " ".join([cc, *_FLAGS, _cpu_signature()]).encode()).hexdigest()[:16]
        cache = Path(os.environ.get("NNLAB_CACHE_DIR", Path.home() / ".cache" / "nnlab"))
        path = cache / f"tsne_kernel_{key}.so"
        try:
            if not path.exists():
                _compile(cc, path)
            lib = ctypes.CDLL(str(path))
        except (OSError, subprocess.SubprocessError) as err:
            warnings.warn(f"nnlab.tsne: fused CPU kernel unavailable ({err}); using the torch path", stacklevel=2)
            return None
        for name in ("tsne_rows_f32", "tsne_rows_f64"):
            fn = getattr(lib, name)
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 5 + [ctypes.c_void_p]
        _lib = lib
        return _lib


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
