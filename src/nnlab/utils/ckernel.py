"""Build, cache and load the small C kernels of nnlab (the ops' loops, the fused t-SNE gradient, fastText's SGD).

Plain C compiled on first use with the system compiler (the same requirement ``torch.compile`` has on CPU),
cached under ``$NNLAB_CACHE_DIR`` (default ``~/.cache/nnlab``) by a hash of the source (with the headers beside
it that it includes), the flags and the CPU,
and called through ctypes (which releases the GIL). Without a compiler, or when the kernel's environment switch
says ``torch``, :func:`load` returns ``None`` and the caller uses its torch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

# -ffast-math is avoided on purpose: linking a shared library with it can switch the whole process to
# flush-denormals-to-zero. These flags are the subset needed for the reductions to vectorise (and -pthread for
# the kernels that start threads, which older glibc keeps in a separate libpthread).
FLAGS = [
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fno-trapping-math",
    "-freciprocal-math",
    "-fopenmp-simd",
    "-pthread",
    "-shared",
    "-fPIC",
]
_lock = threading.Lock()
_loaded: dict[Path, ctypes.CDLL | None] = {}


def paths() -> dict[str, str]:
    """Which path each kernel asked for in this process runs: ``native`` (compiled C) or ``torch`` (the same
    computation in torch: no compiler, the kernel's switch set to ``torch``, or a failed build). Runs record it
    in metrics.json (``kernels``), so two runs that differ in speed say why."""
    with _lock:
        return {src.stem: ("native" if lib is not None else "torch") for src, lib in sorted(_loaded.items())}


def _cpu_signature() -> str:
    # -march=native binaries must not be shared between different CPUs through a shared cache directory.
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def _compile(cc: str, flags: list[str], source: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        subprocess.run([cc, *flags, str(source), "-o", tmp, "-lm"], check=True, capture_output=True, timeout=120)
        os.replace(tmp, out)  # atomic: concurrent processes never load a half-written library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _source_bytes(source: Path) -> bytes:
    """The source and the headers beside it that it includes ("name.h"): the cache key must change with either."""
    text = source.read_bytes()
    headers = sorted(set(re.findall(rb'#include "([\w.]+)"', text)))
    return text + b"".join(source.with_name(h.decode()).read_bytes() for h in headers)


def load(
    source: Path, switch: str, signatures: dict[str, list | tuple[list, type]], openmp: bool = False
) -> ctypes.CDLL | None:
    """The compiled ``source`` with ``signatures`` (function name -> ctypes argtypes, restype None, or
    ``(argtypes, restype)``) set, or
    ``None`` when ``$switch`` is ``torch``, there is no C compiler, or the build fails (with a warning).
    ``openmp``: build with ``-fopenmp`` (libgomp.so.1 then resolves to the copy torch loaded: one thread pool),
    and without it where the compiler has no OpenMP (the source must then work without, see ops/_parallel.h)."""
    with _lock:
        if source in _loaded:
            return _loaded[source]
        _loaded[source] = None
        if os.environ.get(switch, "auto") == "torch" or sys.platform == "win32":
            return None
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            return None
        cache = Path(os.environ.get("NNLAB_CACHE_DIR", Path.home() / ".cache" / "nnlab"))
        error: Exception | None = None
        for flags in [[*FLAGS, "-fopenmp"], FLAGS] if openmp else [FLAGS]:
            key = hashlib.sha256(_source_bytes(source) + " ".join([cc, *flags, _cpu_signature()]).encode())
            path = cache / f"{source.stem}_{key.hexdigest()[:16]}.so"
            try:
                if not path.exists():
                    _compile(cc, flags, source, path)
                lib = ctypes.CDLL(str(path))
                break
            except (OSError, subprocess.SubprocessError) as err:
                error = err
        else:
            warnings.warn(f"nnlab: C kernel {source.name} unavailable ({error}); using the torch path", stacklevel=3)
            return None
        for name, sig in signatures.items():
            argtypes, restype = sig if isinstance(sig, tuple) else (sig, None)
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _loaded[source] = lib
        return lib
