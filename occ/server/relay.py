"""The one writer to a streaming client, and the heartbeat that feeds it.

Every byte a streaming client receives goes through :meth:`Relay.run`, which takes *whole SSE
frames* from a memory channel. Pings, translated events, relayed passthrough events and the final
``error`` event are all items on that one channel, so a ping can never land inside another event
(the seed's heartbeat bytes inside partial raw events: ``JSON Parse error: Unexpected EOF``).

The relay holds the response state (the seed's racy ``wroteHeader``/``ssePayloadWritten`` flags):

* *headers sent*: the 200 and the SSE headers go out with the first frame or the first ping, never
  earlier. Until then a request whose attempts all fail still gets a real HTTP status, which is how
  Claude Code decides to retry (429/5xx/529);
* the relay runs in the request nursery, not in an attempt's scope: an attempt's deadline or stall
  cancels the attempt, never a write half-way through a frame. Only the client leaving cancels it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from occ.core.errors import OccError, error_frame, to_anthropic
from occ.core.jsonfast import dumps
from occ.core.sse import PING_FRAME

__all__ = ["PING", "Fail", "Relay", "header_list", "heartbeat", "send_json"]

Send = Callable[[dict[str, Any]], Awaitable[None]]


class _Ping:
    def __repr__(self) -> str:
        return "PING"


#: A channel item asking the relay for a heartbeat ping.
PING = _Ping()


@attrs.frozen
class Fail:
    """The last channel item of a failed stream: an HTTP error if nothing was sent, else an
    ``error`` event."""

    error: OccError


def header_list(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    payload = dumps(body)
    head = {"content-type": "application/json", "content-length": str(len(payload))}
    if headers:
        head.update(headers)
    await send({"type": "http.response.start", "status": status, "headers": header_list(head)})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def error_headers(exc: OccError, request_id: str) -> dict[str, str]:
    headers = {"request-id": request_id}
    retry_after = exc.retry_after_s
    if retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
        headers["retry-after-ms"] = str(int(retry_after * 1000))
    return headers


class Relay:
    """Owns ``send`` for one streaming response. Run :meth:`run` in the request nursery."""

    def __init__(self, send: Send, *, request_id: str) -> None:
        self._send = send
        self.request_id = request_id
        self.headers_sent = False
        self.finished = False
        #: trio time of the last frame queued or written; the heartbeat measures silence from it.
        self.created_at = trio.current_time()
        self.last_activity = self.created_at
        self.status: int | None = None
        self.bytes_sent = 0
        self.first_content_at: float | None = None

    async def run(self, frames: trio.MemoryReceiveChannel[bytes | _Ping | Fail]) -> None:
        """Write every frame until the channel closes.

        A write to a client that stays connected but stops reading cannot be cancelled from here: hypercorn
        shields its socket writes. occ bounds it below instead: its listening sockets carry
        ``TCP_USER_TIMEOUT`` = ``client_write_timeout_ms`` (:func:`occ.server.serve.hypercorn_config`), so
        the kernel aborts such a connection and this write fails."""
        await self._run(frames)

    async def _run(self, frames: trio.MemoryReceiveChannel[bytes | _Ping | Fail]) -> None:
        async with frames:
            async for item in frames:
                pending: list[bytes] = []
                while True:
                    if isinstance(item, bytes):
                        if item:
                            if self.first_content_at is None:
                                self.first_content_at = trio.current_time()
                            pending.append(item)
                    elif isinstance(item, Fail):
                        await self._flush(pending)
                        await self._fail(item.error)
                    elif item is PING:
                        pending.append(PING_FRAME)
                    try:
                        # Whatever else is already queued leaves in the same write: under load
                        # this turns many small sends into one.
                        item = frames.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._flush(pending)
        await self._end()

    async def _flush(self, pending: list[bytes]) -> None:
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            await self._write(data)

    async def _start(self) -> None:
        self.headers_sent = True
        self.status = 200
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            "request-id": self.request_id,
        }
        await self._send({"type": "http.response.start", "status": 200, "headers": header_list(headers)})

    async def _write(self, data: bytes) -> None:
        if self.finished:
            return
        if not self.headers_sent:
            await self._start()
        self.last_activity = trio.current_time()
        await self._send({"type": "http.response.body", "body": data, "more_body": True})
        self.bytes_sent += len(data)

    async def _fail(self, error: OccError) -> None:
        if self.finished:
            return
        if not self.headers_sent:
            status, body = to_anthropic(error, self.request_id)
            self.headers_sent = True
            self.status = status
            self.finished = True
            await send_json(self._send, status, body, error_headers(error, self.request_id))
            return
        await self._write(error_frame(error))

    async def _end(self) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.headers_sent:
            await self._start()
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})


async def heartbeat(relay: Relay, frames: trio.MemorySendChannel[Any], interval_s: float) -> None:
    """Ask for a ping whenever the client has heard nothing for ``interval_s``.

    Runs inside an attempt's nursery, next to the upstream read and under its stall guard: it
    lives exactly as long as an attempt whose upstream is still within its silence allowance, so
    a ping can never hide a dead upstream.
    """
    while True:
        await trio.sleep_until(relay.last_activity + interval_s)
        if trio.current_time() >= relay.last_activity + interval_s:
            relay.last_activity = trio.current_time()
            await frames.send(PING)
