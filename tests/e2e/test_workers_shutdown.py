"""``occ serve --workers 2`` stops as one process does: SIGTERM or SIGINT to the parent lets streams finish
within ``shutdown_grace_ms``, ends the rest with an Anthropic ``error`` event, writes the ledger and exits 0.
A worker that dies while serving is reported and replaced; a parent that dies leaves no worker behind."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys

import httpx
import pytest
import trio
from support.fake_upstream import Reply, sse
from support.shapes import USER, chunk, usage_chunk
from support.stack import ROOT, fake_provider
from support.workers_log import ChildLog

CHAT = "/v1/chat/completions"


def _config(tmp_path, fake, grace_ms: int) -> tuple[str, str]:
    ledger = str(tmp_path / "usage.sqlite")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "host": "127.0.0.1", "port": 0, "shutdown_grace_ms": grace_ms,
        "enable_streaming_scenario_routing": True,
        "providers": {"fake": fake_provider(fake)},
        "models": {"default": {"provider": "fake", "model_id": "model-a"}},
        "usage": {"path": ledger, "flush_interval_ms": 600_000},  # only the shutdown writes it
        "logging": {"level": "info"},
    }))
    return str(path), ledger


def _slow_stream(deltas: int, every_s: float) -> Reply:
    parts: list[bytes | float] = []
    for i in range(deltas):
        parts += [*sse(chunk({"content": f"w{i} "}), done=False), every_s]
    parts += sse(chunk(finish="stop"), usage_chunk(prompt=30, completion=deltas))
    return Reply(chunks=parts)


class Workers:
    """``occ serve --workers 2`` as a child process, its stderr collected; killed by the test's ``finally``.
    Started once the parent says every worker serves; ``pids`` are the workers it named then."""

    def __init__(self, process: trio.Process, url: str) -> None:
        self.process, self.url = process, url
        self.log = ChildLog(process.stderr)
        self.pids: list[int] = []

    @property
    def stderr(self) -> bytes:
        return self.log.text

    @classmethod
    async def start(cls, nursery: trio.Nursery, config: str, count: int = 2) -> Workers:
        env = {**os.environ, "PYTHONPATH": ROOT}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "occ.cli.main", "serve", "--config", config, "--workers", str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        text = b""
        with trio.fail_after(30):
            while b"\n" not in text:
                data = await process.stdout.receive_some()
                if not data:
                    raise AssertionError(f"occ serve exited: {text!r}")
                text += data
        self = cls(process, text.split(b"listening on ", 1)[1].split(b" ", 1)[0].decode())
        nursery.start_soon(self.log.read)
        with trio.fail_after(30):  # the port listens at once; connections wait in its backlog for a worker
            self.pids = await self.log.serving()
            assert len(self.pids) == count
            async with httpx.AsyncClient(timeout=30) as http:
                assert (await http.get(f"{self.url}/health")).status_code == 200
        return self

    async def wait(self, within: float = 40) -> int:
        with trio.fail_after(within):
            return await self.process.wait()

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def _stream(url: str, out: dict, started: trio.Event) -> None:
    """A raw SSE read with httpx: every frame as it arrives, so a cut stream shows where it was cut."""
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("POST", f"{url}/v1/messages", json={
                "model": "claude-x", "max_tokens": 100, "stream": True, "messages": USER}) as response:
            out["status"] = response.status_code
            body = b""
            async for data in response.aiter_bytes():
                body += data
                if b"text_delta" in body:
                    started.set()
            out["body"] = body.decode()
    started.set()


def _rows(ledger: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(ledger)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute("SELECT * FROM requests"))
    finally:
        conn.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stream_longer_than_the_grace_ends_with_an_error_event(fake, tmp_path, signum):
    fake.default(CHAT, _slow_stream(16, 0.25))  # a 4 s stream; the grace is 1 s
    config, ledger = _config(tmp_path, fake, grace_ms=1000)
    async with trio.open_nursery() as nursery:
        server = await Workers.start(nursery, config)
        try:
            out: dict = {}
            started = trio.Event()
            nursery.start_soon(_stream, server.url, out, started)
            with trio.fail_after(10):
                await started.wait()
            server.process.send_signal(signum)
            assert 0 == await server.wait()
            with trio.fail_after(10):
                while "body" not in out:
                    await trio.sleep(0.05)
        finally:
            server.kill()
        nursery.cancel_scope.cancel()
    body = out["body"]
    assert out["status"] == 200
    assert "event: error" in body and "overloaded_error" in body and "server shutting down" in body, body
    assert "message_stop" not in body
    assert body.rstrip().endswith("}"), "the error event is whole"
    log = server.stderr.decode()
    assert "outcome=server_shutdown" in log, log
    [row] = _rows(ledger)
    assert row["outcome"] == "server_shutdown"
    assert row["model"] == "fake/model-a"
    assert row["input_tokens"] > 0 and row["output_tokens"] >= 1 and row["usage_estimated"] == 1  # what it was sent
    assert [a["outcome"] for a in json.loads(row["attempts"])] == ["cancelled"]


async def test_a_stream_shorter_than_the_grace_finishes(fake, tmp_path):
    fake.default(CHAT, _slow_stream(6, 0.25))  # 1.5 s; the grace is 5 s
    config, ledger = _config(tmp_path, fake, grace_ms=5000)
    async with trio.open_nursery() as nursery:
        server = await Workers.start(nursery, config)
        try:
            out: dict = {}
            started = trio.Event()
            nursery.start_soon(_stream, server.url, out, started)
            with trio.fail_after(10):
                await started.wait()
            server.process.send_signal(signal.SIGTERM)
            assert 0 == await server.wait()
            with trio.fail_after(10):
                while "body" not in out:
                    await trio.sleep(0.05)
            async with httpx.AsyncClient() as http:  # nothing listens any more
                with pytest.raises(httpx.ConnectError):
                    await http.get(f"{server.url}/health")
        finally:
            server.kill()
        nursery.cancel_scope.cancel()
    body = out["body"]
    assert "event: message_stop" in body and "event: error" not in body
    assert "".join(f"w{i} " for i in range(6)) in "".join(
        json.loads(line[6:])["delta"]["text"] for line in body.splitlines()
        if line.startswith("data: ") and '"text_delta"' in line)
    [row] = _rows(ledger)
    assert row["outcome"] == "ok" and row["output_tokens"] == 6 and row["input_tokens"] == 30


async def test_a_worker_that_dies_is_reported_and_replaced(fake, tmp_path):
    fake.default(CHAT, _slow_stream(1, 0))
    config, _ = _config(tmp_path, fake, grace_ms=1000)
    async with trio.open_nursery() as nursery:
        server = await Workers.start(nursery, config)
        try:
            victim, other = server.pids
            os.kill(victim, signal.SIGKILL)
            with trio.fail_after(20):
                replaced = await server.log.serving(2)  # whole again
            assert replaced[1] == other and replaced[0] not in (victim, other), (server.pids, replaced)
            assert b"worker 0 exited with signal SIGKILL while serving" in server.stderr  # said before the replacing
            async with httpx.AsyncClient(timeout=10) as http:  # both workers answer
                for _ in range(6):
                    assert (await http.get(f"{server.url}/health", headers={"connection": "close"})).status_code == 200
            server.process.send_signal(signal.SIGTERM)
            assert 0 == await server.wait()
        finally:
            server.kill()
        nursery.cancel_scope.cancel()


async def test_workers_do_not_outlive_a_killed_parent(fake, tmp_path):
    config, _ = _config(tmp_path, fake, grace_ms=1000)
    async with trio.open_nursery() as nursery:
        server = await Workers.start(nursery, config)
        workers = server.pids
        server.process.kill()
        await server.wait()
        with trio.fail_after(20):
            while any(os.path.exists(f"/proc/{pid}") and not _zombie(pid) for pid in workers):
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def test_sighup_replaces_the_workers_one_at_a_time_and_a_stream_finishes(fake, tmp_path):
    fake.default(CHAT, _slow_stream(8, 0.25))  # 2 s, well inside the grace
    config, _ = _config(tmp_path, fake, grace_ms=10_000)
    async with trio.open_nursery() as nursery:
        server = await Workers.start(nursery, config)
        try:
            before = set(server.pids)
            out: dict = {}
            started = trio.Event()
            nursery.start_soon(_stream, server.url, out, started)
            with trio.fail_after(10):
                await started.wait()
            server.process.send_signal(signal.SIGHUP)
            with trio.fail_after(40):
                first = await server.log.serving(2)  # worker 0 replaced, worker 1 not yet stopped
                now = await server.log.serving(3)  # worker 1 replaced too
                assert first[1] in before and first[0] not in before and not set(now) & before, (before, first, now)
                while "body" not in out:
                    await trio.sleep(0.05)
            assert "event: message_stop" in out["body"] and "event: error" not in out["body"]
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(f"{server.url}/health")).status_code == 200
            assert server.process.returncode is None
            server.process.send_signal(signal.SIGTERM)
            assert 0 == await server.wait()
        finally:
            server.kill()
        nursery.cancel_scope.cancel()
    assert b"restarting the 2 workers one at a time" in server.stderr


async def test_a_replacement_that_cannot_start_after_sighup_stops_the_server_without_a_respawn_loop(fake, tmp_path):
    """SIGHUP after the config broke: the first replacement exits before it could serve, and that stops the
    server (exit status 1) as at start-up, instead of respawning it without a pause for minutes and then
    stopping the good workers one after the other to replace them with more that cannot start."""
    config, _ = _config(tmp_path, fake, grace_ms=1000)
    async with trio.open_nursery() as nursery:
        server = await Workers.start(nursery, config)
        try:
            with open(config, "w") as f:
                f.write("{ this is not json")
            server.process.send_signal(signal.SIGHUP)
            assert 1 == await server.wait(within=30)
        finally:
            server.kill()
        nursery.cancel_scope.cancel()
    assert server.stderr.count(b"before it could serve") == 1
    assert server.stderr.count(b"for the restart; starting its replacement") == 1


async def test_sigterm_while_the_workers_are_still_starting_is_a_clean_stop(fake, tmp_path):
    """SIGTERM as soon as the workers exist, before they serve (a service manager that stops what it just
    started): workers that had not started serving had nothing to finish, so the parent exits 0."""
    config, _ = _config(tmp_path, fake, grace_ms=1000)
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "occ.cli.main", "serve", "--config", config, "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        with trio.fail_after(30):
            while len(_any_thread_children(process.pid)) < 2:
                await trio.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(40):
            code = await process.wait()
        stderr = await process.stderr.receive_some(1 << 20)
        assert code == 0, stderr.decode(errors="replace")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _any_thread_children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``, whichever of its threads started them (trio starts processes
    from a worker thread, whose children /proc lists under that thread until it exits)."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found |= {int(p) for p in f.read().split()}
        except OSError:
            continue
    return found
