"""Shared state across real processes: two ``occ serve`` and one ``occ serve --workers 2``, one Redis,
the fake upstream on 127.0.0.1. A breaker opened through one process is honoured by the other; a
per-client limit holds across both and its slots come back when the process holding them is killed;
``/status`` and ``/metrics`` of any worker count the whole fleet."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from typing import Any

import httpx
import trio
from support.fake_upstream import Reply, sse
from support.shapes import USER, chunk
from support.stack import ROOT, by_model, fake_provider, ok_stream

CHAT = "/v1/chat/completions"


def write_config(tmp_path, fake, redis_url: str, prefix: str, name: str = "occ.json", **top: Any) -> str:
    data = {
        "port": 0,
        "providers": {"fake": fake_provider(fake)},
        "models": {"default": {"provider": "fake", "model_id": "model-a"}},
        "fallbacks": {"default": [{"provider": "fake", "model_id": "model-b"}]},
        "shared_state": {"url": redis_url, "key_prefix": prefix, "sync_interval_ms": 50, "timeout_ms": 300},
        "logging": {"level": "warning"},
        **top,
    }
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


class Occ:
    """``occ serve`` as a child process; stopped (killed if need be) by the test's ``finally``."""

    def __init__(self, process: trio.Process, url: str) -> None:
        self.process, self.url = process, url

    @classmethod
    async def start(cls, config: str, *extra: str, tmp_path) -> Occ:
        env = {**os.environ, "HOME": str(tmp_path)}
        env.pop("OCC_CONFIG", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "occ.cli.main", "serve", "--config", config, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        line = b""
        with trio.fail_after(30):
            while b"\n" not in line:
                data = await process.stdout.receive_some(4096)
                if not data:
                    raise AssertionError("occ serve exited before listening")
                line += data
        url = re.search(r"listening on (\S+)", line.decode()).group(1)
        return cls(process, url)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(15):
                await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url)


async def post(url: str, stream: bool = False) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{url}/v1/messages",
                                 json={"model": "m", "max_tokens": 50, "stream": stream, "messages": USER})


async def until(check, within: float, what: str) -> None:
    with trio.move_on_after(within):
        while not await check():
            await trio.sleep(0.03)
        return
    raise AssertionError(f"not within {within} s: {what}")


async def fleet_size(url: str) -> int:
    try:
        data = (await get(f"{url}/status")).json()
    except httpx.ConnectError:  # --workers prints its address before the workers bind it
        return 0
    return len(data.get("fleet", {}).get("processes", [])) if data["shared_state"] == "connected" else 0


async def test_two_processes_share_a_breaker_and_a_client_limit(fake, redis_server, key_prefix, tmp_path,
                                                                 nursery):
    held = {"n": 0, "down": False}

    def model_a(seen):
        if seen.json.get("stream") and held["n"] < 2:  # the two requests that hold the client's slots
            held["n"] += 1
            return Reply(chunks=sse(chunk({"content": "held"}), done=False), stall_s=30)
        if held["down"]:
            return Reply(status=500, body={"error": {"message": "down"}})
        return ok_stream("a")(seen)

    fake.default(CHAT, by_model({"model-a": model_a, "model-b": ok_stream("b")}))
    config = write_config(tmp_path, fake, redis_server.url, key_prefix, max_concurrent_per_client=2,
                          circuit_breaker={"failure_threshold": 1, "cooldown_ms": 60000})
    one = await Occ.start(config, tmp_path=tmp_path)
    two = await Occ.start(config, tmp_path=tmp_path)
    try:
        await until(lambda: _is(fleet_size(two.url), 2), 30, "both processes in the fleet")

        # The client's two slots, taken through process one (streams held open by the upstream).
        async def hold() -> None:
            try:
                async with httpx.AsyncClient(timeout=60) as client, client.stream(
                        "POST", f"{one.url}/v1/messages",
                        json={"model": "m", "max_tokens": 50, "stream": True, "messages": USER}) as response:
                    async for _ in response.aiter_bytes():
                        pass
            except httpx.TransportError:  # process one is killed under it: expected
                pass

        async with trio.open_nursery() as holders:
            holders.start_soon(hold)
            holders.start_soon(hold)
            with trio.fail_after(10):
                while held["n"] < 2:
                    await trio.sleep(0.02)

            async def refused() -> bool:
                return (await post(two.url)).status_code == 429

            await until(refused, 30, "process two refuses the client's third request")
            # Process one dies holding both slots: its lease lapses and process two admits again.
            one.process.kill()

            async def admitted() -> bool:
                return (await post(two.url)).status_code == 200

            await until(admitted, 30, "the dead process's slots released")
            holders.cancel_scope.cancel()

        one = await Occ.start(config, tmp_path=tmp_path)
        await until(lambda: _is(fleet_size(two.url), 2), 30, "the new process one in the fleet")
        # model-a fails through process one: its breaker opens, and process two honours it.
        held["down"] = True
        before = len(fake.requests(CHAT))
        assert (await post(one.url)).json()["content"][0]["text"] == "b"

        async def open_in_two() -> bool:
            models = (await get(f"{two.url}/status")).json()["fleet"]["models"]
            return models.get("fake/model-a", {}).get("breaker") == "open"

        await until(open_in_two, 30, "the open seen by process two")
        assert (await post(two.url)).json()["content"][0]["text"] == "b"
        tried = [s.json["model"] for s in fake.requests(CHAT)[before:]]
        assert tried == ["model-a", "model-b", "model-b"]  # process two never asked model-a
    finally:
        await one.stop()
        await two.stop()


async def _is(value, expected) -> bool:
    return await value == expected


async def _first(pair):
    return (await pair)[0]


async def test_workers_share_state_and_metrics_count_every_worker(fake, redis_server, key_prefix, tmp_path):
    fake.default(CHAT, ok_stream("ok"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(tmp_path, fake, redis_server.url, key_prefix)
    occ = await Occ.start(config, "--workers", "2", "--port", str(port), tmp_path=tmp_path)
    try:
        await until(lambda: _is(fleet_size(occ.url), 2), 30, "both workers in the fleet")
        async with trio.open_nursery() as nursery:  # concurrent, so both workers take some
            for _ in range(24):
                nursery.start_soon(post, occ.url)
        async def ok_total() -> tuple[float, str]:
            text = (await get(f"{occ.url}/metrics")).text
            return sum(float(m) for m in re.findall(r'^occ_requests_total\{[^}]*outcome="ok"[^}]*\} (\S+)$',
                                                    text, re.M)), text

        # a request is counted when its worker has finished it, which on a loaded machine can be a moment
        # after the client read the last byte: wait for the count to settle (bounded), then insist
        await until(lambda: _is(_first(ok_total()), 24), 30, "all 24 counted")
        for _ in range(6):  # every scrape, whichever worker answers it, counts all 24
            total, text = await ok_total()
            assert total == 24, text[:2000]
        pids = {p["pid"] for p in (await get(f"{occ.url}/status")).json()["fleet"]["processes"]}
        assert len(pids) == 2

        async def counted() -> bool:
            models = (await get(f"{occ.url}/status")).json()["fleet"]["models"]
            return models.get("fake/model-a", {}).get("requests") == 24

        await until(counted, 30, "the fleet's /status counts the requests of both workers")
    finally:
        await occ.stop()
