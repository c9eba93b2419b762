"""The native loops of ``_kernels.c`` (batch norm, tiled pools) and ``_conv_kernels.c`` (conv2d's direct
convolution), built by ``nnlab.utils.ckernel``.

``load()`` / ``load_conv()`` are ``None`` without a C compiler or with ``NNLAB_OPS_KERNEL=torch``; the ops then
run their torch code, which evaluates the same formulas (the tests run both). ``layout(x)`` says whether a tensor
is one the kernels read directly: CPU, float32/float64, and either contiguous ("planar", (N, C, *)) or
channels-last ("rows", C fastest). Work is split over ``torch.get_num_threads()`` threads on disjoint ranges
(channels for batch norm, output rows for pools and convolutions): an OpenMP team of torch's own thread pool
(``_parallel.h``), or, for a build without OpenMP or with ``NNLAB_OPS_THREADS=python``, Python threads (ctypes
releases the GIL).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from nnlab.utils import ckernel

_SOURCE = Path(__file__).with_name("_kernels.c")
_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
_BN = [_I, _I, _I, _I]  # N, C, S, rows (begin, end come last in every function)
_POOL = [_I] * 10  # H, W, C, rows, kh, kw, Ho, Wo, begin, end
_SIGNATURES: dict[str, list] = {}
for _suf, _T in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
    _SIGNATURES.update(
        {
            f"bn_stats_{_suf}": [_P, *_BN, _P, _P, _I, _I],
            f"bn_apply_{_suf}": [_P, _P, *_BN, _P, _P, _P, _I, _I],
            f"bn_bwd_sums_{_suf}": [_P, _P, *_BN, _P, _P, _P, _I, _I],
            f"bn_bwd_apply_{_suf}": [_P, _P, _P, *_BN, _P, _P, _P, _P, _I, _I],
            f"bn_fwd_{_suf}": [_P] * 9 + [_D, _D, _I, *_BN, _I, _I],
            f"bn_bwd_{_suf}": [_P] * 8 + [_I, *_BN, _I, _I],
            f"bn_rows_sum_{_suf}": [_P, _I, _P, _P, _I, _I, _I],
            f"bn_rows_sq_{_suf}": [_P, _I, _P, _P, _P, _I, _I, _I],
            f"bn_rows_bsum_{_suf}": [_P, _P, _I, _P, _P, _I, _I, _I],
            f"bn_rows_apply_{_suf}": [_P, _P, _I, _P, _P, _P, _I, _I, _I],
            f"bn_rows_bwd_apply_{_suf}": [_P, _P, _P, _I, _P, _P, _P, _P, _I, _I, _I],
            # one OpenMP team split by rows (M, C, threads last)
            f"bn_rows_fwd_team_{_suf}": [_P] * 9 + [_D, _D, _I, _I, _I, _I],
            f"bn_rows_bwd_team_{_suf}": [_P] * 8 + [_I, _I, _I, _I],
            f"maxpool_fwd_{_suf}": [_P, _P, _P, *_POOL],
            f"maxpool_bwd_{_suf}": [_P, _P, _P, *_POOL],
            f"avgpool_fwd_{_suf}": [_P, _P, _T, *_POOL],
            f"avgpool_bwd_{_suf}": [_P, _P, _T, *_POOL],
            f"lppool_fwd_{_suf}": [_P, _P, _D, *_POOL],
            f"lppool_bwd_{_suf}": [_P, _P, _P, _P, _D, *_POOL],
        }
    )
_CONV_SOURCE = Path(__file__).with_name("_conv_kernels.c")
_CONV_SIGNATURES: dict[str, list] = {
    "conv_lanes": [_P],
    # the last three of each: the shared row counter, rows per take, rows in all (parallel_shared); conv_rows and
    # conv_dw also take the thread's slot before them
    "pad_nhwc_f32": [_P, *[_I] * 7, _P, *[_I] * 5, _P, _I, _I],
    "conv_rows_f32": [_P, _I, _I, _I, _I, _P, _I, _I, _P, _I, _I, _I, _I, _P, *[_I] * 6, _P, _I, _P, _I, _I],
    "conv_dw_f32": [_P, _I, _I, _I, _P, *[_I] * 11, _P, _P, _I, _P, _I, _I],
}
# The OpenMP entry points (par_<name>, _parallel.h): the kernel's arguments without its range, then
# (total, threads) for ranges and slots, or (grain, total, threads) for a shared counter.
_RANGES = ["bn_fwd", "bn_bwd", *(f"{p}pool_{d}" for p in ("max", "avg", "lp") for d in ("fwd", "bwd"))]
_SLOTS = ["bn_rows_sum", "bn_rows_sq", "bn_rows_bsum", "bn_rows_apply", "bn_rows_bwd_apply"]
for _suf in ("f32", "f64"):
    for _name, _cut in [*((n, 2) for n in _RANGES), *((n, 3) for n in _SLOTS)]:
        _SIGNATURES[f"par_{_name}_{_suf}"] = [*_SIGNATURES[f"{_name}_{_suf}"][:-_cut], _I, _I]
_SIGNATURES["nnlab_openmp"] = [_P]
for _name, _cut in (("pad_nhwc_f32", 3), ("conv_rows_f32", 4), ("conv_dw_f32", 4)):
    _CONV_SIGNATURES[f"par_{_name}"] = [*_CONV_SIGNATURES[_name][:-_cut], _I, _I, _I]
_CONV_SIGNATURES["nnlab_openmp"] = [_P]
_state = {
    "disabled": os.environ.get("NNLAB_OPS_KERNEL", "auto") == "torch",
    "python_threads": os.environ.get("NNLAB_OPS_THREADS", "openmp") == "python",
}
_pool: ThreadPoolExecutor | None = None
# Below this many elements one thread does the whole op. Handing work to a Python thread costs ~20 us, a pass
# over 64K floats about as much, and on a busy machine a woken thread may wait a time slice (milliseconds); an
# OpenMP team of torch's pool starts in a few microseconds when its threads are still spinning from torch's
# last parallel region, as they are between the ops of a training step.
_MIN_PARALLEL = {"openmp": 1 << 15, "python": 1 << 18}


def load() -> ctypes.CDLL | None:
    if _state["disabled"]:
        return None
    lib = _state.get("lib")
    if lib is None:  # ckernel.load caches too, but behind a lock: this is on every op's hot path
        lib = _state["lib"] = ckernel.load(_SOURCE, "NNLAB_OPS_KERNEL", _SIGNATURES, openmp=True)
    return lib


def load_conv() -> ctypes.CDLL | None:
    """The conv kernels, a source of their own (the conv tiles are most of the build time), same switch."""
    if _state["disabled"]:
        return None
    lib = _state.get("conv_lib")
    if lib is None:
        lib = _state["conv_lib"] = ckernel.load(_CONV_SOURCE, "NNLAB_OPS_KERNEL", _CONV_SIGNATURES, openmp=True)
    return lib


def conv_lanes() -> int:
    """The vector width of the conv kernels' build: their channel buffers are padded to a multiple of it."""
    lanes = _state.get("conv_lanes")
    if lanes is None:
        out = ctypes.c_int64()
        load_conv().conv_lanes(ctypes.byref(out))
        lanes = _state["conv_lanes"] = out.value
    return lanes


