"""The ledger across processes: ``occ serve`` killed with SIGTERM while its rows are still in memory
writes them before it exits; a restart appends to the same file; two servers, and the two workers
of ``--workers 2``, write one ledger without losing a row."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import anthropic
import httpx
import trio
from support.fake_upstream import Reply
from support.shapes import USER, completion
from support.stack import ROOT, fake_provider

from occ.observe.ledger import Ledger

CHAT = "/v1/chat/completions"


def _write_config(tmp_path, fake, ledger: str, flush_ms: int, name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({
        "host": "127.0.0.1", "port": 0, "shutdown_grace_ms": 3000,
        "providers": {"fake": fake_provider(fake)},
        "models": {"default": {"provider": "fake", "model_id": "model-a"}},
        "usage": {"path": ledger, "flush_interval_ms": flush_ms},
    }))
    return str(path)


class Server:
    """``occ serve`` in a subprocess, on a port of its choosing."""

    def __init__(self, process: trio.Process, url: str) -> None:
        self.process, self.url = process, url

    @classmethod
    async def start(cls, config: str, *extra: str) -> Server:
        env = {**os.environ, "PYTHONPATH": ROOT}
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "occ.cli.main", "serve", "--config", config, *extra], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env)
        text = b""
        with trio.fail_after(30):
            while b"listening on " not in text or b" \xe2\x80\x94" not in text.split(b"listening on ", 1)[1]:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    raise AssertionError(f"occ serve exited: {text!r}")
                text += chunk
        url = text.split(b"listening on ", 1)[1].split(b" ", 1)[0].decode()
        return cls(process, url)

    async def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            code = await self.process.wait()
        await self.process.stdout.aclose()
        return code

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def _send(url: str, count: int, concurrency: int = 1) -> set[str]:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
    ids: set[str] = set()
    left = iter(range(count))

    async def worker() -> None:
        for _ in left:
            message = await client.messages.create(model="claude-x", max_tokens=20, messages=USER)
            assert 30 == message.usage.input_tokens
            ids.add(message._request_id)

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    await client.close()
    return ids


async def test_sigterm_with_writes_pending_then_a_restart(fake, tmp_path):
    """A flush interval of ten minutes: every row is still in memory when SIGTERM arrives."""
    fake.default(CHAT, Reply(body=completion({"content": "ok"}, prompt=30, completion=4)))
    ledger_path = str(tmp_path / "data" / "usage.sqlite")
    config = _write_config(tmp_path, fake, ledger_path, flush_ms=600_000)
    ledger = Ledger(ledger_path)

    server = await Server.start(config)
    try:
        first = await _send(server.url, 5)
        assert 0 == ledger.count()  # pending, not written yet
        assert 0 == await server.terminate()
    finally:
        server.kill()
    assert 5 == ledger.count()

    server = await Server.start(config)
    try:
        second = await _send(server.url, 3)
        assert 0 == await server.terminate()
    finally:
        server.kill()
    rows = ledger.summary("model", 0)
    assert [("fake/model-a", 8, 8 * 30, 8 * 4)] == [
        (r["model"], r["requests"], r["input_tokens"], r["output_tokens"]) for r in rows]
    assert 8 == len(first | second)


async def test_two_servers_write_one_ledger_without_losing_a_row(fake, tmp_path):
    fake.default(CHAT, Reply(body=completion({"content": "ok"}, prompt=30, completion=4)))
    ledger_path = str(tmp_path / "usage.sqlite")
    servers = [await Server.start(_write_config(tmp_path, fake, ledger_path, flush_ms=10, name=f"c{i}.json"))
               for i in range(2)]
    try:
        ids: list[set[str]] = []

        async def load(server: Server) -> None:
            ids.append(await _send(server.url, 40, concurrency=4))

        async with trio.open_nursery() as nursery:
            for server in servers:
                nursery.start_soon(load, server)
        for server in servers:
            assert 0 == await server.terminate()
    finally:
        for server in servers:
            server.kill()
    import sqlite3

    conn = sqlite3.connect(ledger_path)
    try:
        written = [r[0] for r in conn.execute("SELECT request_id FROM requests")]
    finally:
        conn.close()
    assert 80 == len(written)
    assert ids[0] | ids[1] == set(written)


async def test_workers_write_one_ledger_on_sigterm(fake, tmp_path):
    """``--workers 2``: each worker process keeps its own batch (ten-minute flush interval), and both
    write it to the one file when SIGTERM stops them."""
    fake.default(CHAT, Reply(body=completion({"content": "ok"}, prompt=30, completion=4)))
    ledger_path = str(tmp_path / "usage.sqlite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = await Server.start(_write_config(tmp_path, fake, ledger_path, flush_ms=600_000),
                                "--workers", "2", "--port", str(port))
    try:
        with trio.fail_after(30):  # --workers prints its address before the workers bind it
            while True:
                try:
                    async with httpx.AsyncClient() as http:
                        await http.get(f"{server.url}/health")
                    break
                except httpx.TransportError:
                    await trio.sleep(0.05)
        ids = await _send(server.url, 24, concurrency=8)
        assert 0 == Ledger(ledger_path).count()
        assert 0 == await server.terminate()
    finally:
        server.kill()
    import sqlite3

    conn = sqlite3.connect(ledger_path)
    try:
        written = [r[0] for r in conn.execute("SELECT request_id FROM requests")]
    finally:
        conn.close()
    assert sorted(ids) == sorted(written)
