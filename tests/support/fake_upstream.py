"""A scriptable fake upstream on 127.0.0.1: real sockets, real HTTP, real SSE.

Each request to the fake takes the next :class:`Reply` queued for its path (or the path's default).
A reply can answer JSON with any status, stream SSE chunks with pauses between them, wait before
its headers, stall mid-body, drop the connection mid-event, and it records when the client (occ)
went away, so tests can prove that a cancelled request closed its upstream connection.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve


@attrs.define
class Reply:
    status: int = 200
    headers: dict[str, str] = attrs.field(factory=dict)
    #: a whole body (JSON value or bytes); ignored when ``chunks`` is set
    body: Any = None
    #: streamed body: bytes are written as they are, numbers are pauses in seconds
    chunks: list[bytes | float] | None = None
    #: pause before the response headers
    delay_s: float = 0.0
    #: after the chunks: stay silent this long (headers sent, body open)
    stall_s: float | None = None
    #: after the chunks: break the connection instead of ending the body cleanly
    drop: bool = False


@attrs.define
class Seen:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    started: float
    disconnected_at: float | None = None
    finished: bool = False

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def sse(*payloads: Any, done: bool = True, event_names: bool = False) -> list[bytes]:
    """Chat-completions style SSE chunks (``data: <json>``), ending with ``[DONE]``."""
    out = []
    for payload in payloads:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        if event_names and isinstance(payload, dict) and "type" in payload:
            out.append(f"event: {payload['type']}\ndata: {data}\n\n".encode())
        else:
            out.append(f"data: {data}\n\n".encode())
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


class FakeUpstream:
    def __init__(self) -> None:
        self.queues: dict[str, deque[Any]] = defaultdict(deque)
        self.defaults: dict[str, Any] = {}
        self.seen: list[Seen] = []
        self.url = ""

    def queue(self, path: str, *replies: Reply | Callable[[Seen], Reply]) -> None:
        self.queues[path].extend(replies)

    def default(self, path: str, reply: Reply | Callable[[Seen], Reply]) -> None:
        self.defaults[path] = reply

    def requests(self, path: str | None = None) -> list[Seen]:
        return [s for s in self.seen if path is None or s.path == path]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen = Seen(scope["path"], scope.get("query_string", b"").decode(),
                    {k.decode().lower(): v.decode() for k, v in scope["headers"]}, body, trio.current_time())
        self.seen.append(seen)
        queue = self.queues.get(scope["path"])
        reply = queue.popleft() if queue else self.defaults.get(scope["path"])
        if callable(reply) and not isinstance(reply, Reply):
            reply = reply(seen)
        if reply is None:
            reply = Reply(status=404, body={"error": {"message": f"no reply scripted for {scope['path']}"}})
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        if not seen.finished:
                            seen.disconnected_at = trio.current_time()
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(watch)
            await self._answer(reply, send)
            seen.finished = True
            nursery.cancel_scope.cancel()

    async def _answer(self, reply: Reply, send: Any) -> None:
        if reply.delay_s:
            await trio.sleep(reply.delay_s)
        if reply.chunks is None:
            body = reply.body
            data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
            headers = {"content-type": "application/json", **reply.headers}
            await send({"type": "http.response.start", "status": reply.status,
                        "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})
            await send({"type": "http.response.body", "body": data})
            return
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache", **reply.headers}
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})
        for chunk in reply.chunks:
            if isinstance(chunk, (int, float)):
                await trio.sleep(chunk)
            else:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if reply.stall_s is not None:
            await trio.sleep(reply.stall_s)
        if reply.drop:
            raise _Drop("fake upstream dropped the connection")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Drop(Exception):
    pass


async def start_fake(nursery: trio.Nursery) -> FakeUpstream:
    fake = FakeUpstream()
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.1
    binds = await nursery.start(lambda task_status: serve(fake, config, task_status=task_status))
    fake.url = binds[0]
    return fake
