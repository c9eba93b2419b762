"""Keep freed host memory in the process instead of handing it back to the OS (glibc ``mallopt``).

PyTorch's CPU allocator is plain ``malloc``. glibc serves blocks above its (dynamic) mmap threshold with
fresh ``mmap`` calls and trims the heap top once more than ``M_TRIM_THRESHOLD`` is free, so a training
step that frees and re-allocates the same large buffers (an LM's 700 x 10,000 logits are 28 MB) pays a
page fault for every 4 KiB page it touches again: on PTB's 2 x 200 LSTM about 10,000 minor faults a step,
15-20 % of the step time on one CPU thread (``scripts/bench_lm.py malloc=default`` shows it).

``keep_freed_memory()`` switches mmap off for malloc and trims only past 2 GiB free, so freed buffers are
reused from the heap. The price is that the resident size stays at the run's peak. GPU memory is not
affected (CUDA has its own caching allocator). Called by ``train.py`` when ``extras.keep_freed_memory``
is true (the default).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_TRIM_BYTES = 2**31 - 1  # mallopt takes an int


@functools.cache
def keep_freed_memory() -> bool:
    """Apply the two ``mallopt`` settings once per process; False where libc has no ``mallopt`` (musl,
    macOS, Windows), which leaves the allocator as it was."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, _TRIM_BYTES))