@contextlib.contextmanager
def _switched_on(key: str) -> Iterator[None]:
    before = _state[key]
    _state[key] = True
    try:
        yield
    finally:
        _state[key] = before


def disabled() -> contextlib.AbstractContextManager[None]:
    """Run the ops' torch code inside the block (tests compare both paths)."""
    return _switched_on("disabled")


def layout(x: torch.Tensor) -> str | None:
    """'planar' (contiguous), 'rows' (channels-last, C fastest) or None (the kernels don't take it)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.dim() < 2:
        return None
    if x.is_contiguous():
        return "planar"
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return "rows"
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return "rows"
    return None


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """The memory format ``layout(x)`` recognised (for copying a gradient into x's layout)."""
    if x.is_contiguous():
        return torch.contiguous_format
    return torch.channels_last if x.dim() == 4 else torch.channels_last_3d


def fn(name: str, dtype: torch.dtype) -> Callable:
    lib = load()
    assert lib is not None
    return getattr(lib, f"{name}_{'f32' if dtype == torch.float32 else 'f64'}")


def _team(f: Callable) -> Callable | None:
    """The OpenMP entry point of kernel ``f`` (``par_<name>``), or None when its library was built without OpenMP
    or the Python pool is asked for (``NNLAB_OPS_THREADS=python``, :func:`python_threads`)."""
    lib = _state["conv_lib"] if f.__name__ in _CONV_SIGNATURES else _state["lib"]
    return getattr(lib, f"par_{f.__name__}") if _uses_openmp(lib) else None


def _uses_openmp(lib: ctypes.CDLL | None) -> bool:
    if lib is None or _state["python_threads"]:
        return False
    key = ("openmp", id(lib))
    if key not in _state:
        flag = ctypes.c_int64(0)
        lib.nnlab_openmp(ctypes.byref(flag))
        _state[key] = bool(flag.value)
    return _state[key]


def python_threads() -> contextlib.AbstractContextManager[None]:
    """Split the kernels over Python threads inside the block, as a build without OpenMP does (tests, benchmark)."""
    return _switched_on("python_threads")


def threads_for(total: int, numel: int, min_parallel: int | None = None) -> int:
    """Threads for an op of ``numel`` elements split into ``total`` items: torch's thread count, fewer when the op
    is too small to repay the hand-off (``min_parallel`` elements a thread, default by the kind of threads)."""
    if min_parallel is None:
        team = _uses_openmp(_state.get("lib") or _state.get("conv_lib"))
        min_parallel = _MIN_PARALLEL["openmp" if team else "python"]
    return min(torch.get_num_threads(), total, max(1, numel // min_parallel))


def team_threads(total: int, numel: int) -> int:
    """Threads for a kernel that runs as one OpenMP team with barriers inside (``bn_rows_*_team``): as
    ``threads_for``, or 0 where the build has no OpenMP or Python threads are asked for (the caller then takes a
    kernel that Python can split), or where one thread is enough."""
    if not _uses_openmp(load()):
        return 0
    t = threads_for(total, numel)
    return t if t > 1 else 0


def _python_pool(threads: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool._max_workers < threads - 1:
        _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="nnlab-ops")
    return _pool


def _ranges(f: Callable, args: tuple, total: int, threads: int, slotted: bool) -> None:
    """``f(*args, [slot,] begin, end)`` on ``threads`` disjoint ranges of [0, total): torch's OpenMP team, or the
    calling thread and Python workers (the caller takes the first range)."""
    slot = (lambda t: (t,)) if slotted else (lambda t: ())
    if threads <= 1:
        f(*args, *slot(0), 0, total)
        return
    team = _team(f)
    if team is not None:
        team(*args, total, threads)
        return
    bounds = [total * t // threads for t in range(threads + 1)]
    pool = _python_pool(threads)
    futures = [pool.submit(f, *args, *slot(t), bounds[t], bounds[t + 1]) for t in range(1, threads)]
    f(*args, *slot(0), bounds[0], bounds[1])
    for fut in futures:
        fut.result()


def parallel_slots(f: Callable, args: tuple, total: int, threads: int) -> None:
    """``f(*args, slot, begin, end)`` for ``threads`` disjoint ranges of [0, total); slot = the range's index
    (< threads)."""
    _ranges(f, args, total, threads, slotted=True)


def parallel(f: Callable, args: tuple, total: int, numel: int) -> None:
    """``f(*args, begin, end)`` over [0, total) in up to ``torch.get_num_threads()`` disjoint ranges."""
    _ranges(f, args, total, threads_for(total, numel), slotted=False)


# Chunks per thread in parallel_shared: enough that a thread that starts late leaves most of its share to the
# others, few enough that taking one (an atomic add) is never seen.
_CHUNKS_PER_THREAD = 8


def parallel_shared(f: Callable, args: tuple, total: int, threads: int, slotted: bool = False) -> None:
    """``f(*args, [slot,] counter, grain, total)`` on ``threads`` threads that take ``grain`` items of [0, total) at
    a time from one shared counter (``take_rows`` in ``_conv_kernels.c``) until none are left. On a shared machine
    a thread the OS delays then costs its last chunk instead of half the op. ``slotted``: each thread also gets
    its index (< threads), for per-thread partial sums."""
    grain = max(1, -(-total // (threads * _CHUNKS_PER_THREAD)))
    team = _team(f) if threads > 1 else None
    if team is not None:
        team(*args, grain, total, threads)
        return
    counter = ctypes.c_int64(0)  # alive until every call returned
    tail = (ctypes.addressof(counter), grain, total)
    calls = [(*args, t, *tail) if slotted else (*args, *tail) for t in range(threads)]
    if threads <= 1:
        f(*calls[0])
        return
    futures = [_python_pool(threads).submit(f, *call) for call in calls[1:]]
    f(*calls[0])
    for fut in futures:
        fut.result()
