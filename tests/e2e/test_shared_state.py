"""Shared state against a real Redis: two occ servers (in this process, each its own app and state, as
two processes would be) share breakers, a single half-open probe, per-client limits and counters; and a
Redis that dies, comes back or answers slowly never fails a request. The same across real processes
(``occ serve`` twice, and ``--workers 2``) is in test_shared_state_processes.py."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import trio
from support.fake_upstream import Reply, sse
from support.redis_server import SlowProxy
from support.shapes import USER, chunk
from support.stack import by_model, chain, make_config, ok_stream

import occ
from occ.cli.ops import format_status

CHAT = "/v1/chat/completions"
FAST = {"sync_interval_ms": 50, "timeout_ms": 300}


def shared(url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "key_prefix": prefix, **FAST, **extra}


def models_tried(fake) -> list[str]:
    return [s.json["model"] for s in fake.requests(CHAT)]


def body(stream: bool = False) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 50, "stream": stream, "messages": USER}


async def post(url: str, stream: bool = False, timeout: float = 30) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(f"{url}/v1/messages", json=body(stream))


async def status(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(f"{url}/status")).json()


async def until(check, within: float, what: str) -> float:
    """Poll ``check`` (async, returns truthy) until true; how long it took. Fails after ``within`` s."""
    start = trio.current_time()
    with trio.move_on_after(within):
        while not await check():
            await trio.sleep(0.02)
        return trio.current_time() - start
    raise AssertionError(f"not within {within} s: {what}")


async def connected(url: str, processes: int = 1) -> bool:
    data = await status(url)
    return data["shared_state"] == "connected" and len(data["fleet"]["processes"]) >= processes


async def test_an_open_breaker_is_honoured_by_the_other_process_and_only_one_probes(
        fake, start_occ, redis_server, key_prefix):
    health = {"a": False}

    def model_a(seen):
        if not health["a"]:
            return Reply(status=500, body={"error": {"message": "down"}})
        return Reply(body=ok_stream("a")(seen).body, delay_s=0.4)  # a probe that takes a while

    fake.default(CHAT, by_model({"model-a": model_a, "model-b": ok_stream("b")}))
    config = make_config(fake, **chain("model-a", "model-b"), shared_state=shared(redis_server.url, key_prefix),
                         circuit_breaker={"failure_threshold": 1, "cooldown_ms": 1500})
    one, two = occ.create_app(config), occ.create_app(config)
    url_one, url_two = await start_occ(config, app=one), await start_occ(config, app=two)
    await until(lambda: connected(url_two, 2), 30, "both processes connected")

    assert (await post(url_one)).json()["content"][0]["text"] == "b"  # model-a failed: opens in one
    await until(lambda: _breaker(url_two, "open"), 30, "the open seen by the other process")
    assert (await post(url_two)).json()["content"][0]["text"] == "b"
    assert models_tried(fake) == ["model-a", "model-b", "model-b"]  # two never tried model-a

    health["a"] = True
    await trio.sleep(1.6)  # cooldown over: half-open across the fleet
    texts: list[str] = []

    async def ask(url: str) -> None:
        texts.append((await post(url)).json()["content"][0]["text"])

    for _ in range(6):  # requests at both, while the one probe (0.4 s) runs
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, url_one)
            nursery.start_soon(ask, url_two)
        await trio.sleep(0.1)
    tries = [s for s in fake.requests(CHAT)[3:] if s.json["model"] == "model-a"]
    probe = tries[0]
    during = [s for s in tries[1:] if s.started < probe.started + 0.4]
    assert not during, "a second probe while the first ran"
    assert texts.count("a") >= 1 and texts.count("b") >= 2  # the probe answered; the others fell back
    await until(lambda: _breaker(url_one, "closed"), 30, "closed in one")
    await until(lambda: _breaker(url_two, "closed"), 30, "closed in two")
    assert (await post(url_two)).json()["content"][0]["text"] == "a"
    async def bookkept() -> bool:
        model_a = (await status(url_one))["fleet"]["models"]["fake/model-a"]
        return (model_a["outcomes"].get("ok", 0) >= 2 and model_a["outcomes"].get("http_500") == 1
                and model_a["breaker_opened"] == 1 and model_a["breaker_closed"] == 1)

    await until(bookkept, 30, "the fleet's totals: outcomes of both processes, one open and one close")


async def _breaker(url: str, state: str) -> bool:
    data = await status(url)
    models = (data.get("fleet") or {}).get("models", {})
    return models.get("fake/model-a", {}).get("breaker", "closed") == state


def _stall_then_ok():
    state = {"held": 0}

    def respond(seen):
        if state["held"] < 2:
            state["held"] += 1
            return Reply(chunks=[*sse(chunk({"content": "held"}), done=False)], stall_s=30)
        return ok_stream("free")(seen)

    return respond


async def test_max_concurrent_per_client_holds_across_processes(fake, start_occ, redis_server, key_prefix):
    fake.default(CHAT, _stall_then_ok())
    config = make_config(fake, max_concurrent_per_client=2, shared_state=shared(redis_server.url, key_prefix))
    one, two = occ.create_app(config), occ.create_app(config)
    url_one, url_two = await start_occ(config, app=one), await start_occ(config, app=two)
    await until(lambda: connected(url_two, 2), 30, "both processes connected")

    async with trio.open_nursery() as nursery:
        async def hold() -> None:
            async with httpx.AsyncClient(timeout=60) as client, \
                    client.stream("POST", f"{url_one}/v1/messages", json=body(stream=True)) as response:
                async for _ in response.aiter_bytes():
                    pass

        nursery.start_soon(hold)
        nursery.start_soon(hold)
        with trio.fail_after(10):
            while len(fake.requests(CHAT)) < 2:
                await trio.sleep(0.02)

        async def refused() -> bool:
            response = await post(url_two)
            return response.status_code == 429

        await until(refused, 30, "the other process refuses the client's third request")
        response = await post(url_two)
        assert response.status_code == 429 and response.json()["error"]["type"] == "rate_limit_error"
        assert "other occ processes" in response.json()["error"]["message"]
        nursery.cancel_scope.cancel()

    async def admitted() -> bool:
        return (await post(url_two)).status_code == 200

    await until(admitted, 30, "the slots come back once the held requests end")


async def test_redis_that_dies_and_comes_back(fake, start_occ, own_redis, key_prefix, caplog):
    caplog.set_level(logging.INFO)
    fake.default(CHAT, ok_stream("ok"))
    config = make_config(fake, shared_state=shared(own_redis.url, key_prefix))
    url = await start_occ(config)
    await until(lambda: connected(url), 30, "connected")

    own_redis.stop()
    for _ in range(10):  # every request is served while the store is gone (that none waits on it is
        assert (await post(url)).status_code == 200  # proven without a clock below, with a store that never answers)
        await trio.sleep(0.05)

    async def unavailable() -> bool:
        return (await status(url))["shared_state"] == "unavailable"

    await until(unavailable, 30, "unavailable shown")  # deadlines far above the 50 ms sync: a loaded machine
    data = await status(url)
    assert "fleet" not in data and data["models"]["fake/model-a"]["requests"] >= 10
    assert "shared_state: unavailable (redis://127.0.0.1:" in format_status(data)  # what `occ status` prints
    await trio.sleep(1.0)  # several failed reconnects...
    warnings = [r for r in caplog.records if "shared state unavailable" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # ...logged once

    own_redis.start()
    await until(lambda: connected(url), 30, "reconnected on its own")
    assert (await post(url)).status_code == 200
    text = format_status(await status(url))
    assert "shared_state: connected" in text and "1 process(es) alive" in text
    assert any("shared state connected" in r.getMessage() for r in caplog.records)


async def test_redis_that_answers_slowly(fake, start_occ, redis_server, key_prefix, nursery):
    fake.default(CHAT, ok_stream("ok"))
    proxy = SlowProxy(redis_server.port)
    port = await nursery.start(proxy.serve)
    config = make_config(fake, shared_state=shared(f"redis://127.0.0.1:{port}/0", key_prefix))
    url = await start_occ(config)
    await until(lambda: connected(url), 30, "connected through the proxy")

    proxy.delay_s = 2.0  # far beyond timeout_ms (300 ms)
    for _ in range(5):
        assert (await post(url)).status_code == 200

    async def unavailable() -> bool:
        return (await status(url))["shared_state"] == "unavailable"

    await until(unavailable, 30, "a slow store counts as unavailable")
    proxy.delay_s = 0.0
    await until(lambda: connected(url), 30, "back once it answers in time")


async def test_a_store_that_never_answers_never_holds_a_request(fake, start_occ, redis_server, key_prefix, nursery):
    """The request path never waits on the store, shown without a clock: the store's own timeout is ten
    minutes and the proxy holds every reply for an hour, so a request that awaited the store at any
    point would still be waiting when the generous bound below ends the test."""
    fake.default(CHAT, ok_stream("ok"))
    proxy = SlowProxy(redis_server.port)
    port = await nursery.start(proxy.serve)
    config = make_config(fake, shared_state=shared(f"redis://127.0.0.1:{port}/0", key_prefix, timeout_ms=600_000))
    url = await start_occ(config)
    await until(lambda: connected(url), 30, "connected through the proxy")
    proxy.delay_s = 3600.0
    with trio.fail_after(120):
        for stream in (False, True, False, True):
            assert (await post(url, stream=stream)).status_code == 200


async def test_the_password_never_shows(fake, start_occ, key_prefix, caplog):
    from support.redis_server import redis_binary, start_redis

    if redis_binary() is None:
        import pytest

        pytest.skip("no redis-server or valkey-server on PATH")
    caplog.set_level(logging.DEBUG)
    password = "pw-S3CRET-redis-4242"
    server = start_redis(password=password)
    try:
        fake.default(CHAT, ok_stream("ok"))
        good = make_config(fake, shared_state=shared(server.url, key_prefix))
        url = await start_occ(good)
        await until(lambda: connected(url), 30, "connected with the password")
        assert (await post(url)).status_code == 200
        text = (await httpx.AsyncClient().get(f"{url}/status")).text
        assert password not in text and "127.0.0.1" in text

        wrong = make_config(fake, shared_state=shared(server.url.replace(password, "wrong-pass-123456"),
                                                      key_prefix))
        url_wrong = await start_occ(wrong)

        async def refused() -> bool:
            return (await status(url_wrong))["shared_state"] == "unavailable"

        await until(refused, 30, "a wrong password is unavailable, not a crash")
        assert (await post(url_wrong)).status_code == 200
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert password not in logged and "wrong-pass-123456" not in logged
        assert "shared state unavailable" in logged
    finally:
        server.stop()


async def test_hot_reload_may_add_change_and_remove_it(fake, start_occ, redis_server, key_prefix, tmp_path):
    import json

    from occ.server.reload import reload_now

    fake.default(CHAT, ok_stream("ok"))
    path = tmp_path / "config.json"
    base = {"port": 0, "providers": {"fake": {"base_url": f"{fake.url}/v1/chat/completions", "api_key": "k-123456",
                                              "protocol": "openai"}},
            "models": {"default": {"provider": "fake", "model_id": "model-a"}}}
    path.write_text(json.dumps(base))
    app = occ.create_app(config_path=str(path))
    url = await start_occ(app.state.config, app=app)
    assert (await status(url))["shared_state"] == "off"

    path.write_text(json.dumps({**base, "shared_state": shared(redis_server.url, key_prefix)}))
    assert reload_now(app.state)
    await until(lambda: connected(url), 30, "connected after the reload added it")
    path.write_text(json.dumps(base))
    assert reload_now(app.state)

    async def off() -> bool:
        return (await status(url))["shared_state"] == "off"

    await until(off, 30, "off after the reload removed it")
