"""The ledger is exact about every request that reached an upstream: a client that leaves mid-stream, a
stream cut by a stall, a chain that failed, each gives a row with its model, its tokens (reported, or
estimated and flagged so), its outcome and every attempt, cancelled ones included. A finished request is
on disk within a second and survives SIGKILL; a SIGKILL under load leaves a file that passes
``PRAGMA integrity_check``."""

from __future__ import annotations

import json
import logging
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
from support.stack import ROOT, chain, fake_provider, make_config, wait_for_log
from support.workers_log import ChildLog

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


def _rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY rowid")]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


async def _row(path: str) -> dict:
    with trio.fail_after(10):
        while not (rows := _rows(path)):
            await trio.sleep(0.05)
    [row] = rows
    return row


async def _read_deltas_then_leave(url: str, deltas: int) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("POST", f"{url}/v1/messages", json={
                "model": "m", "max_tokens": 100, "stream": True, "messages": USER}) as response:
            body = b""
            async for part in response.aiter_bytes():
                body += part
                if body.count(b"text_delta") >= deltas:
                    break
    return body.decode()


async def test_a_client_that_leaves_after_ten_deltas_is_recorded_with_what_it_was_sent(
        fake, start_occ, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    parts: list[bytes | float] = []
    for i in range(40):
        parts += [*sse(chunk({"content": f"word{i:02d} "}), done=False), 0.02]
    fake.default(CHAT, Reply(chunks=parts, stall_s=30))
    ledger = str(tmp_path / "usage.sqlite")
    url = await start_occ(make_config(fake, **chain("model-a", "model-b"),
                                      usage={"path": ledger, "flush_interval_ms": 100}))
    await _read_deltas_then_leave(url, 10)
    row = await _row(ledger)
    assert row["outcome"] == "client_cancelled"
    assert row["model"] == "fake/model-a" and row["wire"] == "openai"
    assert row["input_tokens"] and row["input_tokens"] > 0  # occ's estimate: the upstream reported none
    assert row["usage_estimated"] == 1
    assert row["output_tokens"] >= 10 * len("word00 ") // 4  # at least what the client was sent
    assert row["output_tokens"] <= 40 * len("word00 ") // 4 + 1
    [attempt] = json.loads(row["attempts"])
    assert attempt["model"] == "fake/model-a" and attempt["outcome"] == "cancelled"
    line = (await wait_for_log(caplog, "outcome=client_cancelled"))[0]
    assert "attempts=fake/model-a[openai]=cancelled:" in line and "model=fake/model-a" in line
    assert "tokens_estimated=True" in line


async def test_a_passthrough_stream_cut_by_the_client_keeps_the_reported_input(fake, start_occ, tmp_path):
    """An Anthropic upstream reports its input in ``message_start``: that count is kept, the output estimated."""
    start = {"type": "message_start", "message": {
        "id": "msg_up", "type": "message", "role": "assistant", "model": "up", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 1234, "output_tokens": 1, "cache_read_input_tokens": 200,
                                         "cache_creation_input_tokens": 0}}}
    parts: list[bytes | float] = [*sse(start, done=False, event_names=True), *sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        done=False, event_names=True)]
    for i in range(30):
        parts += [*sse({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": f"token{i:02d}  "}}, done=False, event_names=True),
                  0.02]
    fake.default(MESSAGES, Reply(chunks=parts, stall_s=30, headers={"content-type": "text/event-stream"}))
    ledger = str(tmp_path / "usage.sqlite")
    url = await start_occ(make_config(fake, provider={"protocol": "anthropic"},
                                      usage={"path": ledger, "flush_interval_ms": 100}))
    await _read_deltas_then_leave(url, 10)
    row = await _row(ledger)
    assert (row["outcome"], row["model"], row["wire"]) == ("client_cancelled", "fake/model-a", "anthropic")
    assert (row["input_tokens"], row["cache_read_tokens"]) == (1234, 200)  # reported
    assert row["output_tokens"] >= 10 * len("token00  ") // 4
    assert row["usage_estimated"] == 1  # the output is occ's count


async def test_a_stream_cut_by_a_stall_after_commit(fake, start_occ, tmp_path):
    fake.default(CHAT, Reply(chunks=sse(chunk({"content": "some words here"}), done=False), stall_s=30))
    ledger = str(tmp_path / "usage.sqlite")
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": "model-a",
                                                                "stream_timeout_ms": 300}},
                                      usage={"path": ledger, "flush_interval_ms": 100}))
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 100, "stream": True,
                                                               "messages": USER})
    assert "event: error" in response.text
    row = await _row(ledger)
    assert (row["outcome"], row["model"]) == ("error", "fake/model-a")
    assert row["output_tokens"] == (len("some words here") + 3) // 4 and row["input_tokens"] > 0
    assert row["usage_estimated"] == 1
    assert [a["outcome"] for a in json.loads(row["attempts"])] == ["stall"]


