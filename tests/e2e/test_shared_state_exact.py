"""One truth across processes, against a real Redis: the per-client limit is an atomic count in the store
(exact under a burst that reaches both processes at once), consecutive failures add up across processes,
and a panic probe runs once across the fleet. Two occ servers in this process, each its own app and state,
as two processes would be; a store that stops answering never fails a request."""

from __future__ import annotations

from typing import Any

import httpx
import trio
from support.fake_upstream import Reply, sse
from support.redis_server import SlowProxy
from support.shapes import USER, chunk
from support.stack import by_model, chain, make_config, ok_stream

import occ

CHAT = "/v1/chat/completions"
FAST = {"sync_interval_ms": 50, "timeout_ms": 300}


def shared(url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "key_prefix": prefix, **FAST, **extra}


def body(stream: bool = False) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 50, "stream": stream, "messages": USER}


async def post(url: str, stream: bool = False) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{url}/v1/messages", json=body(stream))


async def connected(url: str, processes: int) -> bool:
    async with httpx.AsyncClient(timeout=10) as client:
        data = (await client.get(f"{url}/status")).json()
    return data["shared_state"] == "connected" and len(data["fleet"]["processes"]) >= processes


async def until(check, within: float, what: str) -> None:
    with trio.move_on_after(within):
        while not await check():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"not within {within} s: {what}")


async def two_servers(start_occ, config) -> tuple[Any, Any, str, str]:
    one, two = occ.create_app(config), occ.create_app(config)
    url_one, url_two = await start_occ(config, app=one), await start_occ(config, app=two)
    await until(lambda: connected(url_one, 2), 5, "both processes connected")
    await until(lambda: connected(url_two, 2), 5, "both processes connected")
    return one, two, url_one, url_two


async def test_a_burst_at_both_processes_is_held_to_the_limit_exactly(fake, start_occ, redis_server, key_prefix):
    fake.default(CHAT, Reply(chunks=[*sse(chunk({"content": "held"}), done=False)], stall_s=30))
    config = make_config(fake, max_concurrent_per_client=3, shared_state=shared(redis_server.url, key_prefix))
    _, _, url_one, url_two = await two_servers(start_occ, config)
    statuses: list[int] = []

    async def hold(url: str) -> None:
        async with httpx.AsyncClient(timeout=60) as client, \
                client.stream("POST", f"{url}/v1/messages", json=body(stream=True)) as response:
            statuses.append(response.status_code)
            async for _ in response.aiter_bytes():
                pass

    async with trio.open_nursery() as nursery:
        for i in range(12):  # all within one sync interval, half at each process
            nursery.start_soon(hold, url_one if i % 2 else url_two)
        with trio.fail_after(10):
            while len(statuses) < 12:
                await trio.sleep(0.02)
        assert sorted(statuses) == [200] * 3 + [429] * 9, statuses
        assert len(fake.requests(CHAT)) == 3
        nursery.cancel_scope.cancel()

    async def admitted() -> bool:  # the held slots came back when their requests ended
        return (await post(url_two)).status_code == 200

    fake.default(CHAT, ok_stream("free"))
    await until(admitted, 3.0, "a slot again")


async def test_a_store_that_stops_answering_never_fails_a_limited_request(
        fake, start_occ, redis_server, key_prefix, nursery):
    fake.default(CHAT, ok_stream("ok"))
    proxy = SlowProxy(redis_server.port)
    port = await nursery.start(proxy.serve)
    config = make_config(fake, max_concurrent_per_client=4,
                         shared_state=shared(f"redis://127.0.0.1:{port}/0", key_prefix))
    url = await start_occ(config)
    await until(lambda: connected(url, 1), 5, "connected through the proxy")
    assert (await post(url)).status_code == 200
    proxy.delay_s = 2.0  # far beyond timeout_ms (300 ms)
    for _ in range(5):
        assert (await post(url)).status_code == 200  # each waits at most timeout_ms for its slot


