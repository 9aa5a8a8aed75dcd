"""Handing freed memory back to the system (glibc's allocator), for long-lived serving processes.

Why this exists: a serving worker replaces large structures while it runs (a generation's caches
and catalog at every commit, the suggester every few minutes, built beside the old ones, which
answer meanwhile). CPython frees them, but glibc keeps freed pages that lie between live blocks in
its heaps ("arenas", one per thread that allocated under contention, up to eight per core): after
the 10-minute soak on the full corpus the workers held 1,163 and 1,270 MB and were still rising;
one ``malloc_trim`` at 300 s took a worker from 1,127 to 670 MB (docs/benchmarks.md, "Memory of a
serving worker"). It is not reachable from Python's standard library, hence ``ctypes``; on another
C library ``release_free_memory`` is a no-op that says so. ``limit_arenas`` caps the number of
heaps (``searchsvc serve`` sets it for its processes: ``SEARCHSVC_MALLOC_ARENAS``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any

M_ARENA_MAX = -8  # glibc's malloc.h


@cache
def _glibc() -> Any | None:
    """The process's C library if it is glibc (it has ``malloc_trim`` and ``mallopt``), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return libc


def release_free_memory() -> bool:
    """Return the free pages of every heap to the system (``malloc_trim(0)``): True if some were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def limit_arenas(count: int) -> bool:
    """Allow at most ``count`` heaps from now on (``mallopt(M_ARENA_MAX)``; the environment
    variable ``MALLOC_ARENA_MAX`` does the same from a process's start). True if applied."""
    libc = _glibc()
    return bool(libc.mallopt(M_ARENA_MAX, count)) if libc is not None and count > 0 else False