async def test_a_chain_that_failed_names_its_last_model_and_every_attempt(fake, start_occ, tmp_path):
    fake.default(CHAT, Reply(status=500, body={"error": {"message": "boom"}}))
    ledger = str(tmp_path / "usage.sqlite")
    url = await start_occ(make_config(fake, **chain("model-a", "model-b"),
                                      usage={"path": ledger, "flush_interval_ms": 100}))
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 100, "messages": USER})
    assert response.status_code >= 500
    row = await _row(ledger)
    assert (row["outcome"], row["model"]) == ("error", "fake/model-b")
    assert [(a["model"], a["outcome"]) for a in json.loads(row["attempts"])] == [
        ("fake/model-a", "http_500"), ("fake/model-b", "http_500")]
    assert row["input_tokens"] is None  # refused with a status: nothing was spent


async def test_a_client_that_leaves_a_non_streaming_request_is_recorded_with_its_input(fake, start_occ, tmp_path):
    fake.default(CHAT, Reply(body={"never": "sent"}, delay_s=30))
    ledger = str(tmp_path / "usage.sqlite")
    url = await start_occ(make_config(fake, usage={"path": ledger, "flush_interval_ms": 100}))
    async with httpx.AsyncClient(timeout=0.5) as http:
        try:
            await http.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 100, "messages": USER})
        except httpx.ReadTimeout:
            pass
    row = await _row(ledger)
    assert (row["outcome"], row["model"], row["stream"]) == ("client_cancelled", "fake/model-a", 0)
    assert row["input_tokens"] > 0 and row["output_tokens"] == 0 and row["usage_estimated"] == 1
    assert [a["outcome"] for a in json.loads(row["attempts"])] == ["cancelled"]


# -- real processes --------------------------------------------------------------------------------------


def _config_file(tmp_path, fake, ledger: str, flush_ms: int, level: str = "warning") -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "host": "127.0.0.1", "port": 0, "providers": {"fake": fake_provider(fake)},
        "models": {"default": {"provider": "fake", "model_id": "model-a"}},
        "usage": {"path": ledger, "flush_interval_ms": flush_ms}, "logging": {"level": level},
    }))
    return str(path)


