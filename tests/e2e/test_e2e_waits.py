"""Every wait that is not the model's is bounded, end to end (docs/timeouts.md draws the scopes): a slow
client is not an upstream stall, a client that stops reading is given up and its upstream closed, a stream of
nothing but SSE comments ends, and a non-streaming body that stalls is caught by the stall guard. The real
server on hypercorn, the fake upstream and raw clients on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from support.anthropic_checker import check_stream
from support.fake_upstream import Reply, sse
from support.shapes import USER, chunk, completion, usage_chunk
from support.stack import by_model, chain, make_config, ok_stream, wait_for_log

CHAT = "/v1/chat/completions"
BIG = "x" * 32 * 1024
#: ~10 MB of answer: more than the client's tiny receive window, occ's socket buffer and the relay channel
MANY = 300


def big_answer() -> Reply:
    return Reply(chunks=sse(*[chunk({"content": BIG}) for _ in range(MANY)], chunk(finish="stop"), usage_chunk()))


def body(stream: bool = True) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 50, "stream": stream, "messages": USER}


async def raw_stream_request(url: str) -> trio.SocketStream:
    """A client with a small receive window that sends a streaming request and then reads only when told."""
    host, port = url.removeprefix("http://").split(":")
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    payload = json.dumps(body()).encode()
    head = (f"POST /v1/messages HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n\r\n")
    await stream.send_all(head.encode() + payload)
    return stream


async def read_to_end(stream: trio.SocketStream) -> bytes:
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        part = await stream.receive_some(1 << 20)
        if not part:
            break
        data += part
    return data


def dechunk(raw: bytes) -> bytes:
    _, _, rest = raw.partition(b"\r\n\r\n")
    out = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return out


async def test_a_slow_client_is_not_an_upstream_stall(fake, start_occ, caplog):
    """The client stops reading for three stall periods and then reads on: the stall guard covers upstream
    reads only, so the healthy model is not charged, no fallback happens and the stream is whole."""
    caplog.set_level(logging.INFO)
    fake.default(CHAT, by_model({"model-a": big_answer(), "model-b": ok_stream("b should not be asked")}))
    config = make_config(fake, **chain("model-a", "model-b"), provider={"stream_timeout_ms": 300},
                         client_write_timeout_ms=10000)
    url = await start_occ(config)
    stream = await raw_stream_request(url)
    with trio.fail_after(20):
        first = await stream.receive_some(4096)
        await trio.sleep(1.0)  # not reading: occ's hand-off to this client waits
        raw = first + await read_to_end(stream)
    await stream.aclose()
    message = check_stream(dechunk(raw))
    assert message["content"][0]["text"] == BIG * MANY
    assert [s.json["model"] for s in fake.requests(CHAT)] == ["model-a"]
    await wait_for_log(caplog, "outcome=ok")
    assert "stall" not in caplog.text


async def test_a_client_that_stops_reading_is_given_up_and_its_upstream_closed(fake, start_occ, caplog):
    """Connected but not reading: after client_write_timeout_ms the request nursery is cancelled, the
    upstream connection closes (the fake sees the disconnect), the pool slot is free again, and the log says
    outcome=client_too_slow."""
    caplog.set_level(logging.INFO)
    fake.default(CHAT, big_answer())
    config = make_config(fake, client_write_timeout_ms=500)
    url = await start_occ(config)
    stream = await raw_stream_request(url)
    try:
        with trio.fail_after(10):
            while not fake.requests(CHAT) or fake.requests(CHAT)[0].disconnected_at is None:
                await trio.sleep(0.05)
        # the kernel aborts the stuck connection too (TCP_USER_TIMEOUT), so the request ends and is logged
        await wait_for_log(caplog, "outcome=client_too_slow")
        assert "client_write_timeout_ms" in caplog.text
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"{url}/status")).json()
        assert status["upstream_connections"]["busy"] == 0
        assert status["models"].get("fake/model-a", {}).get("breaker", "closed") == "closed"  # not its fault
    finally:
        await stream.aclose()


async def test_a_stream_of_only_comments_ends_at_the_payload_limit(fake, start_occ, caplog):
    """An upstream that sends only SSE comments (and ping events) is alive to the stall guard but says
    nothing: payload_timeout_ms ends the attempt and the next model answers."""
    caplog.set_level(logging.INFO)
    keepalive = [b": keep-alive\n\n", 0.05, b"event: ping\ndata: {\"type\": \"ping\"}\n\n", 0.05] * 40
    fake.default(CHAT, by_model({"model-a": Reply(chunks=keepalive), "model-b": ok_stream("b answered")}))
    config = make_config(fake, **chain("model-a", "model-b"),
                         provider={"stream_timeout_ms": 1000, "payload_timeout_ms": 400})
    url = await start_occ(config)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/v1/messages", json=body())
    # which guard ended model-a is in its attempt's outcome and the log, not in a clock: the comments
    # would have run 4 s and then ended without a finish (another error), the stall guard never fires
    assert check_stream(response.content)["content"][0]["text"] == "b answered"
    lines = await wait_for_log(caplog, "outcome=ok")
    assert any("fake/model-a[openai]=stall" in line for line in lines)
    assert "payload_timeout_ms" in caplog.text


async def test_payload_keeps_a_long_stream_alive_past_the_payload_limit(fake, start_occ):
    """The payload limit is not a total limit: a stream that keeps producing text runs on."""
    parts: list[Any] = []
    for i in range(8):
        parts += [*sse(chunk({"content": f"{i} "}), done=False), 0.1]
    parts += sse(chunk(finish="stop"), usage_chunk())
    fake.default(CHAT, Reply(chunks=parts))
    url = await start_occ(make_config(fake, provider={"payload_timeout_ms": 300}))
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/v1/messages", json=body())
    assert check_stream(response.content)["content"][0]["text"] == "0 1 2 3 4 5 6 7 "


async def test_a_lively_stream_runs_past_the_stall_limit(fake, start_occ, caplog):
    """The stall guard measures silence, not length: deltas 0.1 s apart keep a 1.2 s stream going under a
    0.3 s stream_timeout_ms. (One guard scope serves many reads and is not moved per read; each time it fires
    early the deadlines as they are say it was not a stall and the read is made again under a new one.)"""
    caplog.set_level(logging.INFO)
    parts: list[Any] = []
    for i in range(12):
        parts += [*sse(chunk({"content": f"{i} "}), done=False), 0.1]
    parts += sse(chunk(finish="stop"), usage_chunk())
    fake.default(CHAT, by_model({"model-a": Reply(chunks=parts), "model-b": ok_stream("b should not be asked")}))
    config = make_config(fake, **chain("model-a", "model-b"), provider={"stream_timeout_ms": 300})
    url = await start_occ(config)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/v1/messages", json=body())
    assert check_stream(response.content)["content"][0]["text"] == "".join(f"{i} " for i in range(12))
    assert [s.json["model"] for s in fake.requests(CHAT)] == ["model-a"]
    await wait_for_log(caplog, "outcome=ok")
    assert "stall" not in caplog.text


async def test_a_non_streaming_body_that_stalls_is_caught_by_the_stall_guard(fake, start_occ, caplog):
    """The non-streaming retry Claude Code makes after a broken stream used to wait the full timeout_ms
    (300 s) on a body that stopped; the stall guard now ends it after stream_timeout_ms."""
    caplog.set_level(logging.INFO)
    half = Reply(chunks=[b'{"id": "c1", "choices": ['], stall_s=30, headers={"content-type": "application/json"})
    fake.default(CHAT, by_model({"model-a": half, "model-b": ok_stream("b")}))
    config = make_config(fake, **chain("model-a", "model-b"), provider={"stream_timeout_ms": 300})
    url = await start_occ(config)
    async with httpx.AsyncClient(timeout=10) as client:  # without the guard: 30 s of stall, past this timeout
        response = await client.post(f"{url}/v1/messages", json=body(stream=False))
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "b"
    lines = await wait_for_log(caplog, "outcome=ok")
    assert any("fake/model-a[openai]=stall" in line for line in lines)


async def test_silence_after_a_read_is_a_stall_at_the_stall_limit_not_twice_it(fake, start_occ, caplog):
    """The stall clock starts at the read that waits, also when the guard scope serving many reads fired
    early and was re-armed: comments at 0 and 0.5 s, then 1.3 s of silence, is a stall under 1 s (re-armed
    from when it fired at 1 s, the guard would wait until 2 s and model-a's answer at 1.8 s would get in)."""
    caplog.set_level(logging.INFO)
    answer = sse(chunk({"content": "a, late"}), chunk(finish="stop"), usage_chunk())
    late = Reply(chunks=[b": keep-alive\n\n", 0.5, b": keep-alive\n\n", 1.3, *answer])
    fake.default(CHAT, by_model({"model-a": late, "model-b": ok_stream("b answered")}))
    config = make_config(fake, **chain("model-a", "model-b"), provider={"stream_timeout_ms": 1000})
    url = await start_occ(config)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/v1/messages", json=body())
    assert check_stream(response.content)["content"][0]["text"] == "b answered"
    lines = await wait_for_log(caplog, "outcome=ok")
    assert any("fake/model-a[openai]=stall" in line for line in lines)


async def test_silence_in_a_non_streaming_body_is_a_stall_at_the_stall_limit_not_twice_it(fake, start_occ, caplog):
    """The same for a whole body's reads (_read_body): parts at 0 and 0.5 s, then 1.3 s of silence under 1 s."""
    caplog.set_level(logging.INFO)
    whole = json.dumps(completion({"content": "a, late"})).encode()
    late = Reply(chunks=[whole[:10], 0.5, whole[10:20], 1.3, whole[20:]], headers={"content-type": "application/json"})
    fake.default(CHAT, by_model({"model-a": late, "model-b": ok_stream("b")}))
    config = make_config(fake, **chain("model-a", "model-b"), provider={"stream_timeout_ms": 1000})
    url = await start_occ(config)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/v1/messages", json=body(stream=False))
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "b"
    lines = await wait_for_log(caplog, "outcome=ok")
    assert any("fake/model-a[openai]=stall" in line for line in lines)


@pytest.mark.parametrize("stream", [True, False])
async def test_a_lively_answer_through_a_proxy_runs_past_the_stall_limit(fake, start_occ, caplog, nursery, monkeypatch,
                                                                          stream):
    """Through an HTTP proxy occ reads with httpx, whose read a cancel ends for good (its body iterator and
    connection close): the guard must then never fire early and make the read again, or a lively answer
    would end at stream_timeout_ms. The proxy here is the fake itself, given absolute-form requests."""
    caplog.set_level(logging.INFO)
    proxied: list[bytes] = []

    async def proxy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            proxied.append(scope["raw_path"])
            scope = {**scope, "path": urlsplit(scope["path"]).path}
        await fake(scope, receive, send)

    hc = HypercornConfig()
    hc.bind, hc.accesslog, hc.errorlog, hc.graceful_timeout = ["127.0.0.1:0"], None, None, 0.1
    binds = await nursery.start(lambda task_status: hypercorn_serve(proxy, hc, task_status=task_status))
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", binds[0])
    text = "".join(f"{i} " for i in range(12))
    parts: list[Any] = []
    if stream:
        for i in range(12):
            parts += [*sse(chunk({"content": f"{i} "}), done=False), 0.1]
        answer = Reply(chunks=[*parts, *sse(chunk(finish="stop"), usage_chunk())])
    else:
        whole = json.dumps(completion({"content": text})).encode()
        for i in range(12):
            parts += [whole[i * 10:(i + 1) * 10], 0.1]
        answer = Reply(chunks=[*parts, whole[120:]], headers={"content-type": "application/json"})
    fake.default(CHAT, by_model({"model-a": answer, "model-b": ok_stream("b should not be asked")}))
    config = make_config(fake, **chain("model-a", "model-b"), provider={"stream_timeout_ms": 300})
    url = await start_occ(config)
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        response = await client.post(f"{url}/v1/messages", json=body(stream=stream))
    message = check_stream(response.content) if stream else response.json()
    assert message["content"][0]["text"] == text
    assert [s.json["model"] for s in fake.requests(CHAT)] == ["model-a"]
    assert proxied and all(path.startswith(b"http://") for path in proxied)
    await wait_for_log(caplog, "outcome=ok")
