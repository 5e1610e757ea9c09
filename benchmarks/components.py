"""The price of each thing on the request path, in microseconds of CPU, measured alone.

``app_path.py`` and ``run.py`` say what a whole request costs; this says where it goes. Each component is
called the way the request path calls it, with the inputs a Claude Code request brings (a 200-byte prompt;
the agentic shape's 20 tools for the translator), in a loop, and timed with the process's CPU clock; each
figure is the median of ``--rounds`` rounds. Two columns: **per request** (paid once by every
``POST /v1/messages``) and **per delta** (paid for every streamed upstream chunk; the fake upstream, like most
providers, sends one delta per chunk).

The trio rows price the design's own pieces (a cancel scope, a memory-channel hop between two tasks, a
nursery with one task), and the ASGI rows price hypercorn: a real server on 127.0.0.1 in this process, a
client in a thread reading with plain sockets; the server's CPU is the process's minus the client thread's.

usage: python benchmarks/components.py [--rounds 5] [--scale 1.0] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from occ.config.model import ModelConfig
from occ.config.parse import parse_config
from occ.core.scrub import scrub, scrub_json
from occ.core.sse import SSEDecoder, SSEEvent
from occ.core.tokens import count_tokens
from occ.core.validate import parse_messages_request
from occ.observe.access_log import RequestLog
from occ.observe.usage import usage_row
from occ.resilience.routing import route
from occ.server.checks import Guard
from occ.server.state import ServerState
from occ.translate.anthropic_events import AnthropicStreamBuilder
from occ.translate.json_prefix import JsonPrefix
from occ.translate.tool_schema import is_strict_schema
from occ.translate.wires import wire_for

RESULTS: list[tuple[str, str, float, str]] = []  # (component, per, us, note)


def timed(fn: Callable[[], object], n: int, rounds: int) -> float:
    """Median CPU microseconds of one call of ``fn`` over ``rounds`` rounds of ``n`` calls."""
    figures = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            fn()
        figures.append((time.process_time() - start) * 1e6 / n)
    return statistics.median(figures)


async def timed_async(fn: Callable[[], Awaitable[object]], n: int, rounds: int) -> float:
    figures = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            await fn()
        figures.append((time.process_time() - start) * 1e6 / n)
    return statistics.median(figures)


def record(component: str, per: str, us: float, note: str = "") -> None:
    RESULTS.append((component, per, us, note))
    print(f"{component:<58} {per:<8} {us:9.2f} us  {note}", flush=True)


def bench_config() -> Any:
    model = {"provider": "bench", "model_id": "bench-model", "wire_format": "openai"}
    data = {
        "enable_streaming_scenario_routing": True,
        "providers": {"bench": {"base_url": "http://127.0.0.1:9/v1/chat/completions", "api_key": "dummy",
                                "protocol": "openai"}},
        "models": {name: dict(model) for name in ("default", "background", "fast", "think", "complex",
                                                   "long_context")},
        "logging": {"level": "warning"},
    }
    return parse_config(data, env={}, source="components.py")


def request_body(tools: int = 0, prompt: int = 200) -> bytes:
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
                            "messages": [{"role": "user", "content": [{"type": "text", "text": "x" * prompt}]}]}
    if tools:
        body["tools"] = [{"name": f"Tool{i}", "description": "d" * 300,
                          "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}
                         for i in range(tools)]
    return json.dumps(body).encode()


def chat_chunk(text: str) -> bytes:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "bench-model",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def per_request(n: int, rounds: int) -> None:
    config = bench_config()
    state = ServerState(config=config, guard=Guard())
    headers = {"host": "127.0.0.1:3456", "content-type": "application/json", "anthropic-version": "2023-06-01",
               "x-api-key": "bench", "user-agent": "claude-cli/2.0 (external, cli)", "accept": "application/json"}
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    from occ.server.app import _client_headers

    guard = state.guard
    record("admission: client headers read", "request", timed(lambda: _client_headers({"headers": raw_headers}),
                                                               n, rounds))
    record("admission: Guard.admit (bind, Host, Origin, key, type)", "request",
           timed(lambda: guard.admit("POST", "/v1/messages", headers, ("127.0.0.1", 3456), "127.0.0.1", config),
                 n, rounds))

    def limits() -> None:
        state.limiter.acquire("local", config.max_concurrent_per_client)
        state.limiter.release("local")

    record("admission: client limits acquire + release", "request", timed(limits, n, rounds))
    body = request_body()
    record("validate: parse_messages_request (200 B prompt)", "request",
           timed(lambda: parse_messages_request(body), n, rounds))
    request = parse_messages_request(body)
    record("count_tokens (200 B prompt)", "request", timed(lambda: count_tokens(request), n, rounds))
    code = "def f(x):\n    return x * 2  # a line of code\n" * 60
    big = {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}",
                                                      "content": code}]} for i in range(400)]}
    record("count_tokens (1 MB of tool results)", "request",
           timed(lambda: count_tokens(big), max(1, n // 1000), rounds))
    record("routing: route()", "request", timed(lambda: route(request, config, token_estimate=60), n, rounds))
    tooled = parse_messages_request(request_body(tools=20))
    record("routing: route() (20 tools: the web search tool is looked for)", "request",
           timed(lambda: route(tooled, config, token_estimate=60), n, rounds))
    model = config.models["default"]
    wire = wire_for("openai")
    record("translator: build_request, chat (200 B prompt)", "request",
           timed(lambda: wire.build(request, b"", model, True, lambda _: None), n, rounds))
    agentic = parse_messages_request(request_body(tools=20, prompt=20000))
    record("translator: build_request, chat (20 KB, 20 tools)", "request",
           timed(lambda: wire.build(agentic, b"", model, True, lambda _: None), max(1, n // 10), rounds))
    claude_code = {**json.loads(request_body()), "thinking": {"budget_tokens": 0, "type": "adaptive"},
                   "output_config": {"effort": "high"}}
    cc_raw = json.dumps(claude_code).encode()
    cc_request = parse_messages_request(cc_raw)
    passthrough, go = wire_for("anthropic"), ModelConfig("opencode-go", "qwen3.7-plus")
    record("translator: build_body, passthrough (200 B, adaptive -> enabled)", "request",
           timed(lambda: passthrough.build(cc_request, cc_raw, go, True, lambda _: None), n, rounds))
    read = {"type": "object", "additionalProperties": False, "required": ["file_path"],
            "properties": {"file_path": {"type": "string"}, "offset": {"type": "number"}}}
    closed = {"type": "object", "additionalProperties": False, "required": [f"p{i}" for i in range(6)],
              "properties": {f"p{i}": {"type": "string", "description": "x" * 80} for i in range(6)}}
    record("tool schema: is_strict_schema, not strict (Read)", "tool", timed(lambda: is_strict_schema(read), n,
                                                                                rounds))
    record("tool schema: is_strict_schema, strict (6 properties)", "tool",
           timed(lambda: is_strict_schema(closed), n, rounds))
    board = state.board

    def breaker() -> None:
        board.allow(model.key)
        board.record_success(model.key)

    record("shared-state view: breaker allow + record_success", "request", timed(breaker, n, rounds))
    log_record = RequestLog(request_id="req_0123456789abcdef", started=time.monotonic())
    log_record.client, log_record.client_model, log_record.model = "local", "claude-sonnet-4-5", "bench/bench-model"
    log_record.status, log_record.stream, log_record.usage = 200, True, {"input_tokens": 60, "output_tokens": 50}
    prices = config.prices

    def ledger() -> None:
        state.usage.add(usage_row(log_record, prices), keep=True)
        if len(state.usage.pending) > 10000:
            state.usage.take()

    record("usage ledger: usage_row + append (the write is a thread)", "request", timed(ledger, n, rounds))
    record("observer.observe (counters for /status, /metrics)", "request",
           timed(lambda: state.observer.observe(log_record), n, rounds))
    line = " ".join(f"{k}={v}" for k, v in log_record.fields().items())
    record("scrub: one access-log line (only at level info)", "request", timed(lambda: scrub(line), n, rounds),
           f"{len(line)} chars")
    error = {"type": "error", "error": {"type": "api_error", "message": "upstream said: " + "y" * 200}}
    record("scrub: an error body (failures only)", "request", timed(lambda: scrub_json(error), n, rounds))


def per_delta(n: int, rounds: int) -> None:
    chunk = chat_chunk("tok17 ")
    decoder = SSEDecoder()
    record("SSE decode: one upstream chunk (one event)", "delta", timed(lambda: decoder.feed(chunk), n, rounds),
           f"{len(chunk)} B")
    model = bench_config().models["default"]
    wire = wire_for("openai")
    builder = AnthropicStreamBuilder(message_id="msg_1", model="claude-sonnet-4-5", input_tokens=60, thinking=False)
    translator = wire.stream_translator(builder, model, [])
    translator.feed(SSEEvent(event="", data=chunk[6:-2].decode()))
    builder.take()
    event = SSEEvent(event="", data=chunk[6:-2].decode())

    def translate() -> None:
        translator.feed(event)
        builder.take()

    record("translator + builder + SSE framing: one text delta", "delta", timed(translate, n, rounds))
    def gemini_collected() -> None:  # a grounded (web search) Gemini answer is gathered whole
        from occ.translate.gemini import GeminiCollector

        collector = GeminiCollector()
        for piece in pieces:
            collector.feed(piece)

    pieces = [SSEEvent(event="", data=json.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "x" * 50, "thought": True}]}}]})) for _ in range(4000)]
    record("Gemini collector: one chunk of a 4,000-chunk grounded answer (200 KB)", "delta",
           timed(gemini_collected, 1, rounds) / len(pieces), "was ~26 us and growing with the answer")
    record("JSON prefix: one tool-input fragment (46 chars, new prefix)", "delta",
           timed(lambda: JsonPrefix().feed('{"file_path": "/src/some/module_name.py", "li'), n, rounds))
    big = json.dumps({"content": "line of a file that the model writes\n" * 2800, "file_path": "/src/x.py"})
    record("JSON prefix: a 100 KB tool input (whole)", "input", timed(lambda: JsonPrefix().feed(big), 3, rounds),
           f"{len(big) // 1000} KB; target <= 5,000 us")

    async def trio_rows() -> None:
        record("trio: checkpoint", "delta", await timed_async(trio.lowlevel.checkpoint, n, rounds))

        def scopes() -> None:
            deadline = trio.current_time() + 60
            with trio.CancelScope(deadline=deadline), trio.CancelScope(deadline=deadline):
                pass

        record("two cancel scopes (before issue 25: payload + stall guard per read)", "delta",
               timed(scopes, n, rounds))

        def scope() -> None:
            with trio.CancelScope(deadline=trio.current_time() + 60):
                pass

        record("stall + payload guard: one cancel scope per read", "delta", timed(scope, n, rounds))
        await pump_row(n, rounds)
        send, receive = trio.open_memory_channel[bytes](64)
        count = n * rounds

        async def consumer() -> None:
            async for _ in receive:
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            await trio.sleep(0)
            start = time.process_time()
            for _ in range(count):
                send.send_nowait(b"x")
                await trio.sleep(0)  # let the consumer take it: one hop, as pump -> relay
            spent = time.process_time() - start
            await send.aclose()
        checkpoint_us = next(us for name, _, us, _ in RESULTS if name == "trio: checkpoint")
        record("trio: memory-channel hop to another task (pump -> relay)", "delta",
               spent * 1e6 / count - checkpoint_us, "minus the producer's own checkpoint")

        async def nursery_one() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep_forever)
                nursery.cancel_scope.cancel()

        record("trio: a nursery with one task, cancelled (e.g. disconnect watcher)", "request",
               await timed_async(nursery_one, max(1, n // 4), rounds))

    trio.run(trio_rows)


async def pump_row(n: int, rounds: int) -> None:
    """One upstream chunk through occ's per-chunk path as ``fallback._pump`` runs it, minus the sockets: the
    read's guard scope, SSE decode, translator, builder, and the relay's write (its shielded hand-off scope,
    its lock, the ASGI message) to a ``send`` that does nothing."""
    try:
        from occ.server.relay import Relay
    except ImportError:
        return
    if not hasattr(Relay, "write"):  # before issue 25 the relay was a task fed through a channel
        return
    chunk = chat_chunk("tok17 ")
    model = bench_config().models["default"]
    builder = AnthropicStreamBuilder(message_id="msg_1", model="claude-sonnet-4-5", input_tokens=60, thinking=False)
    translator = wire_for("openai").stream_translator(builder, model, [])
    decoder = SSEDecoder()

    async def send(message: dict[str, Any]) -> None:
        pass

    relay = Relay(send, request_id="req_1", write_timeout_s=60.0)

    async def read() -> bytes:
        return chunk

    async def one() -> None:
        with trio.CancelScope(deadline=trio.current_time() + 60):
            data = await read()
        for event in decoder.feed(data):
            translator.feed(event)
        await relay.write(builder.take())

    await one()
    record("pump: one chunk, read scope -> decode -> translate -> relay write", "delta",
           await timed_async(one, n, rounds), "no sockets: occ's own per-chunk work")

    import inspect

    if "whole_writes" not in inspect.signature(Relay).parameters:  # before occ's own hypercorn connection
        return
    whole = Relay(send, request_id="req_1", write_timeout_s=60.0, whole_writes=True)

    async def one_now() -> None:  # as the pump runs now: no scope per read, none per write on occ's server
        data = await read()
        for event in decoder.feed(data):
            translator.feed(event)
        await whole.write(builder.take())

    await one_now()
    record("pump: one chunk as issue 25 left it (guard re-armed, not per read; whole writes)", "delta",
           await timed_async(one_now, n, rounds), "on occ's own HTTP/1.1 connection")


def asgi_layer(requests: int, rounds: int) -> None:
    """hypercorn's price per ``http.response.body`` send and per request, measured on a real socket."""
    import hypercorn.config
    import hypercorn.trio

    frame = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,' \
            b'"delta":{"type":"text_delta","text":"tok17 "}}\n\n'

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        sends = int(scope["path"].strip("/") or 1)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        per = 50 // sends
        data = frame * per
        for _ in range(sends):
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def client(port: int, sends: int, count: int, out: list[float]) -> None:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            request = f"POST /{sends} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{{}}".encode()
            start = time.thread_time()
            for _ in range(count):
                conn.sendall(request)
                data = b""
                while not data.endswith(b"\r\n0\r\n\r\n"):
                    data += conn.recv(65536)
            out.append(time.thread_time() - start)

    async def main(server: str) -> None:
        config = hypercorn.config.Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        async with trio.open_nursery() as nursery:
            if server == "occ":  # occ's worker: hypercorn's, with the connection class occ serves with
                from hypercorn.utils import wrap_app

                from occ.server.hypercorn_worker import worker_serve

                sockets = config.create_sockets()
                for sock in sockets.insecure_sockets:
                    sock.listen(config.backlog)
                binds = await nursery.start(partial(worker_serve, wrap_app(app, config.wsgi_max_body_size, None),
                                                    config, sockets=sockets))
            else:
                binds = await nursery.start(hypercorn.trio.serve, app, config)  # type: ignore[arg-type]
            port = int(binds[0].rsplit(":", 1)[1])
            figures: dict[int, list[float]] = {1: [], 50: []}
            for _ in range(rounds):
                for sends in (1, 50):
                    out: list[float] = []
                    thread = threading.Thread(target=client, args=(port, sends, requests, out))
                    start = time.process_time()
                    thread.start()
                    while thread.is_alive():
                        await trio.sleep(0.01)
                    figures[sends].append((time.process_time() - start - out[0]) * 1e6 / requests)
            one, fifty = statistics.median(figures[1]), statistics.median(figures[50])
            label = "occ's hypercorn worker" if server == "occ" else "ASGI/hypercorn"
            record(f"{label}: a request with one body send", "request", one, "incl. its socket I/O")
            record(f"{label}: one more http.response.body send", "delta", (fifty - one) / 49,
                   "chunked framing, send lock, socket write" if server != "occ" else
                   "a chunked middle part: framed by occ's connection and written at once "
                   "(occ/server/hypercorn_worker.py)")
            nursery.cancel_scope.cancel()

    trio.run(main, "hypercorn")
    try:
        import occ.server.hypercorn_worker  # noqa: F401
    except ImportError:  # an occ from before its own worker
        return
    trio.run(main, "occ")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="scale the loop counts (0.2: a quick look)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    n = max(10, int(4000 * args.scale))
    import os

    print(f"load average {os.getloadavg()[0]:.2f}, {args.rounds} rounds, medians", flush=True)
    per_request(n, args.rounds)
    per_delta(n * 5, args.rounds)
    asgi_layer(max(20, int(400 * args.scale)), args.rounds)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("\n| component | per | us CPU | note |\n|---|---|---|---|")
    for component, per, us, note in RESULTS:
        print(f"| {component} | {per} | {us:,.2f} | {note} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"component": c, "per": p, "us": u, "note": t} for c, p, u, t in RESULTS], f, indent=1)


if __name__ == "__main__":
    main()
