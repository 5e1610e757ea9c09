"""The CLI's boundary: everything a command prints leaves through the scrubber.

Wrapping ``sys.stdout``/``sys.stderr`` for the length of a command (rather than scrubbing print by
print) means a command added later, or an error line nobody thought of, is covered too: ``occ
validate`` never repeats a key pasted into the wrong field, ``occ status`` never shows one an upstream
echoed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from occ.core.scrub import scrub
from occ.observe.logs import install_scrubbing_hooks, print_traceback

__all__ = ["install_scrubbing_hooks", "print_traceback", "scrubbed_output"]


class _ScrubbingStream:
    """A text stream whose every ``write`` is scrubbed first; everything else is the wrapped stream's."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(scrub(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextmanager
def scrubbed_output() -> Iterator[None]:
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _ScrubbingStream(out), _ScrubbingStream(err)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
