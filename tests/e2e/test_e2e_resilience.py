"""Fallback, circuit breaking, deadlines, stall guard, heartbeat and cancellation, end to end:
the real server on hypercorn, the fake upstream on 127.0.0.1 failing in the ways upstreams fail."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from support.anthropic_checker import check_stream, split_frames
from support.fake_upstream import Reply, sse
from support.shapes import USER, chunk, usage_chunk
from support.stack import by_model, chain, fake_provider, make_config, ok_stream, sdk, wait_for_log

import occ
from occ.config.parse import parse_config
from occ.server.reload import reload_now

CHAT = "/v1/chat/completions"


def models_tried(fake) -> list[str]:
    return [s.json["model"] for s in fake.requests(CHAT)]


async def post(url: str, body: dict[str, Any], timeout: float = 30) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(f"{url}/v1/messages", json=body)


def body(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 50, "stream": stream, "messages": USER, **extra}


async def test_fallback_order_and_attempts_in_order(fake, start_occ):
    fake.default(CHAT, by_model({
        "model-a": Reply(status=500, body={"error": {"message": "boom"}}),
        "model-b": Reply(status=429, body={"error": {"message": "slow down"}}),
        "model-c": ok_stream("from c"),
    }))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b", "model-c")))
    async with sdk(url).messages.stream(model="m", max_tokens=50, messages=USER) as stream:
        message = await stream.get_final_message()
    assert message.content[0].text == "from c"
    assert models_tried(fake) == ["model-a", "model-b", "model-c"]


async def test_bad_request_stops_the_chain(fake, start_occ):
    fake.default(CHAT, Reply(status=400, body={"error": {"message": "messages.0: invalid image"}}))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b")))
    response = await post(url, body(stream=False))
    assert response.status_code == 400
    assert "invalid image" in response.json()["error"]["message"]
    assert models_tried(fake) == ["model-a"]


async def test_all_overloaded_gives_529_with_each_attempt(fake, start_occ):
    fake.default(CHAT, Reply(status=529, body={"type": "error", "error": {"type": "overloaded_error",
                                                                           "message": "Overloaded"}}))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b")))
    for stream in (True, False):
        response = await post(url, body(stream=stream))
        assert response.status_code == 529, response.text
        error = response.json()["error"]
        assert error["type"] == "overloaded_error"
        assert "model-a" in error["message"] and "model-b" in error["message"]
        assert response.headers["request-id"]


async def test_connect_refused_falls_back(fake, start_occ):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    config = parse_config({
        "port": 0, "enable_streaming_scenario_routing": True,
        "providers": {"dead": {**fake_provider(fake), "base_url": f"http://127.0.0.1:{dead_port}/v1/chat/completions"},
                      "fake": fake_provider(fake)},
        "models": {"default": {"provider": "dead", "model_id": "model-a"}},
        "fallbacks": {"default": [{"provider": "fake", "model_id": "model-b"}]},
    }, env={}, source="test")
    fake.default(CHAT, ok_stream("alive"))
    url = await start_occ(config)
    async with sdk(url).messages.stream(model="m", max_tokens=50, messages=USER) as stream:
        message = await stream.get_final_message()
    assert message.content[0].text == "alive"


async def test_breaker_opens_skips_half_opens_and_recovers(fake, start_occ):
    healthy = {"a": False}

    def model_a(seen):
        return ok_stream("a")(seen) if healthy["a"] else Reply(status=500, body={"error": {"message": "down"}})

    fake.default(CHAT, by_model({"model-a": model_a, "model-b": ok_stream("b")}))
    config = make_config(fake, **chain("model-a", "model-b"),
                         circuit_breaker={"failure_threshold": 2, "cooldown_ms": 600})
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    key = ("fake", "model-a")
    for _ in range(2):
        assert (await post(url, body(stream=False))).status_code == 200
    assert app.state.breakers.state(key, app.state.board.now()) == "open"
    assert models_tried(fake) == ["model-a", "model-b", "model-a", "model-b"]

    assert (await post(url, body(stream=False))).status_code == 200
    assert models_tried(fake)[-1] == "model-b" and len(models_tried(fake)) == 5  # model-a skipped

    await trio.sleep(0.7)
    assert (await post(url, body(stream=False))).status_code == 200  # half-open probe fails
    assert models_tried(fake)[-2:] == ["model-a", "model-b"]
    assert app.state.breakers.state(key, app.state.board.now()) == "open"

    healthy["a"] = True
    await trio.sleep(0.7)
    response = await post(url, body(stream=False))
    assert response.json()["content"][0]["text"] == "a"
    assert app.state.breakers.state(key, app.state.board.now()) == "closed"


async def test_client_disconnect_mid_stream_closes_upstream_and_stops_fallback(fake, start_occ, caplog):
    caplog.set_level(logging.INFO)
    fake.default(CHAT, Reply(chunks=sse(chunk({"content": "first words"}), done=False), stall_s=30))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b")))
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", f"{url}/v1/messages", json=body()) as response:
            async for part in response.aiter_bytes():
                if b"first words" in part:
                    break
    # the upstream would hold its side open for 30 s (stall_s) and occ's stall guard is 120 s: a close
    # seen well within 10 s is occ closing it because the client left (shown by cause, not by a clock)
    with trio.fail_after(10):
        while fake.requests(CHAT)[0].disconnected_at is None:
            await trio.sleep(0.02)
    await trio.sleep(0.3)
    assert models_tried(fake) == ["model-a"]
    await wait_for_log(caplog, "outcome=client_cancelled")
    assert "all models failed" not in caplog.text


@pytest.fixture
def start_on(nursery):
    """``url = await start_on(config, server)``: occ served by its own connection (``occ.serve``) or by stock
    hypercorn (``hypercorn.trio.serve``, which has no on_disconnect: occ then watches with a task)."""

    async def start(config, server: str) -> str:
        if server == "occ":
            binds = await nursery.start(lambda task_status: occ.serve(config, task_status=task_status))
        else:
            hc = HypercornConfig()
            hc.bind, hc.accesslog, hc.errorlog, hc.graceful_timeout = ["127.0.0.1:0"], None, None, 0.1
            app = occ.create_app(config)
            binds = await nursery.start(lambda task_status: hypercorn_serve(app, hc, task_status=task_status))
        return binds[0]

    return start


@pytest.mark.parametrize("server", ["occ", "stock hypercorn"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "non-stream"])
async def test_a_client_that_leaves_cancels_the_upstream_on_either_server(fake, start_on, caplog, server, stream):
    """The client lifetime is cancelled by the server's own disconnect on occ's connection and by a watcher
    task under stock hypercorn: either way the upstream is closed at once, nothing else is asked, and a
    request that finished is never taken for a client that left."""
    caplog.set_level(logging.INFO)
    url = await start_on(make_config(fake, **chain("model-a", "model-b")), server)
    fake.default(CHAT, ok_stream("whole"))
    assert (await post(url, body(stream=stream))).status_code == 200
    await wait_for_log(caplog, "outcome=ok")
    fake.default(CHAT, Reply(chunks=sse(chunk({"content": "first words"}), done=False), stall_s=30)
                 if stream else Reply(delay_s=30, chunks=sse(chunk({"content": "late"}))))
    if stream:
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream("POST", f"{url}/v1/messages", json=body()) as response:
                async for part in response.aiter_bytes():
                    if b"first words" in part:
                        break
    else:
        with pytest.raises(httpx.ReadTimeout):
            await post(url, body(stream=False), timeout=0.5)
    with trio.fail_after(10):  # the upstream would hold on for 30 s: a close now is occ's, because the client left
        while fake.requests(CHAT)[-1].disconnected_at is None:
            await trio.sleep(0.02)
    await wait_for_log(caplog, "outcome=client_cancelled")
    assert models_tried(fake) == ["model-a", "model-a"]
    assert caplog.text.count("outcome=client_cancelled") == 1 and "all models failed" not in caplog.text


async def test_client_deadline_shorter_than_model_timeout(fake, start_occ, caplog):
    caplog.set_level(logging.INFO)
    fake.default(CHAT, Reply(delay_s=5, chunks=sse(chunk({"content": "late"}), chunk(finish="stop"))))
    config = make_config(fake, **chain("model-a", "model-b"))
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    with pytest.raises(httpx.ReadTimeout):
        await post(url, body(), timeout=0.5)
    with trio.fail_after(3):
        while fake.requests(CHAT)[0].disconnected_at is None:
            await trio.sleep(0.02)
    await wait_for_log(caplog, "outcome=client_cancelled")
    assert models_tried(fake) == ["model-a"]
    assert "all models failed" not in caplog.text
    assert app.state.breakers.state(("fake", "model-a"), app.state.board.now()) == "closed"
    assert app.state.breakers.snapshot(app.state.board.now()).get("fake/model-a", {}).get(
        "consecutive_failures", 0) == 0


async def test_stall_before_commit_falls_back(fake, start_occ):
    fake.default(CHAT, by_model({
        "model-a": Reply(chunks=sse(chunk({"role": "assistant", "content": ""}), done=False), stall_s=30),
        "model-b": ok_stream("rescued"),
    }))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b"), provider={"stream_timeout_ms": 400}))
    response = await post(url, body())
    assert response.status_code == 200
    message = check_stream(response.content)
    assert message["content"][0]["text"] == "rescued"
    assert models_tried(fake) == ["model-a", "model-b"]


async def test_stall_after_commit_ends_with_error_event(fake, start_occ):
    fake.default(CHAT, by_model({
        "model-a": Reply(chunks=sse(chunk({"content": "I started"}), done=False), stall_s=30),
        "model-b": ok_stream("never"),
    }))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b"), provider={"stream_timeout_ms": 400}))
    response = await post(url, body())
    assert response.status_code == 200
    message = check_stream(response.content, allow_error=True)
    assert message["error"]["type"] == "timeout_error"
    assert message["content"][0]["text"] == "I started"
    assert models_tried(fake) == ["model-a"]


async def test_drop_mid_event_before_commit_falls_back(fake, start_occ):
    fake.default(CHAT, by_model({
        "model-a": Reply(chunks=[b'data: {"id":"c1","choices":[{"index":0,"delta":{"con'], drop=True),
        "model-b": ok_stream("second"),
    }))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b")))
    response = await post(url, body())
    assert check_stream(response.content)["content"][0]["text"] == "second"


async def test_long_stream_with_silences_gets_pings_between_events(fake, start_occ):
    """A stream that keeps producing is never cut; pings fill silences, only between events."""
    parts: list[bytes | float] = []
    for i in range(12):
        data = json.dumps(chunk({"content": f"word{i} "}))
        # each event split at an odd byte boundary with a silence inside it
        raw = f"data: {data}\n\n".encode()
        parts += [raw[:7], 0.05, raw[7:], 0.25 if i % 4 == 0 else 0.02]
    parts += sse(chunk(finish="stop"), usage_chunk())
    fake.default(CHAT, Reply(chunks=parts))
    url = await start_occ(make_config(fake, heartbeat_interval_ms=100,
                                      provider={"stream_timeout_ms": 1000, "streaming_timeout_ms": 20000}))
    response = await post(url, body())
    frames = split_frames(response.content)
    names = [name for name, _ in frames]
    assert "ping" in names
    message = check_stream(response.content)
    assert message["content"][0]["text"] == "".join(f"word{i} " for i in range(12))
    async with sdk(url).messages.stream(model="m", max_tokens=50, messages=USER) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "end_turn"


async def test_pings_before_commit_then_all_fail_gives_error_event(fake, start_occ):
    fake.default(CHAT, Reply(delay_s=0.5, status=503, body={"error": {"message": "unavailable"}}))
    url = await start_occ(make_config(fake, heartbeat_interval_ms=100))
    response = await post(url, body())
    assert response.status_code == 200  # headers went out with the first ping
    frames = split_frames(response.content)
    assert frames[0][0] == "ping"
    assert frames[-1][0] == "error"
    assert "message_start" not in [name for name, _ in frames]


async def test_fast_failure_keeps_a_real_http_status(fake, start_occ):
    fake.default(CHAT, Reply(status=429, headers={"retry-after": "7"}, body={"error": {"message": "quota"}}))
    url = await start_occ(make_config(fake))
    response = await post(url, body())
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "7"


async def test_reload_shortens_timeout_for_next_attempt_only(fake, start_occ, tmp_path):
    def slow(seen):
        return Reply(chunks=[*[x for i in range(8) for x in (sse(chunk({"content": f"{i} "}), done=False)[0], 0.1)],
                             *sse(chunk(finish="stop"), usage_chunk())])

    fake.default(CHAT, slow)

    def write(streaming_ms: int) -> None:
        path.write_text(json.dumps({
            "port": 0, "enable_streaming_scenario_routing": True,
            "providers": {"fake": {**fake_provider(fake), "streaming_timeout_ms": streaming_ms}},
            "models": {"default": {"provider": "fake", "model_id": "model-a"}},
        }))

    path = tmp_path / "config.json"
    write(30000)
    app = occ.create_app(config_path=str(path))
    url = await start_occ(app.state.config, app=app)
    results: dict[str, httpx.Response] = {}

    async def first() -> None:
        results["first"] = await post(url, body())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        with trio.fail_after(5):
            while not fake.requests(CHAT):
                await trio.sleep(0.01)
        write(300)
        assert reload_now(app.state)
    first_message = check_stream(results["first"].content)
    assert first_message["stop_reason"] == "end_turn"

    second = await post(url, body())
    message = check_stream(second.content, allow_error=True) if second.status_code == 200 else second.json()
    assert "timeout" in json.dumps(message)


async def test_a_full_upstream_pool_is_a_529_that_trips_no_breaker(fake, start_occ, monkeypatch):
    """With every upstream connection slot busy, the next request waits its connect timeout, then gets
    occ's own 529 (Claude Code retries it). No other model is tried (they would wait on the same slots)
    and no model's breaker counts it."""
    from functools import partial

    import occ.server.app
    from occ.upstream.client import UpstreamClient

    monkeypatch.setattr(occ.server.app, "UpstreamClient", partial(UpstreamClient, max_connections=1))
    fake.default(CHAT, Reply(chunks=sse(chunk({"content": "slow"}), done=False), stall_s=30))
    config = make_config(fake, provider={"connect_timeout_ms": 200}, **chain("model-a", "model-b"))
    url = await start_occ(config)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(post, url, body(stream=True))  # holds the only slot, stalled upstream
        with trio.fail_after(5):
            while len(fake.requests(CHAT)) < 1:
                await trio.sleep(0.01)
        for stream in (False, True):
            response = await post(url, body(stream=stream))
            assert response.status_code == 529, response.text
            assert int(response.headers["retry-after"]) >= 1  # occ's own 529 says when to come back
            error = response.json()["error"]
            assert error["type"] == "overloaded_error" and "upstream connections were busy" in error["message"]
        assert len(fake.requests(CHAT)) == 1, "model-b was tried, or a request went out beyond the cap"
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"{url}/status")).json()
        assert all(info["breaker"] == "closed" for info in status["models"].values())
        assert status["upstream_connections"]["busy"] == 1
        nursery.cancel_scope.cancel()
