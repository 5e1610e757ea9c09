"""The one writer to a streaming client, and the heartbeat that uses it.

Every byte a streaming client receives goes through :class:`Relay`: the fallback loop's pump writes each
upstream chunk's translated frames with :meth:`Relay.write` the moment they are ready, in the pump's own
task and in one ASGI ``send`` (one socket write); the heartbeat writes its pings with :meth:`Relay.ping`.
Each call writes *whole SSE frames*, one writer at a time, so a ping can never land inside another event
(the seed's heartbeat bytes inside partial raw events: ``JSON Parse error: Unexpected EOF``).

The relay holds the response state (the seed's racy ``wroteHeader``/``ssePayloadWritten`` flags):

* *headers sent*: the 200 and the SSE headers go out with the first frame or the first ping, never
  earlier. Until then a request whose attempts all fail still gets a real HTTP status, which is how
  Claude Code decides to retry (429/5xx/529);
* every write is shielded from the attempt's deadlines (an attempt deadline or stall cannot cut a
  frame in half, nor drop frames the builder has already emitted) under its own HAND-OFF DEADLINE,
  ``client_write_timeout_ms``: a client that stays connected but reads nothing for that long is given
  up (``on_stuck``: the request nursery is cancelled, the upstream connection closed with it).
  Only the client leaving, or that deadline, ends a write early.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from occ.core.errors import OccError, error_frame, to_anthropic
from occ.core.jsonfast import dumps
from occ.core.sse import PING_FRAME
from occ.server.hypercorn_worker import BODY_FOLLOWS

__all__ = ["Relay", "error_headers", "header_list", "heartbeat", "send_json"]

Send = Callable[[dict[str, Any]], Awaitable[None]]


def header_list(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    payload = dumps(body)
    head = {"content-type": "application/json", "content-length": str(len(payload))}
    if headers:
        head.update(headers)
    await send({"type": "http.response.start", "status": status, "headers": header_list(head), BODY_FOLLOWS: True})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def error_headers(exc: OccError, request_id: str) -> dict[str, str]:
    headers = {"request-id": request_id}
    retry_after = exc.retry_after_s
    if retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
        headers["retry-after-ms"] = str(int(retry_after * 1000))
    return headers


class Relay:
    """Owns ``send`` for one streaming response; called by the pump and the heartbeat, in their tasks.

    Args:
        send: the ASGI send of the response.
        request_id: for the headers and error bodies.
        write_timeout_s: the HAND-OFF DEADLINE of each write (``client_write_timeout_ms``).
        on_stuck: called with the reason when a write's deadline expired (the client read nothing for that
            long); it cancels the request.
    """

    def __init__(self, send: Send, *, request_id: str, write_timeout_s: float = math.inf,
                 on_stuck: Callable[[str], None] | None = None, whole_writes: bool = False) -> None:
        self._send = send
        #: the server writes each send whole or not at all, shielded itself (occ's own HTTP/1.1 connection:
        #: :func:`occ.server.hypercorn_worker.writes_whole`), so a write needs no shielded scope here
        self._whole_writes = whole_writes
        self.request_id = request_id
        self.headers_sent = False
        self.finished = False
        #: trio time of the last write; the heartbeat measures silence from it.
        self.created_at = trio.current_time()
        self.last_activity = self.created_at
        self.status: int | None = None
        self.bytes_sent = 0
        self.first_content_at: float | None = None
        self._write_timeout_s = write_timeout_s
        self._on_stuck = on_stuck
        #: a write's hand-off deadline expired: the request is being given up
        self.abandoned = False
        #: one writer at a time (pump or heartbeat); taken without a checkpoint when free, the usual case
        self._lock = trio.Lock()

    async def write(self, data: bytes) -> None:
        """Write whole frames (translated events): one ``send``, headers first if they are still held."""
        if not data or self.finished:
            return
        if self.first_content_at is None:
            self.first_content_at = trio.current_time()
        await self._guarded(data)

    async def ping(self) -> None:
        """A heartbeat ``ping`` event, unless another write is under way (then the client is not silent)."""
        if self._lock.locked() or self.finished:
            return
        await self._guarded(PING_FRAME)

    async def fail(self, error: OccError) -> None:
        """End a failed stream: an HTTP error if nothing was sent yet, else an ``error`` event (the stream
        then ends with :meth:`end`)."""
        if self.finished:
            return
        if not self.headers_sent:
            status, body = to_anthropic(error, self.request_id)
            self.headers_sent = True
            self.status = status
            self.finished = True
            with trio.CancelScope(shield=True, deadline=trio.current_time() + self._write_timeout_s) as handoff:
                await send_json(self._send, status, body, error_headers(error, self.request_id))
            self._check(handoff)
            return
        await self._guarded(error_frame(error))

    async def end(self) -> None:
        """The end of the body (headers first if nothing was ever written)."""
        if self.finished:
            return
        self.finished = True
        with trio.CancelScope(shield=True, deadline=trio.current_time() + self._write_timeout_s) as handoff:
            if not self.headers_sent:
                await self._start()
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        self._check(handoff)

    async def _guarded(self, data: bytes) -> None:
        """One write under the HAND-OFF DEADLINE, shielded from every other scope: emitted frames reach the
        client whole or the request ends. hypercorn shields its socket write itself, and the kernel ends a
        write to a client that stopped reading after ``TCP_USER_TIMEOUT`` (the same
        ``client_write_timeout_ms``, :func:`occ.server.serve.hypercorn_config`): either ends this wait.

        On a server that writes whole (``whole_writes``) the send cannot be cut, and nothing of it can be
        cancelled but the kernel's deadline: the scope would only repeat the server's shield at ~5 us a
        delta, so the write is made without it and a write that took the whole deadline is the client's
        (the same ``on_stuck``) afterwards. A write that would wait for the lock takes the scoped path.
        """
        lock = self._lock
        if self._whole_writes and self.headers_sent and not lock.locked():
            lock.acquire_nowait()
            try:
                started = self.last_activity = trio.current_time()
                await self._send({"type": "http.response.body", "body": data, "more_body": True})
                self.bytes_sent += len(data)
            finally:
                lock.release()
            if trio.current_time() - started >= self._write_timeout_s:
                self._stuck()
            return
        with trio.CancelScope(shield=True, deadline=trio.current_time() + self._write_timeout_s) as handoff:
            lock = self._lock
            try:
                lock.acquire_nowait()
            except trio.WouldBlock:
                await lock.acquire()
            try:
                if not self.headers_sent:
                    await self._start()
                self.last_activity = trio.current_time()
                await self._send({"type": "http.response.body", "body": data, "more_body": True})
                self.bytes_sent += len(data)
            finally:
                lock.release()
        self._check(handoff)

    def _check(self, handoff: trio.CancelScope) -> None:
        if handoff.cancel_called:
            self._stuck()

    def _stuck(self) -> None:
        if not self.abandoned:
            self.abandoned = True
            if self._on_stuck is not None:
                self._on_stuck(f"the client read nothing for {self._write_timeout_s:g}s (client_write_timeout_ms)")

    async def _start(self) -> None:
        self.headers_sent = True
        self.status = 200
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            "request-id": self.request_id,
        }
        # every caller sends the first body part right after, with no wait between (BODY_FOLLOWS)
        await self._send({"type": "http.response.start", "status": 200, "headers": header_list(headers),
                          BODY_FOLLOWS: True})


async def heartbeat(relay: Relay, interval_s: float) -> None:
    """Write a ping whenever the client has heard nothing for ``interval_s``.

    Runs inside an attempt's nursery, next to the upstream read and under its stall guard: it
    lives exactly as long as an attempt whose upstream is still within its silence allowance, so
    a ping can never hide a dead upstream.
    """
    while True:
        await trio.sleep_until(relay.last_activity + interval_s)
        if trio.current_time() >= relay.last_activity + interval_s:
            relay.last_activity = trio.current_time()
            await relay.ping()
