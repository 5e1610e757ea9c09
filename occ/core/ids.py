"""Identifiers occ mints (request, message and tool-use ids): unique, not secret.

Nothing is authorised by these ids; they must only not collide and look like Anthropic's. So they come
from a generator seeded once per process from the OS's random source (and reseeded in a forked
child, so workers never share a sequence), not from ``secrets``, which makes a system call per id on
the path of every request. Sans-IO.
"""

from __future__ import annotations

import os
import random

__all__ = ["random_hex"]

_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def random_hex(nbytes: int = 12) -> str:
    """``2 * nbytes`` random lowercase hex digits."""
    return f"{_random.getrandbits(nbytes * 8):0{nbytes * 2}x}"
