"""Keep freed tensor memory in the training process for the next step.

glibc serves every allocation over 32 MiB with a fresh ``mmap`` and unmaps it on ``free``. At
real-set shapes the largest gradients are just over that (a 2133x4096 critic weight is 35 MiB),
so every step page-faults them in anew: about 11 ms per 35 MiB here, a third of an AWA2
generator step (`bench/genstep.py`). With ``mmap`` off and the trim threshold at its maximum,
freed chunks are reused instead. Only where memory comes from: same math, same numbers; the
process keeps its peak heap, which the next step needs again anyway (at AWA2 shapes 11% more
resident memory than glibc's default, flat after the first few steps).
"""

from __future__ import annotations

import ctypes
import sys

# <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1  # mallopt takes an int


def reuse_freed_memory() -> bool:
    """Make this process's glibc malloc reuse freed large chunks instead of unmapping them.

    Process-wide and for the process's lifetime: call it where a training or extraction
    process starts (a trial worker, ``zsl-search train``, a finalize run, an extract actor).
    Returns True where it applied; False (changing nothing) off Linux or without glibc, e.g.
    macOS or musl.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _INT_MAX) == 1
