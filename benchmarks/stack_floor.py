"""The stack floor: what hypercorn + trio cost with no proxy logic at all.

A raw ASGI app on hypercorn (trio worker) that relays each ``POST`` to the fake upstream's Anthropic
endpoint and copies the response bytes back as they arrive, framed by :mod:`occ.upstream.http1` on kept-alive
connections: no validation, routing, translation, cancel scopes, relay task or logging. ``run.py
--stack`` measures it beside occ, so occ's cost can be read as "stack floor + occ's own work".

usage: python benchmarks/stack_floor.py PORT UPSTREAM_PORT
"""

from __future__ import annotations

import sys
from typing import Any

import hypercorn.config
import hypercorn.trio
import trio

from occ.upstream.http1 import ResponseParser, request_head

_idle: list[trio.SocketStream] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body = b"".join(parts)
    stream = _idle.pop() if _idle else await trio.open_tcp_stream("127.0.0.1", UPSTREAM_PORT)
    head = request_head("POST", "/v1/messages", "127.0.0.1", {"content-type": "application/json"}, len(body))
    await stream.send_all(head + body)
    parser = ResponseParser()
    started = False
    while not parser.complete:
        data = await stream.receive_some(65536)
        if not data:
            parser.feed_eof()
            break
        out = parser.feed(data)
        if parser.head_done and not started:
            started = True
            kind = parser.headers.get("content-type", "application/json").encode()
            await send({"type": "http.response.start", "status": parser.status, "headers": [(b"content-type", kind)]})
        if out:
            await send({"type": "http.response.body", "body": out, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    if parser.reusable:
        _idle.append(stream)


async def main(port: int) -> None:
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    await hypercorn.trio.serve(app, config)  # type: ignore[arg-type]


if __name__ == "__main__":
    UPSTREAM_PORT = int(sys.argv[2])
    trio.run(main, int(sys.argv[1]))
