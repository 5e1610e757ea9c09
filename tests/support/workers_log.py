"""A child process's log (its stderr), read as it comes, and what ``occ serve --workers N`` says in it about
its workers: the parent logs ``all N workers serving (pids ...)`` each time every worker serves (at start,
and after each replacement: occ/server/workers.py). Tests wait on that line instead of watching /proc."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")

SERVING = re.compile(rb"all (\d+) workers serving \(pids ([\d, ]+)\)")


class ChildLog:
    """``read`` (in a nursery) collects the stream to its end; ``wait_for`` and ``serving`` wake on each
    read, never on a timer. The caller bounds every wait (``trio.fail_after``)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.text = b""
        self._stream = stream
        self._grew = trio.Event()
        self._ended = False

    async def read(self) -> None:
        try:
            while data := await self._stream.receive_some():
                self.text += data
                self._grew.set()
                self._grew = trio.Event()
        finally:
            self._ended = True
            self._grew.set()

    async def wait_for(self, found: Callable[[bytes], T | None]) -> T:
        """The first ``found(text)`` that is not ``None``; AssertionError if the log ends first."""
        while (result := found(self.text)) is None:
            if self._ended:
                raise AssertionError("the log ended first:\n" + self.text.decode(errors="replace"))
            await self._grew.wait()
        return result

    async def serving(self, nth: int = 1) -> list[int]:
        """The workers' pids (in worker order) on the ``nth`` "all N workers serving" line, once it is there."""

        def nth_line(text: bytes) -> list[int] | None:
            lines = SERVING.findall(text)
            if len(lines) < nth:
                return None
            count, pids = lines[nth - 1]
            found = [int(pid) for pid in pids.split(b", ")]
            assert len(found) == int(count), lines[nth - 1]
            return found

        return await self.wait_for(nth_line)
