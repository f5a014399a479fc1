"""The C allocator's settings that make RSS follow MAX_BYTES, so a container can be sized.

glibc's malloc keeps memory a request freed instead of giving it back, and a server that
parses 5 MiB bodies on four threads ends up holding several times what its items take
(measured: 100 KiB values written by `/batch` into a 16 MiB cap grew RSS by 71-76 MiB).
Three of its defaults cause it, each a `mallopt` setting (the same as the environment's
MALLOC_*_ variables, which `waitress-serve` and granian start too early for memflask to set):

- the mmap threshold rises after each large free (up to 32 MiB), so a body's buffers
  move from their own mappings, returned on free, into the heap, where they stay:
  a fixed threshold keeps every block of 64 KiB and more in its own mapping;
- the top of the heap is trimmed only past 128 KiB of free space by default, but the
  dynamic threshold raises that too: fixed here at 128 KiB;
- each thread may get its own arena (8 per core), each holding its own freed memory:
  two arenas serve memflask's threads, which mostly wait for the GIL anyway.

With all three: growth 17-31 MiB for the 16 MiB cap above (see README, "Memory").
"""

from __future__ import annotations

import ctypes
import logging

# <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 64 * 1024
TRIM_THRESHOLD_BYTES = 128 * 1024
ARENAS = 2

log = logging.getLogger(__name__)


def return_freed_memory() -> bool:
    """Set glibc's allocator to give freed memory back; False where there is no glibc malloc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (M_ARENA_MAX, ARENAS),
    )
    # mallopt answers 1 on success, 0 when the allocator refuses the value.
    return all(mallopt(option, value) == 1 for option, value in settings)
