"""The cyclic garbage collector paused around the synchronous work on one large request.

Parsing, counting and translating a 30 MB Claude Code history allocates millions of dicts, lists and
strings, and every few thousand allocations CPython's collector walks the live objects, all of them once
the oldest generation is due: with a history of 110,000 messages the passes cost as much as the work
(``benchmarks/components.py`` prices both). None of that work makes cycles (JSON values are trees), so
the collector has nothing to find there. Around such a block, with no ``await`` inside it (nothing else
runs meanwhile), the collector is disabled, and enabled again when the block ends, whatever happens.
Small requests are left alone: their objects are too few for the passes to matter. Sans-IO.
"""

from __future__ import annotations

import gc
from types import TracebackType

__all__ = ["LARGE_REQUEST_BYTES", "collector_paused"]

#: from this size on a request's synchronous handling runs with the collector paused
LARGE_REQUEST_BYTES = 1 << 20


class collector_paused:  # lower case: used as a context manager, like contextlib's
    """``with collector_paused(size):`` pauses the cyclic collector if ``size`` is large; cheap otherwise."""

    __slots__ = ("_paused",)

    def __init__(self, size: int) -> None:
        self._paused = size >= LARGE_REQUEST_BYTES and gc.isenabled()

    def __enter__(self) -> None:
        if self._paused:
            gc.disable()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._paused:
            gc.enable()
