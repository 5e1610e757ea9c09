"""RESP, the Redis protocol, for occ's shared state: commands out, replies in. Sans-IO.

Commands are encoded here (RESP2 arrays of bulk strings); replies are parsed by ``hiredis.Reader``,
the C parser redis-py itself uses, fed whatever bytes the socket gave. The I/O half
(``occ.server.redis_link``) only moves bytes, the way occ's HTTP client is built on ``upstream.http1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import hiredis

__all__ = ["NEED_MORE", "Arg", "ReplyError", "RespParser", "encode", "encode_many"]

Arg = str | bytes | int | float


class ReplyError(Exception):
    """The server answered a command with an error (``-ERR ...``)."""


def _bulk(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        data = arg
    elif isinstance(arg, str):
        data = arg.encode()
    elif isinstance(arg, bool):  # bool before int: True is not a count
        raise TypeError("RESP has no booleans; send 0 or 1")
    elif isinstance(arg, int):
        data = str(arg).encode()
    else:
        data = repr(float(arg)).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def encode(*args: Arg) -> bytes:
    """One command: ``encode("SET", "k", "v")``."""
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)


def encode_many(commands: Iterable[Sequence[Arg]]) -> bytes:
    """A pipeline: every command in one write, replies read back in order."""
    return b"".join(encode(*c) for c in commands)


class _NeedMore:
    def __repr__(self) -> str:
        return "NEED_MORE"


#: what :meth:`RespParser.next` returns until a whole reply is buffered (a nil reply is ``None``)
NEED_MORE = _NeedMore()


class RespParser:
    """Replies out of a byte stream. ``feed`` what arrived; ``next`` gives a reply or :data:`NEED_MORE`.

    Error replies come back as :class:`ReplyError` *values*, not raised, so one failed command in a
    pipeline does not hide the replies after it.
    """

    def __init__(self) -> None:
        self._reader = hiredis.Reader(replyError=ReplyError, notEnoughData=NEED_MORE)

    def feed(self, data: bytes) -> None:
        self._reader.feed(data)

    def next(self) -> object:
        return self._reader.gets()
