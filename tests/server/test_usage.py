"""The usage ledger end to end: what occ records is what the client was told, request by request;
a ledger occ cannot write costs a warning and never a request; ``/status`` and ``/ui`` read it."""

from __future__ import annotations

import base64
import logging

import anthropic
import httpx
import trio
from support.fake_upstream import Reply, sse
from support.shapes import USER, chunk, completion, usage_chunk
from support.stack import make_config

from occ.observe.ledger import Ledger, default_ledger_path

CHAT = "/v1/chat/completions"
PRICE = {"input": 2.0, "output": 8.0, "cache_read": 0.5, "cache_write": 2.5}


async def _rows(path: str, count: int) -> dict[str, dict]:
    """The ledger's rows by request id, once ``count`` are there (the writer flushes every 50 ms)."""
    ledger = Ledger(path)
    with trio.fail_after(10):
        while ledger.count() < count:
            await trio.sleep(0.05)
    import sqlite3

    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return {r["request_id"]: dict(r) for r in conn.execute("SELECT * FROM requests")}
    finally:
        conn.close()


async def test_the_ledger_agrees_with_what_the_client_was_told(fake, start_occ, private_data_home):
    """Non-streaming, streaming with usage, streaming without (estimated): same tokens, the client's
    key label (never the key), the model's price."""
    fake.queue(CHAT,
               Reply(body=completion({"content": "one"}, prompt=120, completion=7)),
               Reply(chunks=sse(chunk({"content": "two"}), chunk(finish="stop"), usage_chunk(900, 40, 100))),
               Reply(chunks=sse(chunk({"content": "three, with no usage from upstream"}), chunk(finish="stop"))),
               Reply(body=completion({"content": "four"}, prompt=33, completion=11)))
    config = make_config(fake, client_api_keys=["first-client-key", "second-client-key"],
                         usage={"flush_interval_ms": 50}, prices={"fake/model-a": PRICE})
    url = await start_occ(config)
    client = anthropic.AsyncAnthropic(base_url=url, api_key="second-client-key", max_retries=0)
    told: dict[str, tuple[int, int, int, bool]] = {}

    message = await client.messages.create(model="claude-x", max_tokens=50, messages=USER)
    told[message._request_id] = (message.usage.input_tokens, message.usage.output_tokens,
                                 message.usage.cache_read_input_tokens or 0, False)
    for estimated in (False, True):
        async with client.messages.stream(model="claude-x", max_tokens=50, messages=USER) as stream:
            final = await stream.get_final_message()
            request_id = stream.response.headers["request-id"]
        told[request_id] = (final.usage.input_tokens, final.usage.output_tokens,
                            final.usage.cache_read_input_tokens or 0, estimated)
    message = await client.messages.create(model="claude-x", max_tokens=50, messages=USER)
    told[message._request_id] = (message.usage.input_tokens, message.usage.output_tokens,
                                 message.usage.cache_read_input_tokens or 0, False)

    rows = await _rows(default_ledger_path(), len(told))
    assert set(told) == set(rows)
    for request_id, (input_tokens, output_tokens, cache_read, estimated) in told.items():
        row = rows[request_id]
        assert (input_tokens, output_tokens, cache_read, estimated) == (
            row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], bool(row["usage_estimated"]))
        expected_cost = (input_tokens * 2.0 + output_tokens * 8.0 + cache_read * 0.5) / 1e6
        assert abs(expected_cost - row["cost_usd"]) < 1e-12
        assert ("key#1", "fake/model-a", "openai", "ok", 200) == (
            row["client"], row["model"], row["wire"], row["outcome"], row["status"])
        assert row["latency_ms"] > 0
    assert (800, 40, 100) == next(told[r][:3] for r in told if rows[r]["stream"] and not told[r][3])
    assert sorted([0, 0, 1, 1]) == sorted(r["stream"] for r in rows.values())
    assert all(r["ttft_ms"] is not None for r in rows.values() if r["stream"])

    async with httpx.AsyncClient() as http:
        status = (await http.get(f"{url}/status", headers={"x-api-key": "first-client-key"})).json()
    today = status["usage_today"]
    assert (4, sum(t[0] for t in told.values()), sum(t[1] for t in told.values()), 1) == (
        today["requests"], today["input_tokens"], today["output_tokens"], today["estimated_requests"])
    with open(default_ledger_path(), "rb") as f:
        assert b"second-client-key" not in f.read()


