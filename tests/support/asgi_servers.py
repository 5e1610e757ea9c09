"""Small ASGI apps served for real on 127.0.0.1: by occ's worker (hypercorn with occ's connection) or by
stock ``hypercorn.trio.serve``, so a test can compare the bytes the two put on the wire."""

from __future__ import annotations

from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.utils import wrap_app

from occ.server.hypercorn_worker import worker_serve

LIMIT = 10


def hypercorn_config(**settings: object) -> HypercornConfig:
    """A hypercorn config for the tests' servers: 127.0.0.1 on a free port, no access log, and ``settings``."""
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    for name, value in settings.items():
        setattr(config, name, value)
    return config


async def serve_on_occ(nursery: trio.Nursery, app: object, config: HypercornConfig | None = None,
                       **worker: object) -> int:
    """``app`` served by occ's worker (real hypercorn) in ``nursery``; its port."""
    config = config if config is not None else hypercorn_config()
    sockets = config.create_sockets()
    for sock in sockets.insecure_sockets:
        sock.listen(8)
    binds = await nursery.start(partial(worker_serve, wrap_app(app, config.wsgi_max_body_size, None),  # type: ignore[arg-type]
                                        config, sockets=sockets, **worker))
    return int(binds[0].rsplit(":", 1)[1])


async def lifespan(receive: object, send: object) -> None:
    """The ASGI lifespan of the tests' small apps: every event completed, until shutdown."""
    while True:
        message = await receive()  # type: ignore[operator]
        await send({"type": message["type"] + ".complete"})  # type: ignore[operator]
        if message["type"] == "lifespan.shutdown":
            return


async def raw_response(app: object, request: bytes, server: str, **settings: object) -> bytes:
    """``app`` served by occ's worker (``server`` "occ") or by stock hypercorn; ``request`` sent on a real
    socket, everything read to the close. No Date header unless ``settings`` ask, so two servers' answers
    compare exactly."""
    config = hypercorn_config(**{"errorlog": None, "include_date_header": False, **settings})
    data = b""
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            if server == "occ":
                port = await serve_on_occ(nursery, app, config)
            else:
                port = int((await nursery.start(partial(hypercorn_serve, app, config)))[0].rsplit(":", 1)[1])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(request)
            while part := await stream.receive_some(1 << 16):
                data += part
            await stream.aclose()
            nursery.cancel_scope.cancel()
    return data
