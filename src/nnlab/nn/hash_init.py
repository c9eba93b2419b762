"""A uniform init of large tables that runs on several threads and gives the same bits on any count.

fastText's input matrix has 2M hashed rows; torch's ``uniform_`` draws them from one Mersenne Twister in one
thread, which on SST-2 took a third of our whole fit. ``hash_uniform_`` draws value i from
``splitmix64(seed + i)`` (``_uniform.c``, compiled on first use by ``nnlab.utils.ckernel``), so it splits
across threads as the C++ fastText's init does, and its torch fallback computes the same numbers.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from nnlab.utils import ckernel

_SOURCE = Path(__file__).resolve().parent / "_uniform.c"
_ARGS = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_uint64, ctypes.c_int64]
_GOLDEN, _MUL1, _MUL2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _kernel() -> ctypes.CDLL | None:
    return ckernel.load(_SOURCE, "NNLAB_INIT_KERNEL", {"hash_uniform_f32": _ARGS})


def _signed(v: int) -> int:
    """The int64 with the bits of the uint64 ``v`` (torch has no uint64 arithmetic)."""
    v %= 1 << 64
    return v - (1 << 64) if v >> 63 else v


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


@torch.no_grad()
def hash_uniform_(weight: torch.Tensor, bound: float, threads: int | None = None) -> torch.Tensor:
    """Fill ``weight`` with U(-bound, bound) values, from a seed drawn from torch's generator (so
    ``torch.manual_seed`` fixes it); ``threads`` (default ``torch.get_num_threads()``) never changes them."""
    seed = int(torch.randint(0, 1 << 62, ()))
    scale = float(torch.tensor(bound, dtype=torch.float32)) / (1 << 24)  # exact: a power-of-two scaling
    lib = _kernel()
    if lib is not None and weight.device.type == "cpu" and weight.dtype == torch.float32 and weight.is_contiguous():
        threads = torch.get_num_threads() if threads is None else threads
        lib.hash_uniform_f32(weight.data_ptr(), weight.numel(), float(bound), seed, max(1, threads))
        return weight
    z = torch.arange(weight.numel(), dtype=torch.int64, device=weight.device) + _signed(seed + _GOLDEN)
    z = (z ^ _shr(z, 30)) * _signed(_MUL1)
    z = (z ^ _shr(z, 27)) * _signed(_MUL2)
    z = z ^ _shr(z, 31)
    v = _shr(z, 40) * 2 - (1 << 24)  # 24 random bits, centred: exact in float32
    weight.copy_((v.to(torch.float32) * scale).view_as(weight))
    return weight