async def test_a_ledger_occ_cannot_write_costs_a_warning_not_a_request(fake, start_occ, tmp_path, caplog):
    """The ledger's folder is a file: requests still succeed, one warning, rows kept; once the
    folder can be made, every kept row is written."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    path = str(blocker / "usage.sqlite")
    fake.default(CHAT, Reply(body=completion({"content": "ok"}, prompt=10, completion=2)))
    url = await start_occ(make_config(fake, usage={"path": path, "flush_interval_ms": 30}))
    caplog.set_level(logging.WARNING, logger="occ.usage")
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(3):
            response = await http.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
            assert 200 == response.status_code
            await trio.sleep(0.05)
    with trio.fail_after(5):
        while not any("cannot write" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.02)
    await trio.sleep(0.1)
    assert 1 == sum("cannot write" in r.getMessage() for r in caplog.records)  # one per run of failures
    blocker.unlink()
    rows = await _rows(path, 3)
    assert 3 == len(rows)
    with trio.fail_after(5):
        while not any("writable again" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.02)


async def test_usage_off_writes_nothing_but_ui_still_lists_requests(fake, start_occ, tmp_path):
    path = tmp_path / "usage.sqlite"
    fake.default(CHAT, Reply(body=completion({"content": "ok"})))
    url = await start_occ(make_config(fake, usage={"enabled": False, "path": str(path), "flush_interval_ms": 20}))
    async with httpx.AsyncClient(timeout=10) as http:
        assert 200 == (await http.post(f"{url}/v1/messages",
                                       json={"model": "m", "max_tokens": 5, "messages": USER})).status_code
        data = (await http.get(f"{url}/ui/data.json")).json()
        status = (await http.get(f"{url}/status")).json()
    await trio.sleep(0.1)
    assert not path.exists()
    assert {"enabled": False} == data["usage"]
    assert status["usage_today"] is None
    assert ["fake/model-a"] == [r["model"] for r in data["recent"]]


async def test_ui_sits_behind_the_client_keys(fake, start_occ):
    """No key: 401 asking for Basic auth. The key as a Basic password or x-api-key: the page, with a
    Content Security Policy that allows only its own script and requests to occ."""
    url = await start_occ(make_config(fake, client_api_keys=["ui-client-key-0123456"]))
    basic = "Basic " + base64.b64encode(b"anyone:ui-client-key-0123456").decode()
    async with httpx.AsyncClient(timeout=10) as http:
        for path in ("/ui", "/ui/data.json"):
            denied = await http.get(url + path)
            assert 401 == denied.status_code
            assert denied.headers["www-authenticate"].startswith("Basic ")
            wrong = "Basic " + base64.b64encode(b"anyone:wrong").decode()
            assert 401 == (await http.get(url + path, headers={"authorization": wrong})).status_code
        page = await http.get(f"{url}/ui", headers={"authorization": basic})
        data = await http.get(f"{url}/ui/data.json", headers={"x-api-key": "ui-client-key-0123456"})
        status = await http.get(f"{url}/status", headers={"authorization": basic})
    assert 200 == page.status_code
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    assert "<svg" not in page.text.split("<script>")[0]  # the chart is drawn from data, not served
    assert 200 == data.status_code
    assert {"status", "recent", "usage"} <= set(data.json())
    assert 401 == status.status_code  # Basic is for the browser page only


async def test_a_reload_moves_or_stops_the_ledger(fake, tmp_path):
    """``usage.path`` and ``usage.enabled`` apply from the next write on: the old file is closed and
    keeps its rows; off drops what was pending instead of writing it anywhere."""
    from occ.observe.usage import UsageRow
    from occ.server.app import create_app
    from occ.server.usage_writer import flush_usage

    first, second = tmp_path / "first.sqlite", tmp_path / "second.sqlite"
    state = create_app(make_config(fake, usage={"path": str(first)})).state

    def row(request_id: str) -> UsageRow:
        return UsageRow(0.0, request_id, "key#0", "default", "fake/model-a", "openai", False, "ok", 200, 1.0, None,
                        1, 1, 0, 0, False, None)

    state.usage.add(row("one"))
    await flush_usage(state)
    state.swap_config(make_config(fake, usage={"path": str(second)}))
    state.usage.add(row("two"))
    await flush_usage(state)
    state.swap_config(make_config(fake, usage={"enabled": False, "path": str(second)}))
    state.usage.add(row("three"))
    await flush_usage(state, closing=True)
    assert (1, 1) == (Ledger(str(first)).count(), Ledger(str(second)).count())
    assert [] == state.usage.pending
    assert ["one", "two", "three"] == [r.request_id for r in state.usage.recent]


async def test_a_fallback_save_that_hangs_ends_within_its_deadline(tmp_path, monkeypatch, caplog,
                                                                   autojump_clock: trio.abc.Clock):
    """Shutdown, after the ledger refused the last write, and a file system that never answers the
    fallback file's write (a dead network mount): the save is given up at its deadline
    (``FALLBACK_SAVE_S``) and logged as rows probably lost, so the process exits by itself inside the
    ``--workers`` stop margin. No socket here: the clock jumps over the deadline."""
    import threading

    from support.stack import TEST_KEY

    from occ.config.parse import parse_config
    from occ.observe.usage import UsageRow
    from occ.server import ledger_health
    from occ.server.state import ServerState

    config = parse_config({
        "providers": {"fake": {"base_url": "http://127.0.0.1:9/v1/chat/completions", "api_key": TEST_KEY,
                               "protocol": "openai"}},
        "models": {"default": {"provider": "fake", "model_id": "model-a"}},
        "usage": {"path": str(tmp_path / "usage.sqlite")},
    }, env={}, source="test")
    state = ServerState(config=config)
    state.usage.add(UsageRow(0.0, "req-1", "key#0", "default", "fake/model-a", "openai", False, "ok", 200, 1.0,
                             None, 1, 1, 0, 0, False, None))
    entered, release = threading.Event(), threading.Event()

    def hangs(*args: object) -> str:
        entered.set()
        release.wait(30)  # real seconds: the thread never outlives the test by more
        return str(tmp_path / "never.jsonl")

    async def give_up_later() -> None:  # without the deadline the save would end only here, at 60 s
        await trio.sleep(60)
        release.set()

    monkeypatch.setattr(ledger_health, "write_fallback", hangs)
    caplog.set_level(logging.WARNING, logger="occ.usage")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(give_up_later)
            start = trio.current_time()
            await ledger_health.save_unwritten(state)
            elapsed = trio.current_time() - start
            nursery.cancel_scope.cancel()
        # the save was made and had not returned (``release`` was not set): the shutdown did not wait for it
        assert await trio.to_thread.run_sync(entered.wait, 10)
    finally:
        release.set()
    assert elapsed == ledger_health.FALLBACK_SAVE_S
    assert "1 rows could not be written before shutdown" in caplog.text
    assert "not written within 2s" in caplog.text and "probably lost" in caplog.text
    assert "never.jsonl" not in caplog.text
    assert TEST_KEY not in caplog.text
    assert [] == state.usage.pending