async def test_consecutive_failures_add_up_across_processes(fake, start_occ, redis_server, key_prefix):
    fake.default(CHAT, by_model({"model-a": Reply(status=500, body={"error": {"message": "down"}}),
                                 "model-b": ok_stream("b")}))
    config = make_config(fake, **chain("model-a", "model-b"), shared_state=shared(redis_server.url, key_prefix),
                         circuit_breaker={"failure_threshold": 2, "cooldown_ms": 30_000})
    one, two, url_one, url_two = await two_servers(start_occ, config)
    assert (await post(url_one)).json()["content"][0]["text"] == "b"  # model-a: one failure in one
    with trio.fail_after(3):  # its count reached the store
        while one.state.breakers.fleet_failures.get("fake/model-a") != 1:
            await trio.sleep(0.02)
    assert (await post(url_two)).json()["content"][0]["text"] == "b"  # and one in two: the fleet's second

    async def open_in(app) -> bool:
        return app.state.breakers.state(("fake", "model-a"), app.state.board.now()) == "open"

    await until(lambda: open_in(two), 2, "two opened it on the fleet's count")
    await until(lambda: open_in(one), 2, "and one honours it")
    for url in (url_one, url_two):
        assert (await post(url)).json()["content"][0]["text"] == "b"
    assert [s.json["model"] for s in fake.requests(CHAT)] == ["model-a", "model-b", "model-a", "model-b",
                                                              "model-b", "model-b"]


async def test_one_panic_probe_across_the_fleet(fake, start_occ, redis_server, key_prefix):
    """Every model of the chain open: the two processes' requests do not probe the model at once; the
    second waits for the first's verdict (within connect_timeout_ms) and both are answered."""
    healthy = {"a": False}

    def model_a(seen):
        if not healthy["a"]:
            return Reply(status=500, body={"error": {"message": "down"}})
        return Reply(body=ok_stream("a")(seen).body, delay_s=0.8)  # a slow probe

    fake.default(CHAT, by_model({"model-a": model_a}))
    config = make_config(fake, models={"default": {"provider": "fake", "model_id": "model-a",
                                                   "connect_timeout_ms": 5000}},
                         shared_state=shared(redis_server.url, key_prefix),
                         circuit_breaker={"failure_threshold": 1, "cooldown_ms": 60_000})
    _, two, url_one, url_two = await two_servers(start_occ, config)
    assert (await post(url_one)).status_code >= 500  # opens model-a for a minute

    async def open_in(app) -> bool:
        return app.state.breakers.state(("fake", "model-a"), app.state.board.now()) == "open"

    await until(lambda: open_in(two), 2, "the fleet holds it open")
    healthy["a"] = True
    texts: list[str] = []

    async def ask(url: str) -> None:
        texts.append((await post(url)).json()["content"][0]["text"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, url_one)
        await trio.sleep(0.2)  # the first probe is out
        nursery.start_soon(ask, url_two)
    assert texts == ["a", "a"]
    first, second = fake.requests(CHAT)[1:]
    assert second.started >= first.started + 0.8, "a second panic probe while the first ran"


async def test_a_store_that_restarted_empty_counts_the_requests_still_running(
        fake, start_occ, own_redis, key_prefix):
    fake.default(CHAT, Reply(chunks=[*sse(chunk({"content": "held"}), done=False)], stall_s=30))
    config = make_config(fake, max_concurrent_per_client=2, shared_state=shared(own_redis.url, key_prefix))
    url = await start_occ(config)
    await until(lambda: connected(url, 1), 5, "connected")
    admitted: list[int] = []

    async def hold() -> None:
        async with httpx.AsyncClient(timeout=60) as client, \
                client.stream("POST", f"{url}/v1/messages", json=body(stream=True)) as response:
            admitted.append(response.status_code)
            async for _ in response.aiter_bytes():
                pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold)
        nursery.start_soon(hold)
        with trio.fail_after(10):
            while len(admitted) < 2:
                await trio.sleep(0.02)
        assert admitted == [200, 200]
        own_redis.restart()  # empty: its slots are gone with it
        await trio.sleep(0.5)  # the link notices, and reconnects
        await until(lambda: connected(url, 1), 8, "reconnected")

        async def refused() -> bool:  # the two running requests were written again
            return (await post(url)).status_code == 429

        await until(refused, 3, "the third request refused after the restart")
        nursery.cancel_scope.cancel()
