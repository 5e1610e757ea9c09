"""One connection to the shared-state server (Redis or Valkey) on trio streams.

The bytes go through :mod:`occ.core.resp` (commands encoded there, replies parsed by ``hiredis``'s C
reader); this module only connects (TCP, TLS for ``rediss://``, AUTH, SELECT) and moves bytes. It has no
deadlines of its own: every caller wraps each exchange in its own cancel scope, and a connection whose
exchange was cut is closed and never reused (its replies would arrive out of step).

Why not redis-py: it has no trio support, so it would run in a worker thread, where a deadline cannot
cancel a blocked call (``abandon_on_cancel`` leaves the thread and its socket behind); and it costs more
per exchange (benchmarks/RESULTS.md has the measurement).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import trio

from occ.config.model import SharedStateConfig
from occ.core.resp import NEED_MORE, Arg, ReplyError, RespParser, encode_many

__all__ = ["LinkError", "RedisLink"]


class LinkError(Exception):
    """The server closed the connection, or refused the handshake. Messages never carry the password."""


class RedisLink:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._parser = RespParser()

    @classmethod
    async def connect(cls, config: SharedStateConfig, *, name: str = "occ") -> RedisLink:
        """Connected, authenticated and on the configured database."""
        stream: trio.abc.Stream = await trio.open_tcp_stream(config.host, config.port)
        try:
            if config.tls:
                tls = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=config.host)
                await tls.do_handshake()
                stream = tls
            link = cls(stream)
            hello: list[list[Arg]] = []
            if config.password is not None:
                hello.append(["AUTH", config.username, config.password] if config.username
                             else ["AUTH", config.password])
            hello += [["SELECT", config.db], ["CLIENT", "SETNAME", name]]
            for command, reply in zip(hello, await link.pipeline(hello), strict=True):
                if isinstance(reply, ReplyError):
                    raise LinkError(f"{command[0]} refused: {reply}")
        except BaseException:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise
        return link

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[object]:
        """Send every command in one write; their replies, in order (error replies as ReplyError values)."""
        await self._stream.send_all(encode_many(commands))
        replies: list[object] = []
        while len(replies) < len(commands):
            reply = self._parser.next()
            if reply is NEED_MORE:
                data = await self._stream.receive_some(65536)
                if not data:
                    raise LinkError("the server closed the connection")
                self._parser.feed(data)
                continue
            replies.append(reply)
        return replies

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._stream.aclose()
