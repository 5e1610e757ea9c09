"""occ's own request path, without the server: the ASGI app called in process.

Starts the Node fake upstream, builds occ's app for it (as ``run.py`` configures occ), runs its
lifespan, then calls ``app(scope, receive, send)`` directly from concurrent trio tasks: no hypercorn, no
client sockets, so the CPU per request is occ's work plus its upstream I/O, with far less noise than the
whole stack gives. ``--floor`` calls ``stack_floor.py``'s app the same way (a relay with no logic), for
comparison. Prints, per round, requests/s, CPU per request, trio task steps per request (each resumption of a task:
a hop between tasks or a checkpoint; a count, so it does not move with the machine's load) and (streaming)
time to first content.

``--shared-state URL`` gives occ ``shared_state`` on that Redis: its sync task runs in this process, so
its cost is in the CPU per request.

``--serve`` puts hypercorn back: occ is served by ``occ.server.serve`` on 127.0.0.1 in this process and
each task is an HTTP/1.1 client on its own kept-alive connection (a few lines over a raw socket), so the
figures include the server's per-request and per-send work, still without the load client's process.

usage: python benchmarks/app_path.py [--floor] [--stream] [--serve] [--requests N] [--concurrency C] [--rounds R]
                                     [--shared-state redis://127.0.0.1:PORT/0] [--usage on|off]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from typing import Any

import trio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import occ_config  # noqa: E402


def load_app(floor: bool, fake_port: int, config_path: str) -> Any:
    if floor:
        spec = importlib.util.spec_from_file_location("stack_floor", os.path.join(HERE, "stack_floor.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.UPSTREAM_PORT = fake_port  # type: ignore[attr-defined]
        return module.app
    from occ.server.app import create_app

    return create_app(config_path=config_path)


class StepCounter(trio.abc.Instrument):
    """Counts trio task steps (each time a task is resumed: a hop or a checkpoint) and I/O waits (scheduler
    passes that found nothing runnable): unlike CPU time, these do not move with the machine's load."""

    def __init__(self) -> None:
        self.steps = 0
        self.io_waits = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1

    def before_io_wait(self, timeout: float) -> None:
        self.io_waits += 1


