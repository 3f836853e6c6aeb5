"""glibc's memory allocator, set for tensor work on the CPU.

PyTorch's CPU tensors come from malloc. By default glibc hands out every block above 32 MB with a fresh mmap
and gives it back on free, so a network whose activations are that large (EfficientNet-Lite0 at 128 px in
batches of 256: 400 MB) faults every page of them in again on every batch: the kernel zeroes the memory and
the process spends more system time than user time. Measured on 2 CPU cores (the frozen backbone's feature pass,
1,000 images): 44.7 images/s with the defaults at batch 256, 156-160 images/s with these settings at batch 64.

No library here sets this (PyTorch leaves the CPU allocator to the C library; jemalloc or tcmalloc would need
preloading), so cvdemo's command line and app call `tune_cpu_allocator()` once at start-up. It imports nothing
heavy, and changes nothing where the C library is not glibc or the user set their own MALLOC_* variables.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["tune_cpu_allocator"]

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30   # blocks up to 1 GiB come from the heap and are reused, not mapped afresh
TRIM_THRESHOLD = 512 << 20  # freed memory at the heap's top is kept up to 512 MiB, for the next batch


def tune_cpu_allocator() -> bool:
    """Keep large blocks in malloc's heap for reuse; True when the settings took. Off with CVDEMO_TUNE_MALLOC=0."""
    if sys.platform != "linux" or os.environ.get("CVDEMO_TUNE_MALLOC") == "0":
        return False
    if any(key.startswith("MALLOC_") for key in os.environ) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False  # the user's own settings win
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
