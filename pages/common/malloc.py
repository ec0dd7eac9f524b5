"""Give freed memory back to the operating system (glibc on Linux; a no-op elsewhere).

The server's large objects — traces of several hundred MiB, their NumPy arrays mostly under glibc's
32 MiB mmap threshold — are allocated and freed by many script threads. glibc gives each thread an arena
of its own (up to 8 per core) and keeps freed pages in them, so the resident size grows with the number of
sessions that ever ran, long after the byte-bounded stores dropped what they held. Two calls fix that:

* :func:`limit_arenas` (``mallopt(M_ARENA_MAX, n)``), once at server start-up: threads share ``n`` arenas;
* :func:`trim` (``malloc_trim(0)``) after a store evicts: the free pages at the top and inside the arenas
  are returned.

Both only change how much memory the process keeps, never what it computes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from functools import lru_cache

log = logging.getLogger(__name__)

M_ARENA_MAX = -8        # glibc's mallopt parameter number (malloc.h)


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        return libc
    except (OSError, AttributeError):          # not glibc (musl, …): nothing to tune
        return None


def limit_arenas(n: int = 2) -> bool:
    """Let all threads share at most ``n`` malloc arenas; True when glibc accepted it."""
    libc = _glibc()
    ok = bool(libc is not None and libc.mallopt(M_ARENA_MAX, int(n)) == 1)
    log.info("malloc arenas limited to %d: %s", n, "yes" if ok else "not on this C library")
    return ok


def trim() -> bool:
    """Return free heap pages to the OS; True when some memory was released."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)