async def _start(config: str, *extra: str,
                 log: trio.Nursery | None = None) -> tuple[trio.Process, str, ChildLog | None]:
    """``occ serve``, once it listens; ``log``: its stderr, read in that nursery."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "occ.cli.main", "serve", "--config", config, *extra], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if log is None else subprocess.PIPE, env={**os.environ, "PYTHONPATH": ROOT},
        cwd=ROOT)
    stderr = None
    if log is not None:
        stderr = ChildLog(process.stderr)
        log.start_soon(stderr.read)
    text = b""
    with trio.fail_after(30):
        while b"\n" not in text:
            data = await process.stdout.receive_some()
            if not data:
                raise AssertionError(f"occ serve exited: {text!r}")
            text += data
    return process, text.split(b"listening on ", 1)[1].split(b" ", 1)[0].decode(), stderr


async def test_a_finished_request_is_on_disk_within_a_second_and_survives_sigkill(fake, tmp_path):
    fake.default(CHAT, Reply(chunks=sse(chunk({"content": "ok"}), chunk(finish="stop"), usage_chunk(30, 4))))
    ledger = str(tmp_path / "usage.sqlite")
    process, url, _ = await _start(_config_file(tmp_path, fake, ledger, flush_ms=1000))  # the default
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 10, "stream": True,
                                                                   "messages": USER})
        assert "message_stop" in response.text
        with trio.fail_after(1.0 + 2.0):  # one flush interval, plus a loaded machine's slack
            while not _rows(ledger):
                await trio.sleep(0.05)
        process.kill()
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    [row] = _rows(ledger)
    assert (row["outcome"], row["input_tokens"], row["output_tokens"], row["usage_estimated"]) == ("ok", 30, 4, 0)


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigkill_under_load_leaves_a_sound_file(fake, tmp_path, workers, nursery):
    """Every process killed at once (``--workers 2``: the two workers first, both writing the one file)."""
    fake.default(CHAT, Reply(chunks=sse(chunk({"content": "ok"}), chunk(finish="stop"), usage_chunk(30, 4))))
    ledger = str(tmp_path / "usage.sqlite")
    extra = ("--workers", str(workers)) if workers > 1 else ()
    # writing all the time; at info, for the parent's "all N workers serving (pids ...)"
    process, url, log = await _start(_config_file(tmp_path, fake, ledger, flush_ms=20, level="info"), *extra,
                                     log=nursery if workers > 1 else None)
    pids: list[int] = []
    if log is not None:
        with trio.fail_after(30):
            pids = await log.serving()
        assert len(pids) == workers
    sent = 0
    try:
        async def load(http: httpx.AsyncClient) -> None:
            nonlocal sent
            while True:
                try:
                    await http.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 10, "stream": True,
                                                               "messages": USER})
                    sent += 1
                except httpx.TransportError:
                    return

        async with httpx.AsyncClient(timeout=10) as http:
            async with trio.open_nursery() as nursery:
                for _ in range(16):
                    nursery.start_soon(load, http)
                with trio.fail_after(30):
                    while len(_rows(ledger)) < 100:  # batches are being written
                        await trio.sleep(0.02)
                for pid in pids:  # before, /proc's list of the main thread's children: empty, as trio starts
                    os.kill(pid, signal.SIGKILL)  # them from a thread, so the workers were never killed
                process.send_signal(signal.SIGKILL)
                await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    conn = sqlite3.connect(ledger)
    try:
        assert [("ok",)] == conn.execute("PRAGMA integrity_check").fetchall()
        written = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    finally:
        conn.close()
    assert 100 <= written <= sent + 16  # a row may be written just before its client read the end


@pytest.mark.parametrize("stream", [True, False])
async def test_a_client_that_leaves_during_occs_own_web_search_spent_nothing(fake, start_occ, nursery, tmp_path,
                                                                            stream):
    """The client leaves while occ's search backend (SearXNG) is still answering: the model was never asked,
    so the row spends nothing (no tokens, no cost), though it names the model the request was on."""
    from support import search_answers as S
    from support.fake_upstream import start_fake
    from support.stack import ok_stream

    slow = await start_fake(nursery)
    slow.default("/search", Reply(body=S.searxng_answer(), delay_s=30))
    fake.default(CHAT, ok_stream("never asked"))
    ledger = str(tmp_path / "usage.sqlite")
    url = await start_occ(make_config(
        fake, models={"default": {"provider": "fake", "model_id": "glm-5"}},
        web_search={"backend": "searxng", "url": slow.url, "timeout_ms": 30_000},
        prices={"fake/glm-5": {"input": 1.0, "output": 2.0}},
        usage={"path": ledger, "flush_interval_ms": 100}))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": f"Perform a web search for the query: {S.QUERY}"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}]}
    async with trio.open_nursery() as client:
        async def ask() -> None:
            async with httpx.AsyncClient(timeout=30) as http:
                await http.post(f"{url}/v1/messages", json=body)

        client.start_soon(ask)
        with trio.fail_after(10):
            while not slow.requests("/search"):
                await trio.sleep(0.02)
        client.cancel_scope.cancel()  # the client leaves mid-search
    row = await _row(ledger)
    assert (row["outcome"], row["model"]) == ("client_cancelled", "fake/glm-5")
    assert row["input_tokens"] is None and row["output_tokens"] is None and row["cost_usd"] is None
    assert fake.requests(CHAT) == []