async def measure(app: Any, body: bytes, args: argparse.Namespace) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/messages", "raw_path": b"/v1/messages", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 1),
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"anthropic-version", b"2023-06-01"), (b"content-length", str(len(body)).encode())]}
    first_content: list[float] = []

    async def one() -> None:
        delivered = False
        started = time.perf_counter()
        seen_content = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            nonlocal seen_content
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"status {message['status']}")
            if not seen_content and b"content_block_delta" in message.get("body", b""):
                seen_content = True
                first_content.append(time.perf_counter() - started)

        await app(dict(scope), receive, send)

    streams: list[trio.SocketStream] = []
    if args.serve:
        request = (b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                   b"anthropic-version: 2023-06-01\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        streams = [await trio.open_tcp_stream("127.0.0.1", args.port) for _ in range(args.concurrency)]

        async def exchange(slot: int) -> None:
            """One request on a kept-alive connection, read to the end of its body; a connection the server
            closes after it (hypercorn's ``keep_alive_max_requests``, 1,000) is opened again."""
            stream = streams[slot]
            started = time.perf_counter()
            await stream.send_all(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += await _received(stream)
            head, _, tail = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
            lowered = head.lower()
            seen_content = False
            if b"transfer-encoding: chunked" in lowered:
                while not tail.endswith(b"\r\n0\r\n\r\n"):
                    if not seen_content and b"content_block_delta" in tail:
                        seen_content = True
                        first_content.append(time.perf_counter() - started)
                    tail = tail[-64:] + await _received(stream)
            else:
                length = int(lowered.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
                while len(tail) < length:
                    tail += await _received(stream)
            if b"connection: close" in lowered:
                await stream.aclose()
                streams[slot] = await trio.open_tcp_stream("127.0.0.1", args.port)

    async def each(slot: int) -> None:
        if args.serve:
            await exchange(slot)
        else:
            await one()

    async with trio.open_nursery() as nursery:  # warm-up: connections, caches
        for slot in range(args.concurrency):
            nursery.start_soon(each, slot)
    for index in range(args.rounds):
        left = args.requests

        async def worker(slot: int) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await each(slot)

        first_content.clear()
        counter = StepCounter()
        trio.lowlevel.add_instrument(counter)
        wall, cpu = time.perf_counter(), time.process_time()
        async with trio.open_nursery() as nursery:
            for slot in range(args.concurrency):
                nursery.start_soon(worker, slot)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        trio.lowlevel.remove_instrument(counter)
        line = (f"round {index}: {args.requests / wall:,.0f} req/s, CPU/req {cpu / args.requests * 1e6:,.0f} us, "
                f"task steps/req {counter.steps / args.requests:,.1f}, "
                f"scheduler passes with an I/O wait/req {counter.io_waits / args.requests:,.2f}")
        if first_content:
            first_content.sort()
            line += f", TTFC p50 {first_content[len(first_content) // 2] * 1e3:.2f} ms"
        print(line, flush=True)
    for stream in streams:
        await stream.aclose()


async def _received(stream: trio.SocketStream) -> bytes:
    """The next bytes of a response; the server closing mid-response is an error, not a loop forever."""
    part = await stream.receive_some(65536)
    if not part:
        raise RuntimeError("the server closed the connection mid-response")
    return part


async def serve_and_measure(app: Any, body: bytes, args: argparse.Namespace) -> None:
    """occ served by hypercorn on 127.0.0.1 in this process (hypercorn runs the lifespan)."""
    from occ.server.serve import serve

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app.state.config, host="127.0.0.1", port=0, app=app))
        args.port = int(binds[0].rsplit(":", 1)[1])
        await measure(app, body, args)
        nursery.cancel_scope.cancel()


async def call_and_measure(app: Any, body: bytes, args: argparse.Namespace) -> None:
    """occ's ASGI app called directly, its lifespan run by hand."""
    to_app, app_inbox = trio.open_memory_channel[dict[str, Any]](1)
    app_outbox, from_app = trio.open_memory_channel[dict[str, Any]](1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}}, app_inbox.receive,
                           app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        await from_app.receive()
        if args.shared_state:
            with trio.fail_after(10):
                while app.state.shared.status != "connected":
                    await trio.sleep(0.05)
        await measure(app, body, args)
        await to_app.send({"type": "lifespan.shutdown"})
        await from_app.receive()
        nursery.cancel_scope.cancel()


async def main(args: argparse.Namespace) -> None:
    fake = subprocess.Popen(["node", os.path.join(HERE, "fake_upstream.js"), "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        port = int(fake.stdout.readline())
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            config = occ_config(1, f"http://127.0.0.1:{port}", args.shared_state)
            config["usage"] = {"enabled": args.usage == "on", "path": os.path.join(tempfile.gettempdir(),
                                                                                  f"occ-bench-{os.getpid()}.sqlite")}
            json.dump(config, f)
        app = load_app(args.floor, port, f.name)
        delay = args.delay if args.delay is not None else (5 if args.stream else 0)
        marker = f"bench:deltas=50,delay={delay},agentic=0"
        body = json.dumps({"model": "bench-model", "stream": args.stream, "max_tokens": 100,
                           "messages": [{"role": "user", "content": marker + " " + "x" * 160}]}).encode()
        if args.serve:
            await serve_and_measure(app, body, args)
        else:
            await call_and_measure(app, body, args)
        os.unlink(f.name)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(config["usage"]["path"] + suffix):
                os.unlink(config["usage"]["path"] + suffix)
    finally:
        fake.terminate()
        fake.wait(5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floor", action="store_true", help="measure stack_floor.py's app instead of occ")
    parser.add_argument("--stream", action="store_true", help="50 deltas 5 ms apart instead of one JSON answer")
    parser.add_argument("--serve", action="store_true", help="through hypercorn on 127.0.0.1, over real sockets")
    parser.add_argument("--delay", type=int, help="ms between streamed deltas (default 5; 0: all at once)")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shared-state", metavar="URL", help="give occ shared_state on this Redis")
    parser.add_argument("--usage", choices=("on", "off"), default="on",
                        help="the usage ledger (on by default, as in a real config; its file is a temporary one)")
    trio.run(main, parser.parse_args())
