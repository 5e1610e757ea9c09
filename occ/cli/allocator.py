"""The C allocator's setting for a server process: large blocks always get their own mapping.

glibc serves a block above ``M_MMAP_THRESHOLD`` (128 KiB) with its own ``mmap``, handed back to the
system when freed, but it raises that threshold to the size of every such block freed (up to 32 MiB).
After one large request every later 30 MB buffer (the body, its text, the upstream body being written
by orjson as it grows) comes from the heap instead, whose freed space stays resident and fragments:
measured with benchmarks/big_body.py, a 30 MB request peaked at 2.4x its size above idle on the first
request and the process stayed 40 MB above idle after it; with the threshold fixed, 1.9x on every
request and back to idle after each (benchmarks/RESULTS.md). Only blocks of 128 KiB and more pay a
``mmap``/``munmap`` each, and the request path makes few of those.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["MMAP_THRESHOLD_BYTES", "fix_mmap_threshold"]

MMAP_THRESHOLD_BYTES = 128 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
_ENV = "MALLOC_MMAP_THRESHOLD_"


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold for this process, and (through the environment glibc reads at start)
    for the worker processes it spawns. A threshold the user set is kept; elsewhere than glibc, nothing.

    Returns whether this process's setting was changed.
    """
    if _ENV in os.environ:
        return False
    os.environ[_ENV] = str(MMAP_THRESHOLD_BYTES)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator has no such threshold
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
